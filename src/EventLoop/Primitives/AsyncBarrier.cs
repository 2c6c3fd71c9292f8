using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A barrier for tasks on one loop, asyncio's <c>Barrier</c>: each of <see cref="Parties"/> tasks calls
/// <see cref="SignalAndWaitAsync"/>, and all of them go on together once the last one arrives; then the barrier is
/// ready for the next round. Loop-affine and lock-free.
/// </summary>
/// <remarks>
/// A cancelled wait leaves the barrier (the round then needs another task to arrive), as in asyncio. When the last
/// party arrives, the round's waiters are released at once and new arrivals start the next round (asyncio drains the
/// round first; with loop-native waits there is nothing to drain). <see cref="Abort"/> breaks the barrier: waiters and
/// later arrivals get <see cref="BrokenBarrierException"/> until <see cref="Reset"/>.
/// </remarks>
public sealed class AsyncBarrier
{
    private readonly Loop _loop;
    private readonly int _parties;
    private readonly WaiterQueue<int> _waiters;
    private bool _broken;

    /// <summary>Creates a barrier for <paramref name="parties"/> tasks on <paramref name="loop"/> (default: the current loop).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="parties"/> is less than 1.</exception>
    public AsyncBarrier(int parties, Loop? loop = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parties, 1);
        _loop = loop ?? Loop.Current;
        _parties = parties;
        _waiters = new WaiterQueue<int>(_loop) { Owner = this, Operation = "SignalAndWaitAsync" };
    }

    /// <summary>How many tasks each round waits for.</summary>
    public int Parties => _parties;

    /// <summary>Tasks waiting in the current round (asyncio's <c>n_waiting</c>).</summary>
    public int Waiting => _waiters.Count;

    /// <summary>True after <see cref="Abort"/>, until <see cref="Reset"/>.</summary>
    public bool IsBroken => _broken;

    /// <summary>
    /// Arrives at the barrier and waits for the round to fill (asyncio's <c>wait()</c>). Returns this task's place in
    /// the round, 0 to <see cref="Parties"/> - 1 (the last to arrive gets <see cref="Parties"/> - 1).
    /// </summary>
    /// <exception cref="BrokenBarrierException">The barrier is broken, or was reset or aborted while waiting.</exception>
    public ValueTask<int> SignalAndWaitAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (_broken)
        {
            return ValueTask.FromException<int>(new BrokenBarrierException("The barrier is broken (aborted); reset it to use it again."));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        int place = _waiters.Count;
        if (place + 1 < _parties)
        {
            return _waiters.Enqueue(cancellationToken).AsValueTask();
        }

        for (int i = 0; _waiters.TryDequeue(out LoopWaiter<int> waiter); i++)
        {
            waiter.SetResult(i);
        }

        return new ValueTask<int>(place);
    }

    /// <summary>Ends the current round with <see cref="BrokenBarrierException"/> for its waiters, and un-breaks the barrier.</summary>
    public void Reset()
    {
        _loop.CheckLoopThread();
        _broken = false;
        FailWaiters("The barrier was reset while this task waited.");
    }

    /// <summary>Breaks the barrier: waiters and later arrivals get <see cref="BrokenBarrierException"/> until <see cref="Reset"/>.</summary>
    public void Abort()
    {
        _loop.CheckLoopThread();
        _broken = true;
        FailWaiters("The barrier was aborted while this task waited.");
    }

    private void FailWaiters(string message)
    {
        while (_waiters.TryDequeue(out LoopWaiter<int> waiter))
        {
            waiter.SetException(new BrokenBarrierException(message));
        }
    }
}
