namespace EventLoop;

/// <summary>
/// Structured concurrency for one loop, asyncio's <c>TaskGroup</c> and trio's nursery: children started with
/// <see cref="Start(Func{CancellationToken, Task})"/> share a <see cref="Token"/>; the first child that fails cancels it,
/// so its siblings stop; the group waits for every child and then throws an <see cref="AggregateException"/> holding
/// every failure.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="RunAsync(Func{TaskGroup, Task}, CancellationToken, Loop)"/> is the complete form (asyncio's
/// <c>async with TaskGroup() as tg:</c>, trio's <c>async with open_nursery() as nursery:</c>): when the body itself
/// throws, the children are cancelled too, and the body's exception is among the failures. With
/// <c>await using</c> (or <see cref="WaitAsync"/>), <see cref="DisposeAsync"/> cannot see the body's exception: the
/// children are waited for, not cancelled, unless the body calls <see cref="Cancel"/> in a <c>catch</c>.
/// </para>
/// <para>The failures, when any: an <see cref="AggregateException"/> (the .NET exception group) whose
/// <see cref="AggregateException.InnerExceptions"/> are every child's exception, and the body's, in the order they
/// happened, each as itself (a child that threw an <see cref="AggregateException"/>, a nested group, stays one entry).
/// A child or body that ends with <see cref="OperationCanceledException"/> while the group's token is cancelled was
/// cancelled, not failed, and is not listed; one that throws it while the token is not cancelled (its own timeout, say)
/// failed. With no failures and the outer token cancelled, the group throws <see cref="OperationCanceledException"/>,
/// so a <see cref="CancelScope"/> around it catches its own cancellation.</para>
/// <para>
/// <see cref="StartAsync{T}(Func{StartSignal{T}, CancellationToken, Task})"/> is trio's <c>nursery.start</c>: it waits until
/// the child reports that it is ready (<see cref="StartSignal{T}.Started"/>, with a value such as the port it listens
/// on) and returns the value. Until then the child's failure is StartAsync's, not the group's: StartAsync throws it and the
/// siblings run on; a child that returns without signalling fails StartAsync with <see cref="InvalidOperationException"/>.
/// After the signal, the child is an ordinary member of the group.
/// </para>
/// <para>Loop-affine: use a group on the loop thread it was made on.</para>
/// </remarks>
/// <example><code>
/// await TaskGroup.RunAsync(async group =&gt;
/// {
///     int port = await group.StartAsync&lt;int&gt;((ready, token) =&gt; ServeAsync(ready, token)); // ServeAsync calls ready.Started(port)
///     _ = group.Start(token =&gt; ClientAsync(port, token));
/// }, ct); // waits for both; if either fails, the other is cancelled and an AggregateException follows
/// </code></example>
public sealed class TaskGroup : IAsyncDisposable
{
    private readonly Loop _loop;
    private readonly CancellationTokenSource _cts;
    private readonly CancellationToken _outer;
    private readonly CancellationToken _token; // kept: the source is disposed when the group finishes
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
        _token = _cts.Token;
    }

    /// <summary>The token every child receives: cancelled on the first failure, by <see cref="Cancel"/>, or by the outer token.</summary>
    public CancellationToken Token => _token;

    /// <summary>Children still running (including those not yet started through <see cref="StartAsync{T}"/>).</summary>
    public int Running => _running;

    /// <summary>
    /// Runs <paramref name="body"/> with a new group, then waits for every child; if the body throws, the children
    /// are cancelled first. Throws an <see cref="AggregateException"/> with every failure (see the remarks).
    /// </summary>
    /// <param name="body">Starts the children; may await them or anything else.</param>
    /// <param name="cancellationToken">The outer token: cancelling it cancels every child.</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    public static async Task RunAsync(Func<TaskGroup, Task> body, CancellationToken cancellationToken = default, Loop? loop = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        var group = new TaskGroup(cancellationToken, loop);
        try
        {
            await (body(group) ?? throw new InvalidOperationException("The body returned null instead of a Task.")).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            group.OnBodyFailed(ex);
        }

        await group.WaitAsync().ConfigureAwait(true);
    }

    /// <summary>Runs <paramref name="body"/> with a new group and returns its result once every child is done; see <see cref="RunAsync(Func{TaskGroup, Task}, CancellationToken, Loop)"/>.</summary>
    public static async Task<T> RunAsync<T>(Func<TaskGroup, Task<T>> body, CancellationToken cancellationToken = default, Loop? loop = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        var group = new TaskGroup(cancellationToken, loop);
        T result = default!;
        try
        {
            result = await (body(group) ?? throw new InvalidOperationException("The body returned null instead of a Task.")).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            group.OnBodyFailed(ex);
        }

        await group.WaitAsync().ConfigureAwait(true);
        return result;
    }

    /// <summary>Starts a child (asyncio's <c>create_task</c>, trio's <c>start_soon</c>). Its synchronous part runs now, on the loop.</summary>
    /// <exception cref="InvalidOperationException">The group has finished.</exception>
    public Task Start(Func<CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        CheckCanStart();
        Task task = Invoke(static (w, token) => w(token), work);
        _loop.TrackTask(task);
        _running++;
        _ = Track(task, signal: null);
        return task;
    }

    /// <summary>Starts a child that returns a value.</summary>
    /// <exception cref="InvalidOperationException">The group has finished.</exception>
    public Task<T> Start<T>(Func<CancellationToken, Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Func<CancellationToken, Task> untyped = work;
        return (Task<T>)Start(untyped);
    }

    /// <summary>
    /// Starts a child and waits until it calls <see cref="StartSignal{T}.Started"/>, then returns the value it reported
    /// (trio's <c>nursery.start</c>). The child goes on running in the group.
    /// </summary>
    /// <exception cref="InvalidOperationException">The group has finished; or the child returned without signalling.</exception>
    /// <exception cref="OperationCanceledException">The group was cancelled before the child signalled.</exception>
    /// <remarks>Any exception the child throws before signalling is thrown here and is not a failure of the group.</remarks>
    public Task<T> StartAsync<T>(Func<StartSignal<T>, CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        CheckCanStart();
        var signal = new StartSignal<T>(_loop);
        Task task = Invoke(static (s, token) => s.Work(s.Signal, token), (Work: work, Signal: signal));
        _loop.TrackTask(task);
        _running++;
        _ = Track(task, signal);
        return signal.Task;
    }

    /// <summary>Starts a child and waits until it calls <see cref="StartSignal.Started"/>; see <see cref="StartAsync{T}"/>.</summary>
    /// <exception cref="InvalidOperationException">The group has finished; or the child returned without signalling.</exception>
    /// <exception cref="OperationCanceledException">The group was cancelled before the child signalled.</exception>
    public Task StartAsync(Func<StartSignal, CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        CheckCanStart();
        var signal = new StartSignal(_loop);
        Task task = Invoke(static (s, token) => s.Work(s.Signal, token), (Work: work, Signal: signal));
        _loop.TrackTask(task);
        _running++;
        _ = Track(task, signal);
        return signal.Task;
    }

    /// <summary>Cancels every child (as a failure would), e.g. when the body of an <c>await using</c> fails. Does nothing once the group has finished.</summary>
    public void Cancel()
    {
        _loop.CheckLoopThread();
        if (!_finished && !_cts.IsCancellationRequested)
        {
            _cts.Cancel();
        }
    }

    /// <summary>
    /// Waits for every child; then throws an <see cref="AggregateException"/> with the failures, or
    /// <see cref="OperationCanceledException"/> if the outer token cancelled the group.
    /// </summary>
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

    /// <summary>Same as <see cref="WaitAsync"/>: waits for the children (it does not cancel them; see the remarks).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_finished)
        {
            await WaitAsync().ConfigureAwait(true);
        }
    }

    private void CheckCanStart()
    {
        _loop.CheckLoopThread();
        if (_finished)
        {
            throw new InvalidOperationException("This TaskGroup has finished; start children before it completes.");
        }
    }

    private Task Invoke<TState>(Func<TState, CancellationToken, Task> start, TState state)
    {
        try
        {
            return start(state, _token) ?? throw new InvalidOperationException("The child returned null instead of a Task.");
        }
        catch (Exception ex)
        {
            return Task.FromException(ex);
        }
    }

    private void OnBodyFailed(Exception error)
    {
        if (!(error is OperationCanceledException && _cts.IsCancellationRequested))
        {
            _errors.Add(error);
        }

        Cancel();
    }

    private async Task Track(Task task, IStartSignal? signal)
    {
        try
        {
            await task.ConfigureAwait(true);
            signal?.ChildReturned();
        }
        catch (Exception ex) when (signal is { IsStarted: false })
        {
            signal.ChildFailed(task, ex); // before the signal: StartAsync's failure, not the group's
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

    /// <summary>What the group needs of a start signal: whether the child signalled, and how to end a start that never did.</summary>
    internal interface IStartSignal
    {
        bool IsStarted { get; }

        void ChildReturned();

        void ChildFailed(Task child, Exception error);
    }
}
