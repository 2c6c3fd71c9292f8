namespace EventLoop.Tests.Core;

public abstract class SchedulingTests : LoopTestBase
{
    [Fact]
    public void CallSoon_runs_callbacks_in_fifo_order_on_the_loop_thread()
    {
        var order = new List<int>();
        int loopThread = 0;
        var threads = new HashSet<int>();
        RunLoop(async loop =>
        {
            loopThread = Environment.CurrentManagedThreadId;
            for (int i = 0; i < 100; i++)
            {
                loop.CallSoon(static s => { s.order.Add(s.i); s.threads.Add(Environment.CurrentManagedThreadId); }, (order, i, threads));
            }

            await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
        });
        Assert.Equal(Enumerable.Range(0, 100), order);
        Assert.Equal([loopThread], threads);
    }

    [Fact]
    public void Await_continuations_and_yield_run_on_the_loop_thread()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            await Task.Yield();
            Assert.Equal(id, Environment.CurrentManagedThreadId);
            await Task.Delay(TimeSpan.FromMilliseconds(5), loop.TimeProvider);
            Assert.Equal(id, Environment.CurrentManagedThreadId);
            await Task.Run(() => Thread.SpinWait(10));
            Assert.Equal(id, Environment.CurrentManagedThreadId);
            Assert.Same(loop, Loop.Current);
        });
    }
}

public sealed class ManagedSchedulingTests : SchedulingTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
