using System.Net;

namespace EventLoop.Tests.Core;

public abstract class MisuseTests : LoopTestBase
{
    private static void AssertWrongThread(Action action)
    {
        var ex = Assert.Throws<InvalidOperationException>(action);
        Assert.Contains("not the loop's thread", ex.Message);
        Assert.Contains("CallSoonThreadSafe", ex.Message);
    }

    [Fact]
    public void Loop_affine_calls_from_another_thread_throw_InvalidOperationException()
    {
        bool ran = false;
        RunLoop(async loop =>
        {
            await Task.Run(() =>
            {
                Assert.False(loop.IsOnLoopThread);
                AssertWrongThread(() => loop.CallSoon(() => ran = true));
                AssertWrongThread(() => loop.CallSoon(static _ => { }, 1));
                AssertWrongThread(() => loop.CallLater(TimeSpan.Zero, () => ran = true));
                AssertWrongThread(() => loop.CallLater(TimeSpan.Zero, static _ => { }, 1));
                AssertWrongThread(() => loop.CallAt(TimeSpan.Zero, () => ran = true));
                AssertWrongThread(() => { _ = loop.DelayAsync(TimeSpan.Zero); });
                AssertWrongThread(() => { _ = loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0)); });
                AssertWrongThread(() => { _ = loop.ConnectTcpAsync(new IPEndPoint(IPAddress.Loopback, 1)); });
            }).WaitAsync(TestPipes.TestTimeout);

            // ConfigureAwait(false) moved us off the loop: loop-affine calls now fail too. The awaited task
            // completes on another thread only after the await registered (else the await would go on
            // synchronously, still on the loop thread).
            Task later = LoopProbe.CompletedOnAnotherThreadLater(loop);
            Assert.False(later.IsCompleted);
            await later.ConfigureAwait(false);
            Assert.False(loop.IsOnLoopThread);
            AssertWrongThread(() => loop.CallSoon(() => ran = true));
        });
        Assert.False(ran);
    }

    [Fact]
    public void Loop_Run_nested_inside_a_loop_callback_throws()
    {
        InvalidOperationException? fromMain = null;
        InvalidOperationException? fromCallback = null;
        InvalidOperationException? fromOtherLoop = null;
        RunLoop(async loop =>
        {
            fromMain = Assert.Throws<InvalidOperationException>(() => Loop.Run(() => Task.CompletedTask, CreatePolicy()));
            var done = new TaskCompletionSource();
            loop.CallSoon(() =>
            {
                fromCallback = Assert.Throws<InvalidOperationException>(() => Loop.Run(() => Task.FromResult(1), CreatePolicy()));
                using Loop other = CreateLoop();
                fromOtherLoop = Assert.Throws<InvalidOperationException>(() => other.RunUntilComplete(() => Task.CompletedTask));
                done.SetResult();
            });
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        });
        Assert.Contains("already running a loop", fromMain!.Message);
        Assert.Contains("already running a loop", fromCallback!.Message);
        Assert.Contains("already running a loop", fromOtherLoop!.Message);
    }

    [Fact]
    public void A_loop_used_after_it_closed_throws()
    {
        using Loop loop = CreateLoop();
        loop.RunUntilComplete(() => Task.CompletedTask);
        AssertClosedCleanly(loop);

        var again = Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(() => Task.CompletedTask));
        Assert.Contains("closed", again.Message);
        Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(() => Task.FromResult(1)));
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => loop.CallSoonThreadSafe(() => { })).Message);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => loop.CallSoon(() => { })).Message);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => loop.CallLater(TimeSpan.Zero, () => { })).Message);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => { _ = loop.DelayAsync(TimeSpan.Zero); }).Message);
        Assert.Contains("closed", Assert.Throws<InvalidOperationException>(() => { _ = loop.RunInExecutor(() => 1); }).Message);

        // From another thread too.
        Task.Run(() => Assert.Throws<InvalidOperationException>(() => loop.CallSoonThreadSafe(() => { }))).GetAwaiter().GetResult();

        // A loop that never ran and was disposed is closed as well.
        Loop unused = CreateLoop();
        unused.Dispose();
        Assert.True(unused.IsClosed);
        Assert.Throws<InvalidOperationException>(() => unused.RunUntilComplete(() => Task.CompletedTask));
    }

    [Fact]
    public void Null_arguments_throw_ArgumentNullException()
    {
        RunLoop(loop =>
        {
            Assert.Throws<ArgumentNullException>(() => loop.CallSoon(null!));
            Assert.Throws<ArgumentNullException>(() => loop.CallSoon<int>(null!, 1));
            Assert.Throws<ArgumentNullException>(() => loop.CallLater(TimeSpan.Zero, null!));
            Assert.Throws<ArgumentNullException>(() => loop.CallLater<int>(TimeSpan.Zero, null!, 1));
            Assert.Throws<ArgumentNullException>(() => loop.CallAt(TimeSpan.Zero, null!));
            Assert.Throws<ArgumentNullException>(() => loop.CallAt<int>(TimeSpan.Zero, null!, 1));
            Assert.Throws<ArgumentNullException>(() => loop.CallSoonThreadSafe(null!));
            Assert.Throws<ArgumentNullException>(() => loop.CallSoonThreadSafe<int>(null!, 1));
            Assert.Throws<ArgumentNullException>(() => { _ = loop.RunInExecutor((Action)null!); });
            Assert.Throws<ArgumentNullException>(() => { _ = loop.RunInExecutor((Func<int>)null!); });
            Assert.Throws<ArgumentNullException>(() => { _ = loop.RunInExecutor<int, int>(null!, 1); });
            Assert.Throws<ArgumentNullException>(() => loop.SynchronizationContext.Post(null!, null));
            Assert.Throws<ArgumentNullException>(() => loop.SynchronizationContext.Send(null!, null));
            Assert.Throws<ArgumentNullException>(() => loop.TimeProvider.CreateTimer(null!, null, TimeSpan.Zero, TimeSpan.Zero));
            return Task.CompletedTask;
        });

        Assert.Throws<ArgumentNullException>(() => Loop.Run((Func<Task>)null!, CreatePolicy()));
        Assert.Throws<ArgumentNullException>(() => Loop.Run(() => Task.CompletedTask, null!));
        Assert.Throws<ArgumentNullException>(() => Loop.Run((Func<Task<int>>)null!, CreatePolicy()));
        using Loop loop = CreateLoop();
        Assert.Throws<ArgumentNullException>(() => loop.RunUntilComplete((Func<Task>)null!));
    }

    [Fact]
    public void Main_returning_null_is_reported()
    {
        using Loop loop = CreateLoop();
        var ex = Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(() => null!));
        Assert.Contains("null", ex.Message);
        AssertClosedCleanly(loop);
    }

    [Fact]
    public void Loop_Current_off_the_loop_throws()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Loop.Current);
        Assert.Contains("no event loop", ex.Message);
        Assert.False(Loop.TryGetCurrent(out _));
        RunLoop(async loop =>
        {
            Assert.Same(loop, Loop.Current);
            await Task.Run(() =>
            {
                Assert.Throws<InvalidOperationException>(() => Loop.Current);
                Assert.False(Loop.TryGetCurrent(out _));
            });
        });
    }

    [Fact]
    public void Blocking_the_loop_thread_on_its_own_unfinished_task_throws()
    {
        LoopOptions options = CreateOptions();
        options.BlockingWaitLimit = TimeSpan.FromMilliseconds(100);
        RunLoop(async loop =>
        {
            // From main.
            var tcs = new TaskCompletionSource<int>();
            loop.CallSoon(() => tcs.SetResult(1)); // only the loop can complete it
            var ex = Assert.Throws<InvalidOperationException>(() => tcs.Task.Wait());
            Assert.Contains("deadlock", ex.Message);
            Assert.Equal(1, await tcs.Task);

            // From a callback, with .Result.
            var inner = new TaskCompletionSource<int>();
            var caught = new TaskCompletionSource<Exception?>();
            loop.CallSoon(() =>
            {
                loop.CallSoon(() => inner.SetResult(2));
                try
                {
                    _ = inner.Task.Result;
                    caught.SetResult(null);
                }
                catch (Exception e)
                {
                    caught.SetResult(e);
                }
            });
            Exception? fromCallback = await caught.Task.WaitAsync(TestPipes.TestTimeout);
            Assert.IsType<InvalidOperationException>(fromCallback);
            Assert.Equal(2, await inner.Task);

            // Blocking on work another thread finishes is allowed.
            int value = Task.Run(() => 3).Result;
            Assert.Equal(3, value);
        }, options);
    }
}

public sealed class ManagedMisuseTests : MisuseTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
