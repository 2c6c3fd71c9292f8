using System.Diagnostics;
using System.Runtime.InteropServices;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Signals;

/// <summary>
/// Signal handlers (uvloop's test_signals): a handler runs as a loop callback on the loop thread, once per signal,
/// even while the loop is busy; a second handler replaces the first; several loops each get the signal; removing
/// the handler brings the default action back (in a child process: it ends the process); misuse is refused.
/// SIGUSR1 and SIGWINCH are sent in-process, only while a handler is installed (and the handler has run before it is
/// removed), and the policies' classes run one after the other.
/// </summary>
public abstract class SignalTests : LoopTestBase
{
    /// <summary>Two signals this class may send to the test process (with a handler installed first).</summary>
    protected abstract (PosixSignal First, PosixSignal Second) Signals { get; }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>Sends <paramref name="signal"/> (a raw number) to this process.</summary>
    internal static void Raise(PosixSignal signal) => Assert.Equal(0, kill(Environment.ProcessId, (int)signal));

    /// <summary>Runs loop turns until <paramref name="done"/> holds (bounded by the test timeout).</summary>
    private static async Task UntilAsync(Loop loop, Func<bool> done)
    {
        using var deadline = new CancellationTokenSource(TestTimeout);
        while (!done())
        {
            await loop.DelayAsync(TimeSpan.FromMilliseconds(1), deadline.Token);
        }
    }

    [Fact]
    public void A_handler_runs_on_the_loop_thread_once_per_signal()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            var threads = new List<int>();
            using SignalHandlerRegistration registration = loop.AddSignalHandler(Signals.First, () => threads.Add(Environment.CurrentManagedThreadId));
            Assert.Equal(Signals.First, registration.Signal);
            for (int i = 1; i <= 3; i++)
            {
                Raise(Signals.First);
                await UntilAsync(loop, () => threads.Count >= i);
            }

            await loop.DelayAsync(TimeSpan.FromMilliseconds(20)); // a late duplicate would show here
            Assert.Equal(new[] { loopThread, loopThread, loopThread }, threads);
        });
    }

    [Fact]
    public void A_signal_that_arrives_while_the_loop_is_busy_runs_its_handler_once_after_the_busy_callback()
    {
        RunLoop(async loop =>
        {
            int calls = 0;
            bool busyDone = false;
            bool ranAfterBusy = false;
            using SignalHandlerRegistration registration = loop.AddSignalHandler(Signals.First, () =>
            {
                calls++;
                ranAfterBusy = busyDone;
            });

            loop.CallSoon(() =>
            {
                Raise(Signals.First);
                var busy = Stopwatch.StartNew();
                while (busy.ElapsedMilliseconds < 50)
                {
                    // The loop is busy: the handler cannot run inside this callback.
                }

                busyDone = true;
            });
            await UntilAsync(loop, () => calls > 0);
            await loop.DelayAsync(TimeSpan.FromMilliseconds(20));
            Assert.Equal(1, calls);
            Assert.True(ranAfterBusy, "the handler ran inside another callback, not as a loop callback of its own");
        });
    }

    [Fact]
    public void A_second_handler_for_the_same_signal_replaces_the_first_and_RemoveSignalHandler_removes_it()
    {
        RunLoop(async loop =>
        {
            int first = 0, second = 0, other = 0;
            SignalHandlerRegistration one = loop.AddSignalHandler(Signals.First, () => first++);
            SignalHandlerRegistration two = loop.AddSignalHandler(Signals.First, () => second++);
            using SignalHandlerRegistration keep = loop.AddSignalHandler(Signals.Second, () => other++); // keeps the signal caught
            Assert.True(one.IsRemoved);
            Raise(Signals.First);
            await UntilAsync(loop, () => second == 1);
            Assert.Equal(0, first);

            // Removed from this loop; the signal is still caught by a second handler on the loop so the process lives.
            using SignalHandlerRegistration guard = loop.AddSignalHandler(Signals.Second, () => other++);
            Assert.True(loop.RemoveSignalHandler(Signals.First));
            Assert.True(two.IsRemoved);
            Assert.False(loop.RemoveSignalHandler(Signals.First));
            two.Dispose(); // idempotent
        });
    }

    [Fact]
    public void Several_loops_each_get_the_signal_and_removing_one_leaves_the_other()
    {
        using var bReady = new ManualResetEventSlim();
        using var bSawFirst = new ManualResetEventSlim();
        using var stopB = new ManualResetEventSlim();
        int bCalls = 0;
        Exception? bFailure = null;
        var threadB = new Thread(() =>
        {
            try
            {
                RunLoop(async loop =>
                {
                    using SignalHandlerRegistration registration = loop.AddSignalHandler(Signals.Second, () =>
                    {
                        Interlocked.Increment(ref bCalls);
                        bSawFirst.Set();
                    });
                    bReady.Set();
                    await loop.RunInExecutor(() => stopB.Wait(TestTimeout));
                });
            }
            catch (Exception ex)
            {
                bFailure = ex;
            }
        });
        threadB.Start();
        try
        {
            Assert.True(bReady.Wait(TestTimeout));
            RunLoop(async loop =>
            {
                int aCalls = 0;
                SignalHandlerRegistration registration = loop.AddSignalHandler(Signals.Second, () => aCalls++);
                Raise(Signals.Second);
                await UntilAsync(loop, () => aCalls == 1 && Volatile.Read(ref bCalls) == 1);

                registration.Dispose();
                Raise(Signals.Second); // loop B still handles it (the process lives), loop A no longer
                await UntilAsync(loop, () => Volatile.Read(ref bCalls) == 2);
                await loop.DelayAsync(TimeSpan.FromMilliseconds(20));
                Assert.Equal(1, aCalls);
            });
        }
        finally
        {
            stopB.Set();
            Assert.True(threadB.Join(TestTimeout));
        }

        Assert.Null(bFailure);
    }

    [Fact]
    public void Disposing_from_another_thread_removes_the_handler_and_a_handler_left_registered_is_removed_by_shutdown()
    {
        SignalHandlerRegistration? left = null;
        RunLoop(async loop =>
        {
            SignalHandlerRegistration registration = loop.AddSignalHandler(Signals.First, () => { });
            await Task.Run(registration.Dispose);
            await UntilAsync(loop, () => !loop.RemoveSignalHandler(Signals.First) && registration.IsRemoved);
            left = loop.AddSignalHandler(Signals.First, () => { });
        });

        Assert.True(left!.IsRemoved);
    }

    [Fact]
    public void A_handler_that_throws_is_reported_and_the_loop_goes_on()
    {
        ExpectErrors = true;
        RunLoop(async loop =>
        {
            int calls = 0;
            using SignalHandlerRegistration registration = loop.AddSignalHandler(Signals.First, () =>
            {
                calls++;
                throw new InvalidOperationException("handler failed");
            });
            Raise(Signals.First);
            await UntilAsync(loop, () => calls == 1);
            Raise(Signals.First); // (sent together, two signals of one kind may arrive as one: POSIX signals do not queue)
            await UntilAsync(loop, () => calls == 2);
        });

        Assert.Equal(2, UnhandledErrors.Count(e => e.Exception is InvalidOperationException { Message: "handler failed" }));
    }

    [Fact]
    public void Misuse_is_refused_naming_the_problem()
    {
        RunLoop(async loop =>
        {
            Assert.Throws<ArgumentNullException>(() => loop.AddSignalHandler(Signals.First, null!));
            Assert.Contains("SIGKILL", Assert.Throws<ArgumentException>(() => loop.AddSignalHandler((PosixSignal)9, () => { })).Message);
            Assert.Contains("SIGSTOP", Assert.Throws<ArgumentException>(() => loop.AddSignalHandler((PosixSignal)19, () => { })).Message);
            Assert.Throws<ArgumentException>(() => loop.AddSignalHandler((PosixSignal)0, () => { }));
            Assert.Throws<ArgumentException>(() => loop.AddSignalHandler((PosixSignal)65, () => { }));
            var offLoop = await Task.Run(() => Assert.Throws<InvalidOperationException>(() => loop.AddSignalHandler(Signals.First, () => { })));
            Assert.Contains("thread", offLoop.Message);
            await Task.Run(() => Assert.Throws<InvalidOperationException>(() => loop.RemoveSignalHandler(Signals.First)));
        });
    }

    [Fact]
    public async Task Removing_the_handler_brings_back_the_default_action_which_ends_the_process()
    {
        const int SIGUSR2 = 12;
        var start = new ProcessStartInfo(TestProgram.DotnetHost(), [typeof(TestProgram).Assembly.Location, TestProgram.SignalDefaultCommand, CreatePolicy() is global::EventLoop.Libuv.LibuvLoopPolicy ? "libuv" : "managed", SIGUSR2.ToString()])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using Process child = Process.Start(start)!;
        Task<string> output = child.StandardOutput.ReadToEndAsync();
        Task<string> errors = child.StandardError.ReadToEndAsync();
        try
        {
            await child.WaitForExitAsync().WaitAsync(TestTimeout);
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill();
            }
        }

        Assert.Equal("handled 1", (await output).Trim());
        Assert.True(child.ExitCode == 128 + SIGUSR2, $"exit code {child.ExitCode} (expected death by SIGUSR2, {128 + SIGUSR2}): {await errors}");
    }
}

// Both classes send the same signals to the one test process: they run one after the other.
[Collection("Signals")]
public sealed class ManagedSignalTests : SignalTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();

    protected override (PosixSignal First, PosixSignal Second) Signals => ((PosixSignal)10 /* SIGUSR1 */, (PosixSignal)28 /* SIGWINCH */);
}

[Collection("Signals")]
public sealed class LibuvSignalTests : SignalTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    protected override (PosixSignal First, PosixSignal Second) Signals => ((PosixSignal)10 /* SIGUSR1 */, (PosixSignal)28 /* SIGWINCH */);
}
