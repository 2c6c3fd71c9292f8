using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// An event for code on one loop, asyncio's <c>Event</c>: <see cref="WaitAsync"/> waits until it is set;
/// <see cref="Set"/> wakes every waiter; <see cref="Clear"/> resets it. Loop-affine and lock-free; other threads
/// use <see cref="SetThreadSafe"/>.
/// </summary>
public sealed class AsyncEvent
{
    private readonly Loop _loop;
    private readonly WaiterQueue<bool> _waiters;
    private bool _set;

    /// <summary>Creates an event on <paramref name="loop"/> (default: the current loop).</summary>
    public AsyncEvent(bool initiallySet = false, Loop? loop = null)
    {
        _loop = loop ?? Loop.Current;
        _waiters = new WaiterQueue<bool>(_loop) { Owner = this, Operation = "WaitAsync" };
        _set = initiallySet;
    }

    /// <summary>True while the event is set.</summary>
    public bool IsSet => _set;

    /// <summary>Sets the event and wakes every waiter.</summary>
    public void Set()
    {
        _loop.CheckLoopThread();
        _set = true;
        while (_waiters.TryDequeue(out LoopWaiter<bool> waiter))
        {
            waiter.SetResult(true);
        }
    }

    /// <summary>
    /// <see cref="Set"/> from any thread: it runs on the loop, after what that thread posted before (a wake-up from a
    /// worker thread or a native callback).
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop is closed (or closing and no longer takes posts).</exception>
    public void SetThreadSafe() => _loop.CallSoonThreadSafe(static e => e.Set(), this);

    /// <summary>Resets the event; later waits wait again.</summary>
    public void Clear()
    {
        _loop.CheckLoopThread();
        _set = false;
    }

    /// <summary>Completes when the event is set (at once if it is).</summary>
    public ValueTask WaitAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (_set)
        {
            return default;
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return _waiters.Enqueue(cancellationToken).AsNonGenericValueTask();
    }
}
