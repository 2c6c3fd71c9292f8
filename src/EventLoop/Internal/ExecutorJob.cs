namespace EventLoop.Internal;

/// <summary>
/// One <see cref="Loop.RunInExecutor{TState, T}"/> call: the work runs on the thread pool, and the job then
/// posts itself back so its task completes on the loop thread. If the loop closes first (its post is
/// refused), the task completes on the worker thread instead: a result is never lost.
/// </summary>
internal sealed class ExecutorJob<TState, T>(Loop loop, Func<TState, CancellationToken, T> work, TState state, CancellationToken token)
    : LoopWorkItem, IThreadPoolWorkItem
{
    private readonly TaskCompletionSource<T> _completion = new();
    private T? _result;
    private Exception? _error;

    public Task<T> Task => _completion.Task;

    void IThreadPoolWorkItem.Execute()
    {
        try
        {
            token.ThrowIfCancellationRequested();
            _result = work(state, token);
        }
        catch (Exception ex)
        {
            _error = ex;
        }

        if (!loop.TryPost(this))
        {
            Complete(); // the loop closed while we worked: complete here rather than lose the result
        }
    }

    /// <summary>Back on the loop thread.</summary>
    internal override void Execute() => Complete();

    internal override bool TryCompleteRefused()
    {
        Complete();
        return true;
    }

    private void Complete()
    {
        if (_error is OperationCanceledException oce && token.IsCancellationRequested)
        {
            _completion.TrySetCanceled(oce.CancellationToken);
        }
        else if (_error is not null)
        {
            _completion.TrySetException(_error);
        }
        else
        {
            _completion.TrySetResult(_result!);
        }
    }
}
