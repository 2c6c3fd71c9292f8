namespace EventLoop.Tests.Core;

/// <summary>Loop.RunForever: asyncio's run_forever, ended by Stop() from a callback or another thread.</summary>
public abstract class RunForeverTests : LoopTestBase
{
    [Fact]
    public void RunForever_runs_what_was_scheduled_until_a_callback_stops_it_then_shuts_down()
    {
        using Loop loop = CreateLoop();
        var seen = new List<string>();
        bool sleeperCancelled = false;
        loop.CallSoon(() => seen.Add("first"));
        loop.CallSoon(async () =>
        {
            try
            {
                await loop.DelayAsync(TimeSpan.FromHours(1));
            }
            catch (OperationCanceledException)
            {
                sleeperCancelled = true; // the shutdown after Stop cancels what is left
            }
        });
        loop.CallLater(TimeSpan.FromMilliseconds(10), () =>
        {
            seen.Add("timer");
            loop.Stop();
        });
        loop.RunForever();
        Assert.Equal(["first", "timer"], seen);
        Assert.True(sleeperCancelled);
        AssertClosedCleanly(loop);
        Assert.Throws<InvalidOperationException>(loop.RunForever); // a loop runs once
    }

    [Fact]
    public void Another_thread_feeds_and_stops_a_loop_running_forever()
    {
        using Loop loop = CreateLoop();
        var ran = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                loop.RunForever();
            }
            catch (Exception ex)
            {
                error = ex;
            }
        })
        { IsBackground = true };
        thread.Start();
        loop.CallSoonThreadSafe(() => ran.SetResult(Environment.CurrentManagedThreadId));
        Assert.Equal(thread.ManagedThreadId, ran.Task.WaitAsync(TestPipes.TestTimeout).GetAwaiter().GetResult());
        loop.Stop();
        Assert.True(thread.Join(TestPipes.TestTimeout));
        Assert.Null(error);
        AssertClosedCleanly(loop);
    }
}

public sealed class ManagedRunForeverTests : RunForeverTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvRunForeverTests : RunForeverTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
