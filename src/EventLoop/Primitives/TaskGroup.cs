namespace EventLoop;

/// <summary>
/// Structured concurrency for one loop, asyncio's <c>TaskGroup</c>: children started with
/// <see cref="Start(Func{CancellationToken, Task})"/> share a token; the first child that fails cancels it,
/// so its siblings stop; <see cref="WaitAsync"/> (or <c>await using</c>) waits for every child and then
/// throws an <see cref="AggregateException"/> holding every failure (the siblings' cancellations are not failures).
/// </summary>
/// <example><code>
/// await using (var group = new TaskGroup(ct))
/// {
///     group.Start(token => FetchAsync(a, token));
///     group.Start(token => FetchAsync(b, token));
/// } // waits for both; throws if either failed
/// </code></example>
public sealed class TaskGroup : IAsyncDisposable
{
    private readonly Loop _loop;
    private readonly CancellationTokenSource _cts;
    private readonly CancellationToken _outer;
    private readonly List<Exception> _errors = new();
    private TaskCompletionSource? _allDone;
    private int _running;
    private bool _finished;

    /// <summary>Creates a group whose children are also cancelled by <paramref name="cancellationToken"/>.</summary>
    public TaskGroup(CancellationToken cancellationToken = default, Loop? loop = null)
    {
        _loop = loop ?? Loop.Current;
        _outer = cancellationToken;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    }

    /// <summary>The token every child receives: cancelled on the first failure, by <see cref="Cancel"/>, or by the outer token.</summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>Children still running.</summary>
    public int Running => _running;

    /// <summary>Starts a child. Its synchronous part runs now, on the loop.</summary>
    /// <exception cref="InvalidOperationException">The group has finished.</exception>
    public Task Start(Func<CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        _loop.CheckLoopThread();
        if (_finished)
        {
            throw new InvalidOperationException("This TaskGroup has finished; start children before it completes.");
        }

        Task task;
        try
        {
            task = work(_cts.Token) ?? throw new InvalidOperationException("The child returned null instead of a Task.");
        }
        catch (Exception ex)
        {
            task = Task.FromException(ex);
        }

        _running++;
        _ = Track(task);
        return task;
    }

    /// <summary>Starts a child that returns a value.</summary>
    public Task<T> Start<T>(Func<CancellationToken, Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Func<CancellationToken, Task> untyped = work;
        return (Task<T>)Start(untyped);
    }

    /// <summary>Cancels every child (as a failure would), e.g. when the body of an <c>await using</c> fails.</summary>
    public void Cancel() => _cts.Cancel();

    /// <summary>Waits for every child; then throws the failures, or <see cref="OperationCanceledException"/> if the outer token cancelled the group.</summary>
    public async Task WaitAsync()
    {
        _loop.CheckLoopThread();
        if (_running > 0)
        {
            _allDone ??= new TaskCompletionSource();
            await _allDone.Task.ConfigureAwait(true);
        }

        _finished = true;
        _cts.Dispose();
        if (_errors.Count > 0)
        {
            throw new AggregateException("One or more tasks of the TaskGroup failed.", _errors);
        }

        _outer.ThrowIfCancellationRequested();
    }

    /// <summary>Same as <see cref="WaitAsync"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_finished)
        {
            await WaitAsync().ConfigureAwait(true);
        }
    }

    private async Task Track(Task task)
    {
        try
        {
            await task.ConfigureAwait(true);
        }
        catch (OperationCanceledException) when (_cts.IsCancellationRequested)
        {
            // A sibling failed or the group was cancelled: not a failure of its own.
        }
        catch (Exception ex)
        {
            _errors.AddRange(task.IsFaulted ? task.Exception!.InnerExceptions : [ex]);
            if (!_cts.IsCancellationRequested)
            {
                _cts.Cancel();
            }
        }
        finally
        {
            if (--_running == 0)
            {
                _allDone?.TrySetResult();
            }
        }
    }
}
