namespace EventLoop.Tests.Core;

public abstract class RunTests : LoopTestBase
{
    private sealed class MainFailed(string message) : Exception(message);

    [Fact]
    public void Run_with_an_explicit_policy_runs_main_on_a_loop_of_that_policy()
    {
        string? policyName = null;
        bool onLoop = false;
        Loop.Run(async () =>
        {
            await Task.Yield();
            policyName = Loop.Current.PolicyName;
            onLoop = Loop.Current.IsOnLoopThread;
        }, CreatePolicy(), CreateOptions());
        Assert.Equal(CreatePolicy().Name, policyName);
        Assert.True(onLoop);
        Assert.False(Loop.TryGetCurrent(out _));
    }

    [Fact]
    public void Run_of_T_returns_mains_result()
    {
        int result = Loop.Run(async () =>
        {
            await Loop.Current.DelayAsync(TimeSpan.FromMilliseconds(1));
            return 42;
        }, CreatePolicy(), CreateOptions());
        Assert.Equal(42, result);

        string sync = Loop.Run(() => Task.FromResult("done"), CreatePolicy(), CreateOptions());
        Assert.Equal("done", sync);
    }

    [Fact]
    public void Mains_exception_is_rethrown_as_itself()
    {
        var ex = Assert.Throws<MainFailed>(() => Loop.Run(async () =>
        {
            await Task.Yield();
            throw new MainFailed("after await");
        }, CreatePolicy(), CreateOptions()));
        Assert.Equal("after await", ex.Message);

        // Thrown synchronously, before the first await (and before main returned a task at all).
        ex = Assert.Throws<MainFailed>(() => Loop.Run(() => throw new MainFailed("sync"), CreatePolicy(), CreateOptions()));
        Assert.Equal("sync", ex.Message);

        ex = Assert.Throws<MainFailed>(() => Loop.Run<int>(() => throw new MainFailed("sync of T"), CreatePolicy(), CreateOptions()));
        Assert.Equal("sync of T", ex.Message);

        ex = Assert.Throws<MainFailed>(() => Loop.Run<int>(async () =>
        {
            await Task.Run(() => { });
            throw new MainFailed("of T");
        }, CreatePolicy(), CreateOptions()));
        Assert.Equal("of T", ex.Message);

        // The stack trace still shows where main threw.
        Assert.Contains(nameof(Mains_exception_is_rethrown_as_itself), ex.StackTrace);
    }

    [Fact]
    public void The_loop_is_closed_cleanly_after_main_throws()
    {
        using Loop loop = CreateLoop();
        Assert.Throws<MainFailed>(() => loop.RunUntilComplete(async () =>
        {
            loop.CallLater(TimeSpan.FromHours(1), () => { });
            _ = loop.DelayAsync(TimeSpan.FromHours(1));
            await Task.Yield();
            throw new MainFailed("x");
        }));
        AssertClosedCleanly(loop);
    }

    [Fact]
    public void OperationCanceledException_from_main_is_rethrown()
    {
        using var cts = new CancellationTokenSource();
        var ex = Assert.ThrowsAny<OperationCanceledException>(() => Loop.Run(async () =>
        {
            Loop.Current.CallSoon(cts.Cancel);
            await Loop.Current.DelayAsync(TimeSpan.FromHours(1), cts.Token);
        }, CreatePolicy(), CreateOptions()));
        Assert.Equal(cts.Token, ex.CancellationToken);

        Assert.Throws<OperationCanceledException>(() => Loop.Run(async () =>
        {
            await Task.Yield();
            throw new OperationCanceledException("main gave up");
        }, CreatePolicy(), CreateOptions()));
    }

    [Fact]
    public void Exceptions_of_callbacks_go_to_the_handler_and_the_loop_goes_on()
    {
        ExpectErrors = true;
        var after = new List<string>();
        RunLoop(async loop =>
        {
            loop.CallSoon(() => throw new MainFailed("soon"));
            loop.CallSoon(() => after.Add("after soon"));
            loop.CallSoon(static _ => throw new MainFailed("soon with state"), 1);
            loop.CallLater(TimeSpan.Zero, () => throw new MainFailed("timer"));
            loop.CallLater(TimeSpan.Zero, () => after.Add("after timer"));
            await Task.Run(() => loop.CallSoonThreadSafe(() => throw new MainFailed("threadsafe")));
            AsyncVoid();
            await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
            after.Add("main");
        });
        Assert.Equal(["after soon", "after timer", "main"], after.Take(3));
        string[] messages = UnhandledErrors.Select(e => e.Exception!.Message).Order().ToArray();
        Assert.Equal(["async void", "soon", "soon with state", "threadsafe", "timer"], messages);
        Assert.All(UnhandledErrors, e => Assert.IsType<MainFailed>(e.Exception));
        Assert.All(UnhandledErrors, e => Assert.False(string.IsNullOrEmpty(e.Message)));

        static async void AsyncVoid()
        {
            await Task.Yield();
            throw new MainFailed("async void");
        }
    }

    [Fact]
    public void Exception_handler_can_be_replaced_while_running()
    {
        var seen = new List<string>();
        RunLoop(async loop =>
        {
            loop.ExceptionHandler = c => seen.Add(c.Exception!.Message);
            loop.CallSoon(() => throw new MainFailed("one"));
            await Task.Yield();
            await Task.Yield();
        });
        Assert.Equal(["one"], seen);
        Assert.Empty(UnhandledErrors);
    }

    [Fact]
    public void A_throwing_handler_does_not_kill_the_loop()
    {
        var log = new StringWriter();
        LoopOptions options = CreateOptions();
        options.ExceptionHandler = _ => throw new InvalidCastException("handler broke");
        options.Log = log;
        int ran = 0;
        RunLoop(async loop =>
        {
            loop.CallSoon(() => throw new MainFailed("callback broke"));
            loop.CallSoon(() => ran++);
            await Task.Yield();
            await Task.Yield();
            ran++;
        }, options);
        Assert.Equal(2, ran);
        string text = log.ToString();
        Assert.Contains("handler broke", text);
        Assert.Contains("callback broke", text);
    }

    [Fact]
    public void Without_a_handler_exceptions_are_written_to_the_log()
    {
        var log = new StringWriter();
        var options = new LoopOptions { Log = log, Debug = false };
        RunLoop(async loop =>
        {
            loop.CallSoon(() => throw new MainFailed("to the log"));
            await Task.Yield();
            await Task.Yield();
        }, options);
        Assert.Contains("to the log", log.ToString());
    }

    [Fact]
    public void Shutdown_cancels_the_token_and_waits_left_running_and_their_finally_runs()
    {
        bool tokenCancelledInCallback = false;
        bool finallyRan = false;
        int finallyThread = 0;
        int loopThread = 0;
        Task? leftRunning = null;
        CancellationToken shutdown = default;
        RunLoop(async loop =>
        {
            loopThread = Environment.CurrentManagedThreadId;
            shutdown = loop.ShutdownToken;
            shutdown.Register(() => tokenCancelledInCallback = true);
            leftRunning = Background(loop);
            await Task.Yield();
            Assert.False(shutdown.IsCancellationRequested);
        });

        Assert.True(tokenCancelledInCallback);
        Assert.True(finallyRan);
        Assert.Equal(loopThread, finallyThread);
        Assert.True(leftRunning!.IsCanceled);

        async Task Background(Loop loop)
        {
            try
            {
                await loop.DelayAsync(TimeSpan.FromHours(1));
            }
            finally
            {
                finallyRan = true;
                finallyThread = Environment.CurrentManagedThreadId;
            }
        }
    }

    [Fact]
    public void ShutdownToken_first_read_during_or_after_shutdown_is_cancelled()
    {
        bool cancelledWhenReadInCleanup = false;
        using Loop loop = CreateLoop();
        loop.RunUntilComplete(async () =>
        {
            _ = Cleanup(loop);
            await Task.Yield();
        });
        AssertClosedCleanly(loop);
        Assert.True(cancelledWhenReadInCleanup);
        Assert.True(loop.ShutdownToken.IsCancellationRequested);

        async Task Cleanup(Loop l)
        {
            try
            {
                await l.DelayAsync(TimeSpan.FromHours(1));
            }
            finally
            {
                // Main never read the token: the first read happens here, while the loop shuts down.
                cancelledWhenReadInCleanup = l.ShutdownToken.IsCancellationRequested;
            }
        }
    }

    [Fact]
    public void ShutdownToken_read_during_the_run_stays_readable_after_close()
    {
        CancellationToken during = default;
        using Loop loop = CreateLoop();
        loop.RunUntilComplete(() =>
        {
            during = loop.ShutdownToken;
            return Task.CompletedTask;
        });
        Assert.True(during.IsCancellationRequested);
        Assert.True(loop.ShutdownToken.IsCancellationRequested);
    }

    [Fact]
    public void Shutdown_cancels_work_that_observes_the_ShutdownToken()
    {
        bool cleanedUp = false;
        Task? worker = null;
        RunLoop(async loop =>
        {
            worker = Worker(loop.ShutdownToken);
            await Task.Yield();
        });
        Assert.True(cleanedUp);
        Assert.True(worker!.IsCanceled);

        async Task Worker(CancellationToken token)
        {
            try
            {
                while (true)
                {
                    await Task.Delay(TimeSpan.FromHours(1), Loop.Current.TimeProvider, token);
                }
            }
            finally
            {
                await Task.Yield(); // cleanup may still await on the loop while it drains
                cleanedUp = true;
            }
        }
    }
}

public sealed class ManagedRunTests : RunTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
