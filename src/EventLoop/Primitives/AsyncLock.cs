using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A mutual-exclusion lock for code on one loop, asyncio's <c>Lock</c>: held across awaits, granted in FIFO
/// order. Not reentrant: locking it again while holding it waits forever, as in asyncio.
/// </summary>
/// <example><code>using (await gate.LockAsync(ct)) { ... }</code></example>
public sealed class AsyncLock
{
    private readonly Loop _loop;
    private readonly WaiterQueue<Releaser> _waiters;
    private bool _held;
    private int _generation; // the current hold's: a releaser only releases the hold it was given
    private int _issued;     // generations handed out so far; a new hold always gets a fresh one

    /// <summary>Creates a lock on <paramref name="loop"/> (default: the current loop).</summary>
    public AsyncLock(Loop? loop = null)
    {
        _loop = loop ?? Loop.Current;
        _waiters = new WaiterQueue<Releaser>(_loop) { Owner = this, Operation = "LockAsync" };
    }

    /// <summary>True while someone holds the lock.</summary>
    public bool IsLocked => _held;

    /// <summary>Waits for the lock; dispose the returned releaser to release it.</summary>
    public ValueTask<Releaser> LockAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (!_held && _waiters.IsEmpty)
        {
            _held = true;
            return new ValueTask<Releaser>(new Releaser(this, _generation = ++_issued));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Releaser>(cancellationToken);
        }

        return _waiters.Enqueue(cancellationToken).AsValueTask();
    }

    /// <summary>Releases the lock; the oldest waiter gets it next.</summary>
    /// <exception cref="InvalidOperationException">The lock is not held.</exception>
    public void Release()
    {
        _loop.CheckLoopThread();
        if (!_held)
        {
            throw new InvalidOperationException("The lock is not held, so it cannot be released.");
        }

        if (_waiters.TryDequeue(out LoopWaiter<Releaser> next))
        {
            next.SetResult(new Releaser(this, _generation = ++_issued)); // ownership passes straight on; _held stays true
        }
        else
        {
            _held = false;
        }
    }

    /// <summary>The current hold's generation: what <see cref="AsyncCondition"/> keeps across a wait.</summary>
    internal int HolderGeneration => _generation;

    /// <summary>
    /// Makes the hold just re-acquired by <see cref="AsyncCondition.WaitAsync"/> the caller's original one again, so the
    /// releaser the caller got from <see cref="LockAsync"/> before the wait still releases it.
    /// </summary>
    internal void RestoreHolderGeneration(int generation) => _generation = generation;

    /// <summary>Releases the lock when disposed.</summary>
    public readonly struct Releaser : IDisposable
    {
        private readonly AsyncLock? _lock;
        private readonly int _generation;

        internal Releaser(AsyncLock owner, int generation)
        {
            _lock = owner;
            _generation = generation;
        }

        /// <summary>Releases the lock. Disposing again (or a copy of this releaser) does nothing.</summary>
        public void Dispose()
        {
            if (_lock is { } owner && owner._held && owner._generation == _generation)
            {
                owner.Release();
            }
        }
    }
}
