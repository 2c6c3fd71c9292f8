using System.Runtime.CompilerServices;

namespace EventLoop.Tests.Core;

public abstract class RunTests : LoopTestBase
{
    [Fact]
    public void Run_with_an_explicit_policy_returns_mains_result()
    {
        Assert.Equal(42, Loop.Run(async () => { await Task.Yield(); return 42; }, CreatePolicy(), CreateOptions()));
        string policy = Loop.Run(() => Task.FromResult(Loop.Current.PolicyName), CreatePolicy(), CreateOptions());
        Assert.Equal(CreatePolicy().Name, policy);
    }

    [Fact]
    public void Mains_exception_is_rethrown_as_itself_whether_thrown_before_or_after_an_await()
    {
        var late = Assert.Throws<FormatException>(() => Loop.Run(async () => { await Task.Yield(); throw new FormatException("late"); }, CreatePolicy(), CreateOptions()));
        Assert.Equal("late", late.Message);
        var early = Assert.Throws<FormatException>(() => Loop.Run(() => throw new FormatException("early"), CreatePolicy(), CreateOptions()));
        Assert.Equal("early", early.Message);
        Assert.ThrowsAny<OperationCanceledException>(() => Loop.Run(async () => { await Task.Yield(); throw new OperationCanceledException(); }, CreatePolicy(), CreateOptions()));
    }

    [Fact]
    public void A_throwing_callback_goes_to_the_exception_handler_and_the_loop_goes_on()
    {
        var errors = new List<LoopExceptionContext>();
        LoopOptions options = CreateOptions();
        options.ExceptionHandler = errors.Add;
        int after = RunLoop(async loop =>
        {
            loop.CallSoon(() => throw new InvalidOperationException("from CallSoon"));
            loop.CallLater(TimeSpan.Zero, () => throw new InvalidOperationException("from a timer"));
            AsyncVoid();
            await loop.DelayAsync(TimeSpan.FromMilliseconds(5));
            return 7;
        }, options);
        Assert.Equal(7, after);
        Assert.Equal(["from CallSoon", "from a timer", "from async void"], errors.Select(e => e.Exception!.Message));

        static async void AsyncVoid()
        {
            await Task.Yield();
            throw new InvalidOperationException("from async void");
        }
    }

    [Fact]
    public void A_throwing_exception_handler_does_not_stop_the_loop()
    {
        var log = new StringWriter();
        LoopOptions options = CreateOptions();
        options.ExceptionHandler = _ => throw new InvalidOperationException("handler broke");
        options.Log = log;
        RunLoop(async loop =>
        {
            loop.CallSoon(() => throw new FormatException("callback broke"));
            await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
        }, options);
        Assert.Contains("handler broke", log.ToString());
        Assert.Contains("callback broke", log.ToString());
    }

    [Fact]
    public void Shutdown_cancels_the_shutdown_token_and_pending_waits_and_runs_their_finally_blocks()
    {
        bool tokenCancelled = false, finallyRan = false;
        Task? leftover = null;
        RunLoop(loop =>
        {
            loop.ShutdownToken.Register(() => tokenCancelled = true);
            leftover = Leftover(loop);
            return Task.CompletedTask;
        });
        Assert.True(tokenCancelled);
        Assert.True(finallyRan);
        Assert.True(leftover!.IsCanceled);

        async Task Leftover(Loop loop)
        {
            try
            {
                await loop.DelayAsync(TimeSpan.FromHours(1));
            }
            finally
            {
                finallyRan = true;
            }
        }
    }

    [Fact]
    public void Stop_before_main_completes_ends_the_run_with_a_clear_error()
    {
        var error = Assert.Throws<InvalidOperationException>(() => RunLoop(async loop =>
        {
            loop.CallSoon(loop.Stop);
            await loop.DelayAsync(TimeSpan.FromHours(1));
        }));
        Assert.Contains("stopped before main completed", error.Message);
    }

    [Fact]
    public void Stop_from_another_thread_wakes_and_stops_the_loop()
    {
        Assert.Throws<InvalidOperationException>(() => RunLoop(async loop =>
        {
            var stopper = new Thread(loop.Stop);
            stopper.Start();
            await loop.DelayAsync(TimeSpan.FromHours(1));
        }));
    }
}

public abstract class MisuseTests : LoopTestBase
{
    [Fact]
    public void Loop_affine_calls_from_another_thread_throw_a_clear_error()
    {
        RunLoop(async loop =>
        {
            Exception?[] errors = await Task.Run(() => new[]
            {
                Record.Exception(() => loop.CallSoon(() => { })),
                Record.Exception(() => loop.CallLater(TimeSpan.Zero, () => { })),
                Record.Exception(() => loop.CallAt(TimeSpan.Zero, () => { })),
                Record.Exception(() => { _ = loop.DelayAsync(TimeSpan.Zero); }),
                Record.Exception(() => { _ = loop.ListenTcpAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0)); }),
            });
            Assert.All(errors, e =>
            {
                var error = Assert.IsType<InvalidOperationException>(e);
                Assert.Contains("not the loop's thread", error.Message);
            });
        });
    }

    [Fact]
    public void Loop_Current_off_the_loop_throws()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Loop.Current);
        Assert.Contains("no event loop running on this thread", error.Message);
    }

    [Fact]
    public void A_nested_Run_inside_a_loop_throws()
    {
        RunLoop(loop =>
        {
            var error = Assert.Throws<InvalidOperationException>(() => Loop.Run(() => Task.CompletedTask, CreatePolicy()));
            Assert.Contains("already running a loop", error.Message);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void A_closed_loop_refuses_work()
    {
        Loop loop = CreateLoop();
        loop.RunUntilComplete(() => Task.CompletedTask);
        Assert.True(loop.IsClosed);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(() => Task.CompletedTask)).Message);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => loop.CallSoonThreadSafe(() => { })).Message);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => loop.CallSoon(() => { })).Message);
        loop.Dispose();
    }

    [Fact]
    public void Null_arguments_are_rejected_by_name()
    {
        RunLoop(loop =>
        {
            Assert.Equal("callback", Assert.Throws<ArgumentNullException>(() => loop.CallSoon(null!)).ParamName);
            Assert.Equal("callback", Assert.Throws<ArgumentNullException>(() => loop.CallSoon<int>(null!, 1)).ParamName);
            Assert.Equal("callback", Assert.Throws<ArgumentNullException>(() => loop.CallLater(TimeSpan.Zero, null!)).ParamName);
            Assert.Equal("callback", Assert.Throws<ArgumentNullException>(() => loop.CallSoonThreadSafe(null!)).ParamName);
            Assert.Equal("work", Assert.Throws<ArgumentNullException>(() => { _ = loop.RunInExecutor((Func<int>)null!); }).ParamName);
            Assert.Equal("main", Assert.Throws<ArgumentNullException>(() => Loop.Run(null!, CreatePolicy())).ParamName);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Blocking_the_loop_thread_on_a_task_that_needs_the_loop_throws_instead_of_deadlocking()
    {
        LoopOptions options = CreateOptions();
        options.BlockingWaitLimit = TimeSpan.FromMilliseconds(100);
        RunLoop(async loop =>
        {
            Task needsTheLoop = NeedsTheLoop(loop);
            var error = Assert.Throws<InvalidOperationException>(() => needsTheLoop.Wait());
            Assert.Contains("would deadlock", error.Message);
            await needsTheLoop; // the loop is free again: it completes

            // Blocking on work that does not need the loop is allowed (if unwise): no false alarm.
            Assert.Equal(5, Task.Run(() => 5).Result);
        }, options);

        static async Task NeedsTheLoop(Loop loop)
        {
            await Task.Yield();
            await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
        }
    }
}

public abstract class DebugModeTests : LoopTestBase
{
    [Fact]
    public void A_slow_callback_is_reported_by_name()
    {
        var log = new StringWriter();
        LoopOptions options = CreateOptions();
        options.Debug = true;
        options.Log = log;
        options.SlowCallbackThreshold = TimeSpan.FromMilliseconds(20);
        RunLoop(async loop =>
        {
            loop.CallSoon(SlowCallback);
            await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
        }, options);
        string text = log.ToString();
        Assert.Contains("SlowCallback", text);
        Assert.Contains("slow callback threshold", text);

        [MethodImpl(MethodImplOptions.NoInlining)]
        static void SlowCallback()
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (watch.ElapsedMilliseconds < 40)
            {
                Thread.SpinWait(1000); // a CPU-bound callback: exactly what debug mode must catch
            }
        }
    }

    [Fact]
    public void Debug_mode_is_read_from_the_environment_by_default()
    {
        Assert.Equal(Environment.GetEnvironmentVariable("EVENTLOOP_DEBUG") == "1", new LoopOptions().Debug);
    }
}

public sealed class ManagedRunTests : RunTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvRunTests : RunTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedMisuseTests : MisuseTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvMisuseTests : MisuseTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedDebugModeTests : DebugModeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvDebugModeTests : DebugModeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
