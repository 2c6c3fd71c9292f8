using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace EventLoop.Tests.Core;

public abstract class DebugModeTests : LoopTestBase
{
    /// <summary>
    /// A debug-mode loop reports every unobserved task exception the process finalizes (the event is global), so
    /// a task some other test dropped may be reported during these tests: not this test's error.
    /// </summary>
    protected override bool IsToleratedError(LoopExceptionContext error) => error.Message.Contains("never observed");

    private sealed class NeverObserved(string message) : Exception(message);

    private LoopOptions DebugOptions(StringWriter log)
    {
        LoopOptions options = CreateOptions();
        options.Debug = true;
        options.Log = log;
        options.SlowCallbackThreshold = TimeSpan.FromMilliseconds(20);
        return options;
    }

    /// <summary>Keeps the loop thread busy (not waiting for anything): the slow callback under test.</summary>
    private static void SlowCallbackForDebugTest()
    {
        var watch = Stopwatch.StartNew();
        while (watch.ElapsedMilliseconds < 40)
        {
            Thread.SpinWait(100);
        }
    }

    [Fact]
    public void A_slow_callback_is_reported_by_name()
    {
        var log = new StringWriter();
        RunLoop(async loop =>
        {
            Assert.True(loop.DebugMode);
            loop.CallSoon(SlowCallbackForDebugTest);
            loop.CallSoon(() => { }); // fast: not reported
            await Task.Yield();
            await Task.Yield();
        }, DebugOptions(log));
        string text = log.ToString();
        Assert.Contains(nameof(SlowCallbackForDebugTest), text);
        Assert.Contains("slow callback threshold", text);
        Assert.Contains(text.Split('\n'), line => line.Contains("took") && line.Contains(nameof(SlowCallbackForDebugTest)));
    }

    [Fact]
    public void A_slow_await_continuation_names_its_async_method()
    {
        var log = new StringWriter();
        RunLoop(async loop =>
        {
            await SlowAfterYieldForDebugTest();
        }, DebugOptions(log));
        Assert.Contains(nameof(SlowAfterYieldForDebugTest), log.ToString());

        static async Task SlowAfterYieldForDebugTest()
        {
            await Task.Yield();
            SlowCallbackForDebugTest();
        }
    }

    [Fact]
    public void No_slow_callback_warning_outside_debug_mode()
    {
        var log = new StringWriter();
        LoopOptions options = DebugOptions(log);
        options.Debug = false;
        RunLoop(async loop =>
        {
            loop.CallSoon(SlowCallbackForDebugTest);
            await Task.Yield();
            await Task.Yield();
        }, options);
        Assert.DoesNotContain("took", log.ToString());
    }

    [Fact]
    public void Exceptions_of_callbacks_still_reach_the_handler_in_debug_mode()
    {
        ExpectErrors = true;
        var log = new StringWriter();
        int after = 0;
        RunLoop(async loop =>
        {
            loop.CallSoon(() => throw new FormatException("debug"));
            loop.CallSoon(() => after++);
            await Task.Yield();
            await Task.Yield();
        }, DebugOptions(log));
        Assert.Equal(1, after);
        Assert.Contains(UnhandledErrors, e => e.Exception is FormatException { Message: "debug" });
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DropFaultedTask(string marker)
    {
        _ = Task.FromException(new NeverObserved(marker));
    }

    [Fact]
    public void An_unobserved_faulted_task_is_reported()
    {
        ExpectErrors = true;
        var log = new StringWriter();
        string marker = Guid.NewGuid().ToString("N");
        RunLoop(async loop =>
        {
            for (int attempt = 0; attempt < 20 && !Reported(); attempt++)
            {
                DropFaultedTask(marker);
                GC.Collect();
                GC.WaitForPendingFinalizers();
                await loop.DelayAsync(TimeSpan.FromMilliseconds(1)); // let the finalizer's post run
            }
        }, DebugOptions(log));
        Assert.True(Reported(), "the unobserved task exception was not reported");
        LoopExceptionContext context;
        lock (UnhandledErrors)
        {
            context = UnhandledErrors.First(IsOurs);
        }

        Assert.Contains("never observed", context.Message);

        bool Reported()
        {
            lock (UnhandledErrors)
            {
                return UnhandledErrors.Any(IsOurs);
            }
        }

        bool IsOurs(LoopExceptionContext c) =>
            c.Exception is AggregateException agg && agg.InnerExceptions.Any(e => e is NeverObserved n && n.Message == marker)
            || c.Exception is NeverObserved n2 && n2.Message == marker;
    }
}

public sealed class ManagedDebugModeTests : DebugModeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
