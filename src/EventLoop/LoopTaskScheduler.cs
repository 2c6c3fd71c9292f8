namespace EventLoop;

/// <summary>
/// A <see cref="TaskScheduler"/> that runs tasks on the loop thread, in FIFO order with the loop's other
/// callbacks: <c>Task.Factory.StartNew(work, ct, TaskCreationOptions.None, loop.TaskScheduler)</c>.
/// </summary>
public sealed class LoopTaskScheduler : TaskScheduler
{
    private readonly Loop _loop;

    internal LoopTaskScheduler(Loop loop) => _loop = loop;

    /// <summary>The loop this scheduler runs tasks on.</summary>
    public Loop Loop => _loop;

    /// <summary>One: the loop runs one thing at a time.</summary>
    public override int MaximumConcurrencyLevel => 1;

    /// <inheritdoc />
    protected override void QueueTask(Task task) => _loop.Post(task, null);

    /// <summary>Runs the task inline only on the loop thread while the loop runs.</summary>
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) =>
        _loop.IsOnLoopThread && _loop.IsRunning && TryExecuteTask(task);

    /// <summary>Not supported: the ready queue holds more than tasks and is private to the loop thread.</summary>
    protected override IEnumerable<Task>? GetScheduledTasks() =>
        throw new NotSupportedException("The loop's ready queue cannot be enumerated.");

    internal void RunQueuedTask(Task task) => TryExecuteTask(task);
}
