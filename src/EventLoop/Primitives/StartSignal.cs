namespace EventLoop;

/// <summary>
/// How a child started with <see cref="TaskGroup.StartAsync{T}"/> reports that it is ready, with a value (trio's
/// <c>task_status.started(value)</c>): <see cref="Started"/> completes the <c>StartAsync</c> that started it.
/// </summary>
public sealed class StartSignal<T> : TaskGroup.IStartSignal
{
    private readonly Loop _loop;

    // Continuations run from the loop's queue, not inside Started(): the child goes on to its next await first.
    private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal StartSignal(Loop loop) => _loop = loop;

    /// <summary>True once <see cref="Started"/> was called.</summary>
    public bool IsStarted { get; private set; }

    internal Task<T> Task => _completion.Task;

    /// <summary>Reports that the child is ready: <c>StartAsync</c> returns <paramref name="value"/>. Once; loop-affine.</summary>
    /// <exception cref="InvalidOperationException">Called a second time, or off the loop thread.</exception>
    public void Started(T value)
    {
        _loop.CheckLoopThread();
        if (IsStarted)
        {
            throw new InvalidOperationException("Started() was already called on this StartSignal.");
        }

        IsStarted = true;
        _completion.TrySetResult(value);
    }

    void TaskGroup.IStartSignal.ChildReturned()
    {
        if (!IsStarted)
        {
            _completion.TrySetException(new InvalidOperationException(
                "The child started with StartAsync returned without calling Started() on its StartSignal."));
        }
    }

    void TaskGroup.IStartSignal.ChildFailed(Task child, Exception error)
    {
        if (error is OperationCanceledException cancelled)
        {
            _completion.TrySetCanceled(cancelled.CancellationToken);
        }
        else
        {
            _completion.TrySetException(child.IsFaulted ? child.Exception!.InnerExceptions : [error]);
        }
    }
}

/// <summary>
/// How a child started with <see cref="TaskGroup.StartAsync(Func{StartSignal, CancellationToken, Task})"/> reports that it
/// is ready (trio's <c>task_status.started()</c>).
/// </summary>
public sealed class StartSignal : TaskGroup.IStartSignal
{
    private readonly StartSignal<bool> _inner;

    internal StartSignal(Loop loop) => _inner = new StartSignal<bool>(loop);

    /// <summary>True once <see cref="Started"/> was called.</summary>
    public bool IsStarted => _inner.IsStarted;

    internal Task Task => _inner.Task;

    /// <summary>Reports that the child is ready: <c>StartAsync</c> returns. Once; loop-affine.</summary>
    /// <exception cref="InvalidOperationException">Called a second time, or off the loop thread.</exception>
    public void Started() => _inner.Started(true);

    void TaskGroup.IStartSignal.ChildReturned() => ((TaskGroup.IStartSignal)_inner).ChildReturned();

    void TaskGroup.IStartSignal.ChildFailed(Task child, Exception error) => ((TaskGroup.IStartSignal)_inner).ChildFailed(child, error);
}
