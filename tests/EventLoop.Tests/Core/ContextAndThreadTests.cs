using System.Collections.Concurrent;

namespace EventLoop.Tests.Core;

public abstract class CrossThreadTests : LoopTestBase
{
    [Fact]
    public void Posts_from_many_threads_at_once_all_run_once_on_the_loop_in_per_thread_order()
    {
        const int Threads = 8, PerThread = 10_000;
        var seen = RunLoop(async loop =>
        {
            var lastSeen = new int[Threads];
            Array.Fill(lastSeen, -1);
            int total = 0, outOfOrder = 0, offLoop = 0;
            int loopThread = Environment.CurrentManagedThreadId;
            var done = new TaskCompletionSource();
            var start = new Barrier(Threads);
            var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
            {
                start.SignalAndWait();
                for (int i = 0; i < PerThread; i++)
                {
                    int item = i;
                    loop.CallSoonThreadSafe(() =>
                    {
                        if (Environment.CurrentManagedThreadId != loopThread) offLoop++;
                        if (item != lastSeen[t] + 1) outOfOrder++;
                        lastSeen[t] = item;
                        if (++total == Threads * PerThread) done.SetResult();
                    });
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            await done.Task;
            threads.ForEach(t => t.Join());
            return (total, outOfOrder, offLoop);
        });
        Assert.Equal((Threads * PerThread, 0, 0), seen);
    }

    [Fact]
    public void A_post_wakes_an_idle_loop()
    {
        RunLoop(async loop =>
        {
            var ran = new TaskCompletionSource<int>();
            // The loop has nothing else to do: it is blocked in its poll until the post arrives.
            var poster = new Thread(() => loop.CallSoonThreadSafe(() => ran.SetResult(Environment.CurrentManagedThreadId)));
            int loopThread = Environment.CurrentManagedThreadId;
            poster.Start();
            Assert.Equal(loopThread, await ran.Task);
            poster.Join();
        });
    }

    [Fact]
    public void CallSoonThreadSafe_from_the_loop_thread_runs_in_order_with_CallSoon()
    {
        var order = RunLoop(async loop =>
        {
            var log = new List<int>();
            loop.CallSoon(() => log.Add(1));
            loop.CallSoonThreadSafe(() => log.Add(2));
            loop.CallSoon(() => log.Add(3));
            await loop.DelayAsync(TimeSpan.Zero);
            return log;
        });
        Assert.Equal([1, 2, 3], order);
    }

    [Fact]
    public void Handles_cancel_before_run_and_not_after()
    {
        RunLoop(async loop =>
        {
            int runs = 0;
            LoopHandle first = loop.CallSoon(() => runs++);
            LoopHandle second = loop.CallSoon(static counter => counter.Value++, new StrongBox<int>());
            Assert.True(first.Cancel());
            await loop.DelayAsync(TimeSpan.Zero);
            Assert.Equal(0, runs);
            Assert.False(second.IsPending);
            Assert.False(second.Cancel());
            var offLoop = await Task.Run(() => Record.Exception(() => loop.CallSoon(() => { }).Cancel()));
            Assert.IsType<InvalidOperationException>(offLoop);
        });
    }

    private sealed class StrongBox<T>
    {
        public T? Value;
    }
}

public abstract class ContextTests : LoopTestBase
{
    [Fact]
    public void Every_kind_of_continuation_runs_on_the_loop_thread_in_fifo_order()
    {
        var order = RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            var log = new ConcurrentQueue<string>();
            void Note(string what)
            {
                Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
                log.Enqueue(what);
            }

            Assert.IsType<LoopSynchronizationContext>(SynchronizationContext.Current);
            Task a = Task.Factory.StartNew(() => Note("startnew-1"), CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler);
            Task b = Task.Factory.StartNew(() => Note("startnew-2"), CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler);
            await Task.WhenAll(a, b);
            Note("after-whenall");
            await Task.Yield();
            Note("after-yield");
            await Task.Run(() => Thread.SpinWait(100));
            Note("after-task-run");
            await Task.Delay(TimeSpan.FromMilliseconds(1), loop.TimeProvider);
            Note("after-delay");
            return log.ToArray();
        });
        Assert.Equal(["startnew-1", "startnew-2", "after-whenall", "after-yield", "after-task-run", "after-delay"], order);
    }

    [Fact]
    public void ConfigureAwait_false_leaves_the_loop()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            await Task.Run(() => Thread.SpinWait(100)).ConfigureAwait(false);
            Assert.NotEqual(loopThread, Environment.CurrentManagedThreadId);
            Assert.False(Loop.TryGetCurrent(out _));
        });
    }

    [Fact]
    public void The_context_is_installed_while_running_and_restored_after()
    {
        SynchronizationContext? before = SynchronizationContext.Current;
        Loop? inside = null;
        RunLoop(loop =>
        {
            inside = Loop.Current;
            Assert.Same(loop.SynchronizationContext, SynchronizationContext.Current);
            return Task.CompletedTask;
        });
        Assert.NotNull(inside);
        Assert.Same(before, SynchronizationContext.Current);
        Assert.False(Loop.TryGetCurrent(out _));
    }

    [Fact]
    public void Send_from_another_thread_runs_on_the_loop_and_waits()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            int ranOn = await Task.Run(() =>
            {
                int id = 0;
                loop.SynchronizationContext.Send(_ => id = Environment.CurrentManagedThreadId, null);
                return id;
            });
            Assert.Equal(loopThread, ranOn);
        });
    }

    [Fact]
    public void RunInExecutor_runs_off_the_loop_and_completes_on_it()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            int workerThread = await loop.RunInExecutor(() => Environment.CurrentManagedThreadId);
            Assert.NotEqual(loopThread, workerThread);
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);

            // The task completes on the loop thread (a continuation registered without capturing the
            // context sees the loop's context while it completes).
            bool completedOnLoop = false;
            await loop.RunInExecutor(() => { }).ContinueWith(
                _ => completedOnLoop = Environment.CurrentManagedThreadId == loopThread, TaskContinuationOptions.ExecuteSynchronously);
            Assert.True(completedOnLoop);

            await Assert.ThrowsAsync<FormatException>(() => loop.RunInExecutor<int>(() => throw new FormatException()));
            using var cts = new CancellationTokenSource();
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop.RunInExecutor(() => 1, cts.Token));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop.RunInExecutor(
                (_, token) => { token.ThrowIfCancellationRequested(); return 1; }, 0, new CancellationToken(true)));
        });
    }
}

public sealed class ManagedCrossThreadTests : CrossThreadTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvCrossThreadTests : CrossThreadTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedContextTests : ContextTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvContextTests : ContextTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
