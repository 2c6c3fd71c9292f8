namespace EventLoop.Tests.Core;

public abstract class ContextTests : LoopTestBase
{
    [Fact]
    public void Yield_continuations_of_several_tasks_interleave_in_fifo_order()
    {
        var order = new List<string>();
        RunLoop(async loop =>
        {
            async Task Worker(string name)
            {
                for (int i = 0; i < 3; i++)
                {
                    order.Add($"{name}{i}");
                    await Task.Yield();
                }
            }

            await Task.WhenAll(Worker("a"), Worker("b"), Worker("c"));
        });
        Assert.Equal(["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"], order);
    }

    [Fact]
    public void Every_kind_of_await_resumes_on_the_loop_thread()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            var seen = new List<int>();

            await Task.Yield();
            seen.Add(Environment.CurrentManagedThreadId);

            await Task.Delay(TimeSpan.FromMilliseconds(1), loop.TimeProvider);
            seen.Add(Environment.CurrentManagedThreadId);

            int result = await Task.Run(() => Environment.CurrentManagedThreadId);
            Assert.NotEqual(id, result);
            seen.Add(Environment.CurrentManagedThreadId);

            // A task completed on another thread after the await started (not before: then the await would
            // continue synchronously and prove nothing).
            Task later = LoopProbe.CompletedOnAnotherThreadLater(loop);
            Assert.False(later.IsCompleted);
            await later.WaitAsync(TestPipes.TestTimeout);
            seen.Add(Environment.CurrentManagedThreadId);

            await Task.Delay(1); // a thread-pool timer
            seen.Add(Environment.CurrentManagedThreadId);

            await loop.DelayAsync(TimeSpan.Zero);
            seen.Add(Environment.CurrentManagedThreadId);

            Task laterAgain = LoopProbe.CompletedOnAnotherThreadLater(loop);
            await new ValueTask(laterAgain);
            seen.Add(Environment.CurrentManagedThreadId);

            Assert.All(seen, t => Assert.Equal(id, t));
        });
    }

    [Fact]
    public void TaskScheduler_runs_tasks_on_the_loop_thread_in_fifo_order()
    {
        var order = new List<int>();
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            var tasks = new List<Task>();
            for (int i = 0; i < 50; i++)
            {
                int n = i;
                tasks.Add(Task.Factory.StartNew(
                    () => { Assert.Equal(id, Environment.CurrentManagedThreadId); order.Add(n); },
                    CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler));
            }

            await Task.WhenAll(tasks);

            // Started from another thread: still runs on the loop.
            int ranOn = await Task.Run(() => Task.Factory.StartNew(
                () => Environment.CurrentManagedThreadId, CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler));
            Assert.Equal(id, ranOn);

            // TaskScheduler.Current inside such a task is the loop's, so nested StartNew stays on the loop too.
            TaskScheduler? inner = await Task.Factory.StartNew(
                () => TaskScheduler.Current, CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler);
            Assert.Same(loop.TaskScheduler, inner);
        });
        Assert.Equal(Enumerable.Range(0, 50), order);
    }

    [Fact]
    public void Scheduler_tasks_yield_continuations_and_callbacks_share_one_fifo_queue()
    {
        var order = new List<string>();
        RunLoop(async loop =>
        {
            Task first = Task.Factory.StartNew(() => order.Add("task 1"), CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler);
            Task yielded = YieldThenRecord();
            loop.CallSoon(() => order.Add("callback"));
            loop.SynchronizationContext.Post(_ => order.Add("post"), null);
            Task second = Task.Factory.StartNew(() => order.Add("task 2"), CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler);
            await Task.WhenAll(first, yielded, second);
        });
        Assert.Equal(["task 1", "yield", "callback", "post", "task 2"], order);

        async Task YieldThenRecord()
        {
            await Task.Yield();
            order.Add("yield");
        }
    }

    [Fact]
    public void Async_work_started_on_the_TaskScheduler_continues_on_the_loop()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            int after = await await Task.Factory.StartNew(async () =>
            {
                await Task.Run(() => { });
                return Environment.CurrentManagedThreadId;
            }, CancellationToken.None, TaskCreationOptions.None, loop.TaskScheduler);
            Assert.Equal(id, after);
        });
    }

    [Fact]
    public void ConfigureAwait_false_leaves_the_loop()
    {
        int loopThread = 0;
        int after = 0;
        SynchronizationContext? contextAfter = null;
        RunLoop(async loop =>
        {
            loopThread = Environment.CurrentManagedThreadId;

            // Completed from another thread only after this await registered: had it completed first, the await
            // would go on synchronously, on the loop thread, whatever ConfigureAwait says.
            Task later = LoopProbe.CompletedOnAnotherThreadLater(loop);
            Assert.False(later.IsCompleted);
            await later.ConfigureAwait(false);
            after = Environment.CurrentManagedThreadId;
            contextAfter = SynchronizationContext.Current;
        });
        Assert.NotEqual(loopThread, after);
        Assert.Null(contextAfter);
    }

    [Fact]
    public void SynchronizationContext_is_the_loops_inside_and_restored_after_Run()
    {
        SynchronizationContext? before = SynchronizationContext.Current;
        var outer = new SynchronizationContext();
        SynchronizationContext.SetSynchronizationContext(outer);
        try
        {
            RunLoop(async loop =>
            {
                Assert.Same(loop.SynchronizationContext, SynchronizationContext.Current);
                Assert.IsType<LoopSynchronizationContext>(SynchronizationContext.Current);
                Assert.Same(loop, loop.SynchronizationContext.Loop);
                await Task.Yield();
                Assert.Same(loop.SynchronizationContext, SynchronizationContext.Current);
                Assert.Same(loop.SynchronizationContext, loop.SynchronizationContext.CreateCopy());
            });
            Assert.Same(outer, SynchronizationContext.Current);

            // Also after main failed.
            Assert.Throws<FormatException>(() => RunLoop(async _ =>
            {
                await Task.Yield();
                throw new FormatException();
            }));
            Assert.Same(outer, SynchronizationContext.Current);
            Assert.False(Loop.TryGetCurrent(out _));
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(before);
        }
    }

    [Fact]
    public void Send_from_another_thread_runs_on_the_loop_and_waits()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            LoopSynchronizationContext context = loop.SynchronizationContext;
            int ranOn = await Task.Run(() =>
            {
                int on = 0;
                context.Send(_ => on = Environment.CurrentManagedThreadId, null);
                return on; // Send returned only after the callback ran
            });
            Assert.Equal(id, ranOn);

            // Send's exception reaches the sender, as itself.
            await Assert.ThrowsAsync<FormatException>(() => Task.Run(() => context.Send(_ => throw new FormatException(), null)));

            // On the loop thread, Send runs inline.
            bool inline = false;
            context.Send(_ => inline = true, null);
            Assert.True(inline);
        });
        Assert.Empty(UnhandledErrors);
    }

    [Fact]
    public void Send_to_a_closed_loop_throws_instead_of_hanging()
    {
        using Loop loop = CreateLoop();
        loop.RunUntilComplete(() => Task.CompletedTask);
        LoopSynchronizationContext context = loop.SynchronizationContext;
        Task send = Task.Run(() => context.Send(_ => { }, null));
        Assert.True(((IAsyncResult)send).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(5)), "Send to a closed loop hung");
        var ex = Assert.Throws<InvalidOperationException>(() => send.GetAwaiter().GetResult());
        Assert.Contains("closed", ex.Message);
    }

    [Fact]
    public void Post_from_another_thread_runs_on_the_loop()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            var ranOn = new TaskCompletionSource<int>();
            await Task.Run(() => loop.SynchronizationContext.Post(_ => ranOn.SetResult(Environment.CurrentManagedThreadId), null));
            Assert.Equal(id, await ranOn.Task);
        });
    }

    [Fact]
    public void RunInExecutor_runs_off_the_loop_and_completes_on_it()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            int workThread = await loop.RunInExecutor(() => Environment.CurrentManagedThreadId);
            Assert.NotEqual(id, workThread);
            Assert.Equal(id, Environment.CurrentManagedThreadId);

            bool ran = false;
            await loop.RunInExecutor(() => { ran = true; });
            Assert.True(ran);

            string s = await loop.RunInExecutor(static (state, ct) => state + "!", "state");
            Assert.Equal("state!", s);

            // Even a continuation that does not capture the context runs on the loop: the task completes there.
            Task<int> job = loop.RunInExecutor(() => 42);
            int completedOn = 0;
            Task observed = job.ContinueWith(
                _ => completedOn = Environment.CurrentManagedThreadId,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            await observed.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(id, completedOn);
        });
    }

    [Fact]
    public void RunInExecutor_propagates_exceptions_and_cancellation()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            await Assert.ThrowsAsync<FormatException>(() => loop.RunInExecutor<int>(() => throw new FormatException()));
            Assert.Equal(id, Environment.CurrentManagedThreadId);

            using var cts = new CancellationTokenSource();
            cts.Cancel();
            Task already = loop.RunInExecutor(() => { }, cts.Token);
            Assert.True(already.IsCanceled);

            using var during = new CancellationTokenSource();
            var started = new TaskCompletionSource();
            Task<int> running = loop.RunInExecutor(static (s, ct) =>
            {
                s.started.TrySetResult();
                s.during.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(5));
                ct.ThrowIfCancellationRequested();
                return 1;
            }, (started, during), during.Token);
            await started.Task.WaitAsync(TestPipes.TestTimeout);
            during.Cancel();
            var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
            Assert.True(running.IsCanceled);
            Assert.Equal(during.Token, ex.CancellationToken);
            Assert.Equal(id, Environment.CurrentManagedThreadId);
        });
    }
}

public sealed class ManagedContextTests : ContextTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
