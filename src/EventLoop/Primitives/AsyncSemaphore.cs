using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A counting semaphore for one loop, asyncio's <c>Semaphore</c> (and <c>BoundedSemaphore</c> when a
/// maximum is given: <see cref="Release"/> beyond it throws). Loop-affine, lock-free, FIFO; waits allocate nothing in
/// steady state. A cancelled <see cref="WaitAsync"/> takes no slot. Other threads use <see cref="ReleaseThreadSafe"/>.
/// </summary>
public sealed class AsyncSemaphore
{
    private readonly Loop _loop;
    private readonly WaiterQueue<bool> _waiters;
    private readonly int _maxCount;
    private int _count;

    /// <summary>Creates a semaphore with <paramref name="initialCount"/> free slots.</summary>
    /// <param name="initialCount">Free slots at the start (asyncio's <c>value</c>).</param>
    /// <param name="maxCount">When given, <see cref="Release"/> beyond it throws (a bounded semaphore).</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    public AsyncSemaphore(int initialCount, int? maxCount = null, Loop? loop = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initialCount);
        if (maxCount is { } max)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(max, Math.Max(1, initialCount), nameof(maxCount));
        }

        _loop = loop ?? Loop.Current;
        _waiters = new WaiterQueue<bool>(_loop) { Owner = this, Operation = "WaitAsync" };
        _count = initialCount;
        _maxCount = maxCount ?? int.MaxValue;
    }

    /// <summary>Free slots now.</summary>
    public int CurrentCount => _count;

    /// <summary>The bound given to the constructor, or <see cref="int.MaxValue"/>.</summary>
    public int MaxCount => _maxCount;

    /// <summary>Waits for a free slot and takes it.</summary>
    public ValueTask WaitAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (_count > 0 && _waiters.IsEmpty)
        {
            _count--;
            return default;
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return _waiters.Enqueue(cancellationToken).AsNonGenericValueTask();
    }

    /// <summary>Takes a free slot if there is one; never waits.</summary>
    public bool TryWait()
    {
        _loop.CheckLoopThread();
        if (_count > 0 && _waiters.IsEmpty)
        {
            _count--;
            return true;
        }

        return false;
    }

    /// <summary>
    /// <see cref="Release"/> from any thread: it runs on the loop, after what that thread posted before. On a bounded
    /// semaphore an over-release cannot be thrown back to the caller: its <see cref="SemaphoreFullException"/> goes to
    /// the loop's exception handler (<see cref="Loop.ExceptionHandler"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop is closed (or closing and no longer takes posts).</exception>
    public void ReleaseThreadSafe() => _loop.CallSoonThreadSafe(static s => s.Release(), this);

    /// <summary>Frees a slot: the oldest waiter takes it, or the count goes up.</summary>
    /// <exception cref="SemaphoreFullException">A bounded semaphore would go above its maximum.</exception>
    public void Release()
    {
        _loop.CheckLoopThread();
        if (_waiters.TryDequeue(out LoopWaiter<bool> waiter))
        {
            waiter.SetResult(true);
            return;
        }

        if (_count >= _maxCount)
        {
            throw new SemaphoreFullException($"The semaphore was released more times than acquired (its maximum count is {_maxCount}).");
        }

        _count++;
    }
}
