using System.Text;
using EventLoop.Internal;

namespace EventLoop;

// Task introspection, asyncio's all_tasks() and Task.print_stack(): which tasks the loop knows are pending, and where
// each one waits. A debugging aid for hangs; it costs nothing on the loop's hot paths outside debug mode.
public abstract partial class Loop
{
    private readonly HashSet<Task> _trackedTasks = new(ReferenceEqualityComparer.Instance);
    private int _purgeTrackedAt = 64;

    /// <summary>
    /// The tasks of this loop that have not completed (asyncio's <c>all_tasks()</c>): main's task and the children of
    /// every <see cref="TaskGroup"/>, and in debug mode (<see cref="LoopOptions.Debug"/>) also every async method the
    /// loop has resumed at least once and that is suspended again. An async method that never resumed on the loop is
    /// found through the task awaiting it (see <see cref="DescribePendingTasks"/>). Safe from any thread, so a watchdog
    /// can ask a loop that seems stuck.
    /// </summary>
    public IReadOnlyList<Task> GetPendingTasks()
    {
        lock (_trackedTasks)
        {
            _trackedTasks.RemoveWhere(static t => t.IsCompleted);
            return _trackedTasks.OrderBy(t => t.Id).ToArray();
        }
    }

    /// <summary>
    /// A text dump of <see cref="GetPendingTasks"/>: for each pending task that no other pending task awaits, the async
    /// method, the await it is suspended at (#1 is the method's first await) and what that await waits for, following
    /// awaited async methods down the chain (asyncio's <c>Task.print_stack()</c>). The await positions come from the
    /// compiler's state machines, read by reflection; the result is for people, not for parsing. Safe from any thread.
    /// </summary>
    public string DescribePendingTasks()
    {
        IReadOnlyList<Task> pending = GetPendingTasks();
        var awaitedByOthers = new HashSet<Task>(ReferenceEqualityComparer.Instance);
        foreach (Task task in pending)
        {
            for (Task? awaited = TaskDescriber.AwaitedTask(task); awaited is not null && awaitedByOthers.Add(awaited);)
            {
                awaited = TaskDescriber.AwaitedTask(awaited);
            }
        }

        var text = new StringBuilder();
        text.Append(pending.Count).Append(" pending task(s) on the ").Append(PolicyName).Append(" loop");
        text.AppendLine(DebugMode ? ":" : " (main and task group children; turn on debug mode to see every suspended async method):");
        foreach (Task task in pending)
        {
            if (!awaitedByOthers.Contains(task))
            {
                text.Append(TaskDescriber.Describe(task, depth: 1));
            }
        }

        return text.ToString();
    }

    /// <summary>Remembers <paramref name="task"/> as one of the loop's tasks until it completes (main, task group children).</summary>
    internal void TrackTask(Task task)
    {
        if (task.IsCompleted)
        {
            return;
        }

        lock (_trackedTasks)
        {
            _trackedTasks.Add(task);
            if (_trackedTasks.Count >= _purgeTrackedAt)
            {
                _trackedTasks.RemoveWhere(static t => t.IsCompleted);
                _purgeTrackedAt = Math.Max(64, _trackedTasks.Count * 2);
            }
        }
    }

    /// <summary>Debug mode: after a callback ran, tracks the async method it resumed if that method is suspended again.</summary>
    private void TrackResumedTask(object? state)
    {
        if (TaskDescriber.TaskOfContinuation(state) is { IsCompleted: false } task && TaskDescriber.IsAsyncMethod(task))
        {
            TrackTask(task);
        }
    }
}
