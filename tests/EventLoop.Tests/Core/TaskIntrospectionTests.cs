namespace EventLoop.Tests.Core;

/// <summary>Loop.GetPendingTasks and DescribePendingTasks: asyncio's all_tasks() and Task.print_stack() for hangs.</summary>
public abstract class TaskIntrospectionTests : LoopTestBase
{
    private LoopOptions DebugOptions()
    {
        LoopOptions options = CreateOptions();
        options.Debug = true;
        options.SlowCallbackThreshold = TimeSpan.FromSeconds(10); // the dumps use reflection; not what this test is about
        return options;
    }

    [Fact]
    public void In_debug_mode_every_suspended_async_method_the_loop_resumed_is_pending_and_described()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            Task consumer = ConsumeOneAsync(queue);
            await Task.Yield();
            await Task.Yield();
            IReadOnlyList<Task> pending = loop.GetPendingTasks();
            Assert.Contains(consumer, pending);
            string dump = await Task.Run(loop.DescribePendingTasks); // from another thread, as a watchdog would
            Assert.Contains($"task {consumer.Id} {typeof(TaskIntrospectionTests).FullName}.ConsumeOneAsync, suspended at await #2, awaiting AsyncQueue<Int32>.GetAsync", dump);
            Assert.Contains("pending task(s) on the " + loop.PolicyName + " loop:", dump);
            queue.TryPut(1);
            await consumer.WaitAsync(TestPipes.TestTimeout);
            Assert.DoesNotContain(consumer, loop.GetPendingTasks());
        }, DebugOptions());
    }

    [Fact]
    public void The_dump_follows_a_task_group_childs_awaits_down_to_what_blocks_it()
    {
        string dump = RunLoop(async loop =>
        {
            var gate = new AsyncEvent();
            string seen = "";
            await TaskGroup.RunAsync(group =>
            {
                _ = group.Start(_ => OuterAsync(gate));
                _ = group.Start(async _ =>
                {
                    await Task.Yield();
                    seen = loop.DescribePendingTasks();
                    Assert.Equal(3, loop.GetPendingTasks().Count); // main and the two children
                    gate.Set();
                });
                return Task.CompletedTask;
            }).WaitAsync(TestPipes.TestTimeout);
            Assert.DoesNotContain(loop.GetPendingTasks(), t => t.IsCompleted);
            return seen;
        });
        string[] lines = dump.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        int outer = Array.FindIndex(lines, l => l.Contains(".OuterAsync, suspended at await #1, awaiting:"));
        Assert.True(outer >= 0, dump);
        Assert.Contains(".InnerAsync, suspended at await #1, awaiting AsyncEvent.WaitAsync", lines[outer + 1]);
        Assert.True(lines[outer + 1].TakeWhile(c => c == ' ').Count() > lines[outer].TakeWhile(c => c == ' ').Count(), dump);
        Assert.Contains("turn on debug mode", lines[0]);
    }

    private static async Task ConsumeOneAsync(AsyncQueue<int> queue)
    {
        await Task.Yield();
        await queue.GetAsync();
    }

    private static async Task OuterAsync(AsyncEvent gate) => await InnerAsync(gate);

    private static async Task InnerAsync(AsyncEvent gate) => await gate.WaitAsync();
}

public sealed class ManagedTaskIntrospectionTests : TaskIntrospectionTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTaskIntrospectionTests : TaskIntrospectionTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
