using System.Runtime.ExceptionServices;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A condition variable for code on one loop, asyncio's <c>Condition</c>: hold its <see cref="Lock"/>, then
/// <see cref="WaitAsync"/> releases the lock, waits for <see cref="Notify"/> or <see cref="NotifyAll"/>, and takes the
/// lock back before returning. Loop-affine and lock-free (the "lock" is an <see cref="AsyncLock"/>, a loop primitive).
/// </summary>
/// <remarks>
/// As in asyncio, a wait re-acquires the lock even when it is cancelled, and then throws the
/// <see cref="OperationCanceledException"/>, so the caller's <c>using (await condition.LockAsync())</c> always releases
/// a lock it holds. Waiters are woken in FIFO order. A notification is never lost to a cancellation: a waiter is either
/// notified or cancelled, both on the loop thread.
/// </remarks>
/// <example><code>
/// using (await ready.LockAsync(ct))
/// {
///     await ready.WaitForAsync(() =&gt; items.Count &gt; 0, ct);
///     Consume(items.Dequeue());
/// }
/// // producer:
/// using (await ready.LockAsync(ct)) { items.Enqueue(item); ready.Notify(); }
/// </code></example>
public sealed class AsyncCondition
{
    private readonly Loop _loop;
    private readonly AsyncLock _lock;
    private readonly WaiterQueue<bool> _waiters;

    /// <summary>Creates a condition over <paramref name="lockObject"/> (default: a new lock) on <paramref name="loop"/> (default: the current loop).</summary>
    public AsyncCondition(AsyncLock? lockObject = null, Loop? loop = null)
    {
        _loop = loop ?? Loop.Current;
        _lock = lockObject ?? new AsyncLock(_loop);
        _waiters = new WaiterQueue<bool>(_loop) { Owner = this, Operation = "WaitAsync" };
    }

    /// <summary>The lock the condition's callers hold.</summary>
    public AsyncLock Lock => _lock;

    /// <summary>True while someone holds the lock.</summary>
    public bool IsLocked => _lock.IsLocked;

    /// <summary>Tasks waiting to be notified.</summary>
    public int Waiting => _waiters.Count;

    /// <summary>Takes the lock (<see cref="AsyncLock.LockAsync"/>).</summary>
    public ValueTask<AsyncLock.Releaser> LockAsync(CancellationToken cancellationToken = default) => _lock.LockAsync(cancellationToken);

    /// <summary>
    /// Releases the lock, waits until notified, and takes the lock back. Call it holding the lock. Cancellation also
    /// takes the lock back before the <see cref="OperationCanceledException"/> is thrown.
    /// </summary>
    /// <exception cref="InvalidOperationException">The lock is not held.</exception>
    public async ValueTask WaitAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ThrowIfNotLocked();
        cancellationToken.ThrowIfCancellationRequested(); // before letting go of the lock: still held on the way out

        int hold = _lock.HolderGeneration;
        ValueTask notified = _waiters.Enqueue(cancellationToken).AsNonGenericValueTask();
        _lock.Release();
        ExceptionDispatchInfo? cancelled = null;
        try
        {
            await notified.ConfigureAwait(true);
        }
        catch (OperationCanceledException ex)
        {
            cancelled = ExceptionDispatchInfo.Capture(ex);
        }

        // Not cancellable, as in asyncio: the caller must come back holding the lock it will release.
        _ = await _lock.LockAsync(CancellationToken.None).ConfigureAwait(true);
        _lock.RestoreHolderGeneration(hold);
        cancelled?.Throw();
    }

    /// <summary>Waits (see <see cref="WaitAsync"/>) until <paramref name="predicate"/> is true; checks it first, holding the lock.</summary>
    /// <exception cref="InvalidOperationException">The lock is not held.</exception>
    public async ValueTask WaitForAsync(Func<bool> predicate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        while (!predicate())
        {
            await WaitAsync(cancellationToken).ConfigureAwait(true);
        }
    }

    /// <summary>Wakes up to <paramref name="count"/> waiters, oldest first. Call it holding the lock.</summary>
    /// <exception cref="InvalidOperationException">The lock is not held.</exception>
    public void Notify(int count = 1)
    {
        _loop.CheckLoopThread();
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ThrowIfNotLocked();
        for (int i = 0; i < count && _waiters.TryDequeue(out LoopWaiter<bool> waiter); i++)
        {
            waiter.SetResult(true);
        }
    }

    /// <summary>Wakes every waiter. Call it holding the lock.</summary>
    /// <exception cref="InvalidOperationException">The lock is not held.</exception>
    public void NotifyAll() => Notify(int.MaxValue);

    private void ThrowIfNotLocked()
    {
        if (!_lock.IsLocked)
        {
            throw new InvalidOperationException("The condition's lock must be held: take it with LockAsync first.");
        }
    }
}
