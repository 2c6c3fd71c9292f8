namespace EventLoop;

// asyncio's run_forever, apart from RunUntilComplete: the loop runs with no main until something calls Stop().
public abstract partial class Loop
{
    private bool _runningForever;

    /// <summary>
    /// Runs the loop on the calling thread until <see cref="Stop"/> is called (asyncio's <c>run_forever</c>), then shuts
    /// it down as <see cref="RunUntilComplete(Func{Task})"/> does: cancels <see cref="ShutdownToken"/> and every loop
    /// wait, runs what that makes ready, closes every resource and handle. Schedule the work first
    /// (<see cref="CallSoon(Action)"/> on this thread before the call, <see cref="CallSoonThreadSafe(Action)"/> from
    /// others at any time); stop it from a callback or from another thread.
    /// </summary>
    /// <remarks>
    /// Unlike asyncio's, a loop runs once: after <c>RunForever</c> returns the loop is closed. For a loop that other
    /// threads submit work to and await, see the loop-on-its-own-thread type of the loop group work.
    /// </remarks>
    /// <exception cref="InvalidOperationException">The loop already ran, or a loop is already running on this thread.</exception>
    public void RunForever()
    {
        _runningForever = true;
        RunUntilComplete(static () => new TaskCompletionSource().Task); // never completes: only Stop() ends the run
    }
}
