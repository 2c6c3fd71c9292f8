using System.IO.Pipelines;

namespace EventLoop.AspNetCore.Internal;

/// <summary>
/// Runs a pipe continuation of the transport's side on the connection's loop: queued behind the loop's ready work when
/// already on the loop thread (never inline, so a pump never resumes inside Kestrel's call), posted from any other thread.
/// Allocates nothing (the loop pools its callback items).
/// </summary>
internal sealed class LoopSideScheduler(Loop loop) : PipeScheduler
{
    private static readonly Action<(Action<object?> Action, object? State)> s_invoke = static s => s.Action(s.State);

    public override void Schedule(Action<object?> action, object? state)
    {
        try
        {
            if (loop.IsOnLoopThread)
            {
                loop.CallSoon(s_invoke, (action, state));
            }
            else
            {
                loop.CallSoonThreadSafe(s_invoke, (action, state));
            }
        }
        catch (InvalidOperationException)
        {
            // The loop has closed (and closed the connection): let the pump see its ended pipes on the thread pool.
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(action, state, preferLocal: false);
        }
    }
}
