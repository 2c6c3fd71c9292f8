namespace EventLoop.Internal;

/// <summary>
/// Runs an action on the loop thread from any thread and lets the caller await it: how <c>DisposeAsync</c>
/// of a connection or listener called on another thread closes it where its handles live.
/// </summary>
internal static class LoopHop
{
    /// <summary>
    /// Runs <paramref name="action"/>(<paramref name="target"/>) on the loop and completes when the task it
    /// returns does (with its exception). If the loop no longer takes posts (it is closing or closed), the
    /// result is a completed task: the loop's shutdown closes every resource it holds.
    /// </summary>
    public static ValueTask RunOnLoopAsync<T>(Loop loop, T target, Func<T, ValueTask> action)
    {
        var hop = new Hop<T>(target, action);
        return loop.TryPost(hop) ? new ValueTask(hop.Task) : default;
    }

    private sealed class Hop<T>(T target, Func<T, ValueTask> action) : LoopWorkItem
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Task => _done.Task;

        internal override void Execute() => _ = RunAsync();

        internal override bool TryCompleteRefused()
        {
            _done.TrySetResult(); // the loop closed: its shutdown closed the resource
            return true;
        }

        private async Task RunAsync()
        {
            try
            {
                await action(target).ConfigureAwait(true);
                _done.TrySetResult();
            }
            catch (Exception ex)
            {
                _done.TrySetException(ex);
            }
        }
    }
}
