namespace EventLoop.Internal;

/// <summary>One <see cref="Loop.RunInExecutor{TState, T}"/> call: runs on the thread pool, completes on the loop.</summary>
internal sealed class ExecutorJob<TState, T>(Loop loop, Func<TState, CancellationToken, T> work, TState state, CancellationToken token)
    : IThreadPoolWorkItem
{
    private readonly TaskCompletionSource<T> _completion = new();
    private T? _result;
    private Exception? _error;

    public Task<T> Task => _completion.Task;

    public void Execute()
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

        try
        {
            loop.CallSoonThreadSafe(static job => job.Complete(), this);
        }
        catch (InvalidOperationException)
        {
            Complete(); // the loop closed while we worked: complete here rather than lose the result
        }
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
