using System.Diagnostics;

namespace EventLoop;

/// <summary>
/// The synchronization context installed on the loop thread while a loop runs. Every <c>await</c> in loop
/// code captures it, so continuations (and <c>Task.Yield()</c>) are posted back to the loop and run there in
/// FIFO order. <c>ConfigureAwait(false)</c> opts out: the continuation then runs on the thread pool.
/// </summary>
/// <remarks>
/// It also watches blocking waits on the loop thread: <c>task.Wait()</c> or <c>.Result</c> on a task that
/// needs the loop to complete can never finish, so such a wait throws an <see cref="InvalidOperationException"/>
/// once it has blocked for <see cref="LoopOptions.BlockingWaitLimit"/> while loop work is waiting to run.
/// </remarks>
public sealed class LoopSynchronizationContext : SynchronizationContext
{
    private const int WaitTimeout = 258; // WAIT_TIMEOUT
    private const int SliceMilliseconds = 10;
    private readonly Loop _loop;

    internal LoopSynchronizationContext(Loop loop)
    {
        _loop = loop;
        SetWaitNotificationRequired();
    }

    /// <summary>The loop this context posts to.</summary>
    public Loop Loop => _loop;

    /// <summary>Queues <paramref name="d"/> to run on the loop. Safe from any thread.</summary>
    public override void Post(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        _loop.Post(d, state);
    }

    /// <summary>
    /// Runs <paramref name="d"/> on the loop and waits for it: inline on the loop thread, otherwise posted
    /// and waited for (do not call it from a thread the loop itself is waiting on).
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop is closed (or closed before running <paramref name="d"/>).</exception>
    public override void Send(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (_loop.IsOnLoopThread)
        {
            d(state);
            return;
        }

        _loop.CheckNotClosed();
        using var done = new ManualResetEventSlim();
        Exception? error = null;
        _loop.Post((SendOrPostCallback)(_ =>
        {
            try
            {
                d(state);
            }
            catch (Exception ex)
            {
                error = ex;
            }
            finally
            {
                done.Set();
            }
        }), null);

        // A loop that closes before running the callback drops it: stop waiting then instead of hanging.
        while (!done.Wait(50))
        {
            if (_loop.IsClosed && !done.IsSet)
            {
                _loop.CheckNotClosed();
            }
        }

        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>The loop has one context: copies are the same object.</summary>
    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Detects the loop thread blocking on work only the loop can do. See the type's remarks.</summary>
    public override int Wait(IntPtr[] waitHandles, bool waitAll, int millisecondsTimeout)
    {
        TimeSpan limit = _loop.Options.BlockingWaitLimit;
        if (!_loop.IsOnLoopThread || !_loop.IsActive || _loop.IsInBackendWait || limit == Timeout.InfiniteTimeSpan)
        {
            return WaitHelper(waitHandles, waitAll, millisecondsTimeout);
        }

        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int slice = SliceMilliseconds;
            if (millisecondsTimeout != Timeout.Infinite)
            {
                long left = millisecondsTimeout - (long)Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (left <= 0)
                {
                    return WaitTimeout;
                }

                slice = (int)Math.Min(slice, left);
            }

            int result = WaitHelper(waitHandles, waitAll, slice);
            if (result != WaitTimeout)
            {
                return result;
            }

            if (Stopwatch.GetElapsedTime(start) >= limit && _loop.HasPendingWork())
            {
                throw new InvalidOperationException(
                    $"The {_loop.PolicyName} loop thread has been blocked for {limit.TotalMilliseconds:F0} ms in a synchronous wait " +
                    "(Task.Wait(), .Result, GetAwaiter().GetResult() or a lock) while loop callbacks are waiting to run. " +
                    "Those callbacks can only run on this thread, so the wait would deadlock. Use 'await' instead of blocking.");
            }
        }
    }
}
