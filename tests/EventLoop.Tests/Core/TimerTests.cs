using Microsoft.Extensions.Time.Testing;

namespace EventLoop.Tests.Core;

public abstract class TimerTests : LoopTestBase
{
    [Fact]
    public void Timers_fire_in_deadline_order_and_equal_deadlines_in_fifo_order()
    {
        var fired = RunLoop(async loop =>
        {
            var order = new List<string>();
            var done = new TaskCompletionSource();
            TimeSpan at = loop.Time + TimeSpan.FromMilliseconds(5);
            loop.CallLater(TimeSpan.FromMilliseconds(20), () => { order.Add("late"); done.SetResult(); });
            for (int i = 0; i < 5; i++)
            {
                int n = i;
                loop.CallAt(at, () => order.Add("same" + n));
            }

            loop.CallLater(TimeSpan.Zero, () => order.Add("zero"));
            await done.Task;
            return order;
        });
        Assert.Equal(["zero", "same0", "same1", "same2", "same3", "same4", "late"], fired);
    }

    [Fact]
    public void A_cancelled_timer_never_fires_and_its_handle_says_so()
    {
        RunLoop(async loop =>
        {
            bool fired = false;
            LoopHandle handle = loop.CallLater(TimeSpan.FromMilliseconds(1), () => fired = true);
            Assert.True(handle.IsPending);
            Assert.True(handle.Cancel());
            Assert.False(handle.Cancel());
            Assert.True(handle.IsCancelled);
            await loop.DelayAsync(TimeSpan.FromMilliseconds(10));
            Assert.False(fired);
        });
    }

    [Fact]
    public void Cancelling_many_timers_compacts_the_heap()
    {
        RunLoop(async loop =>
        {
            var handles = new List<LoopHandle>();
            for (int i = 0; i < 1000; i++)
            {
                handles.Add(loop.CallLater(TimeSpan.FromHours(1), () => throw new InvalidOperationException("must not fire")));
            }

            Assert.Equal(1000, loop.TimerCount);
            handles.ForEach(h => h.Cancel());
            Assert.True(loop.TimerCount < 1000, "cancelled timers were not compacted away");
            await Task.Yield();
        });
    }

    [Fact]
    public void A_zero_delay_timer_added_by_a_timer_runs_after_callbacks_already_ready()
    {
        var order = RunLoop(async loop =>
        {
            var log = new List<string>();
            var done = new TaskCompletionSource();
            loop.CallLater(TimeSpan.Zero, () =>
            {
                log.Add("outer");
                loop.CallLater(TimeSpan.Zero, () => { log.Add("inner"); done.SetResult(); });
                loop.CallSoon(() => log.Add("soon"));
            });
            await done.Task;
            return log;
        });
        Assert.Equal(["outer", "soon", "inner"], order);
    }

    [Fact]
    public void A_negative_delay_is_rejected()
    {
        RunLoop(loop =>
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => loop.CallLater(TimeSpan.FromMilliseconds(-1), () => { }));
            Assert.Equal("delay", error.ParamName);
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.DelayAsync(TimeSpan.FromTicks(-1)); });
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void The_loop_time_is_monotonic_and_advances()
    {
        RunLoop(async loop =>
        {
            TimeSpan first = loop.Time;
            await loop.DelayAsync(TimeSpan.FromMilliseconds(5));
            TimeSpan second = loop.Time;
            Assert.True(second - first >= TimeSpan.FromMilliseconds(4), $"{first} -> {second}");
        });
    }

    [Fact]
    public void DelayAsync_can_be_cancelled_and_is_cancelled_at_shutdown()
    {
        Task? orphan = null;
        RunLoop(async loop =>
        {
            using var cts = new CancellationTokenSource();
            Task delay = loop.DelayAsync(TimeSpan.FromHours(1), cts.Token);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => delay);
            orphan = loop.DelayAsync(TimeSpan.FromHours(1));
        });
        Assert.True(orphan!.IsCanceled);
    }

    [Fact]
    public void The_time_provider_runs_Task_Delay_and_CancellationTokenSource_on_loop_timers()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            await Task.Delay(TimeSpan.FromMilliseconds(2), loop.TimeProvider);
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(2), loop.TimeProvider);
            var cancelledOn = new TaskCompletionSource<int>();
            cts.Token.Register(() => cancelledOn.SetResult(Environment.CurrentManagedThreadId));
            Assert.Equal(loopThread, await cancelledOn.Task);
        });
    }

    [Fact]
    public void Time_provider_timers_are_periodic_changeable_and_disposable_from_any_thread()
    {
        RunLoop(async loop =>
        {
            int ticks = 0;
            var three = new TaskCompletionSource();
            ITimer timer = loop.TimeProvider.CreateTimer(_ => { if (++ticks == 3) three.TrySetResult(); }, null, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
            await three.Task;
            timer.Dispose();
            int after = ticks;
            await loop.DelayAsync(TimeSpan.FromMilliseconds(10));
            Assert.Equal(after, ticks);

            var fromOtherThread = new TaskCompletionSource<int>();
            ITimer other = await Task.Run(() => loop.TimeProvider.CreateTimer(
                _ => fromOtherThread.TrySetResult(Environment.CurrentManagedThreadId), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan));
            Assert.True(await Task.Run(() => other.Change(TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan)));
            int firedOn = await fromOtherThread.Task;
            Assert.Equal(Environment.CurrentManagedThreadId, firedOn);
            other.Dispose();
        });
    }

    [Fact]
    public void An_injected_clock_lets_a_test_advance_time_instead_of_sleeping()
    {
        var clock = new FakeTimeProvider();
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        RunLoop(async loop =>
        {
            bool fired = false;
            loop.CallLater(TimeSpan.FromHours(1), () => fired = true);
            await Task.Yield();
            Assert.False(fired);
            clock.Advance(TimeSpan.FromHours(1));
            await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop: due timers move first
            Assert.True(fired);
            Task delay = Task.Delay(TimeSpan.FromDays(1), loop.TimeProvider);
            clock.Advance(TimeSpan.FromDays(1));
            await delay;
        }, options);
    }
}

public sealed class ManagedTimerTests : TimerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTimerTests : TimerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
