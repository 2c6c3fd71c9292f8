using Microsoft.Extensions.Time.Testing;

namespace EventLoop.Tests.Core;

public abstract class TimerTests : LoopTestBase
{
    /// <summary>Options with a fake clock: tests advance time from a loop callback instead of sleeping.</summary>
    private LoopOptions FakeClockOptions(out FakeTimeProvider clock)
    {
        clock = new FakeTimeProvider();
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        return options;
    }

    /// <summary>Advances the fake clock on the loop thread, so the loop sees it at its next iteration.</summary>
    private static void AdvanceOnLoop(Loop loop, FakeTimeProvider clock, TimeSpan by) =>
        loop.CallSoon(static s => s.clock.Advance(s.by), (clock, by));

    [Fact]
    public void CallLater_fires_in_deadline_order()
    {
        var order = new List<int>();
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            loop.CallLater(TimeSpan.FromSeconds(3), () => { order.Add(3); done.SetResult(); });
            loop.CallLater(TimeSpan.FromSeconds(1), () => order.Add(1));
            loop.CallLater(TimeSpan.FromSeconds(2), () => order.Add(2));
            loop.CallLater(TimeSpan.FromMilliseconds(1500), () => order.Add(15));
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(5));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);
        Assert.Equal([1, 15, 2, 3], order);
    }

    [Fact]
    public void CallLater_with_real_time_fires_in_deadline_order()
    {
        var order = new List<int>();
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            loop.CallLater(TimeSpan.FromMilliseconds(15), () => { order.Add(15); done.SetResult(); });
            loop.CallLater(TimeSpan.FromMilliseconds(5), () => order.Add(5));
            loop.CallLater(TimeSpan.FromMilliseconds(10), () => order.Add(10));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        });
        Assert.Equal([5, 10, 15], order);
    }

    [Fact]
    public void A_timer_does_not_fire_before_its_deadline()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        bool fired = false;
        RunLoop(async loop =>
        {
            loop.CallLater(TimeSpan.FromSeconds(10), () => fired = true);
            clock.Advance(TimeSpan.FromSeconds(9.99));
            for (int i = 0; i < 5; i++)
            {
                await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
            }

            Assert.False(fired);
            clock.Advance(TimeSpan.FromMilliseconds(10));
            for (int i = 0; i < 5 && !fired; i++)
            {
                await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
            }

            Assert.True(fired);
        }, options);
    }

    [Fact]
    public void Equal_deadlines_fire_in_fifo_order()
    {
        var order = new List<int>();
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            TimeSpan when = loop.Time + TimeSpan.FromSeconds(1);
            for (int i = 0; i < 50; i++)
            {
                loop.CallAt(when, static s => s.order.Add(s.i), (order, i));
            }

            loop.CallAt(when, done.SetResult);
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(1));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);
        Assert.Equal(Enumerable.Range(0, 50), order);
    }

    [Fact]
    public void A_cancelled_timer_never_fires_and_is_not_left_behind()
    {
        var fired = new List<int>();
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            LoopHandle a = loop.CallLater(TimeSpan.FromSeconds(1), () => fired.Add(1));
            LoopHandle b = loop.CallLater(TimeSpan.FromSeconds(2), () => fired.Add(2));
            LoopHandle c = loop.CallLater(TimeSpan.FromHours(1), () => fired.Add(3));
            loop.CallLater(TimeSpan.FromSeconds(3), done.SetResult);
            Assert.True(a.IsPending);
            Assert.True(a.Cancel());
            Assert.True(a.IsCancelled);
            Assert.False(a.Cancel());
            Assert.True(c.Cancel());
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(5));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            Assert.False(b.IsPending);
            Assert.False(b.Cancel());
        }, options);
        Assert.Equal([2], fired);
    }

    [Fact]
    public void A_timer_cancelled_by_an_earlier_timer_in_the_same_pass_does_not_fire()
    {
        var fired = new List<string>();
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            LoopHandle second = default;
            loop.CallLater(TimeSpan.FromSeconds(1), () => { fired.Add("first"); second.Cancel(); });
            second = loop.CallLater(TimeSpan.FromSeconds(2), () => fired.Add("second"));
            loop.CallLater(TimeSpan.FromSeconds(3), done.SetResult);
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(5));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);
        Assert.Equal(["first"], fired);
    }

    [Fact]
    public void A_zero_delay_timer_added_by_a_timer_runs_after_callbacks_already_ready()
    {
        var order = new List<string>();
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            loop.CallLater(TimeSpan.FromSeconds(1), () =>
            {
                order.Add("timer");
                loop.CallLater(TimeSpan.Zero, () => { order.Add("inner timer"); done.SetResult(); });
                loop.CallSoon(() => order.Add("soon from timer"));
            });
            loop.CallLater(TimeSpan.FromSeconds(1), () => order.Add("second timer"));
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(1));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);
        Assert.Equal(["timer", "second timer", "soon from timer", "inner timer"], order);
    }

    [Fact]
    public void A_timer_added_by_a_timer_fires_at_its_own_deadline()
    {
        var times = new List<TimeSpan>();
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            TimeSpan start = loop.Time;
            loop.CallLater(TimeSpan.FromSeconds(1), () =>
            {
                times.Add(loop.Time - start);
                loop.CallLater(TimeSpan.FromSeconds(1), () => { times.Add(loop.Time - start); done.SetResult(); });
                AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(1));
            });
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(1));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);
        Assert.Equal([TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)], times);
    }

    [Fact]
    public void Huge_delays_are_clamped_and_never_fire()
    {
        bool fired = false;
        RunLoop(async loop =>
        {
            LoopHandle a = loop.CallLater(TimeSpan.MaxValue, () => fired = true);
            LoopHandle b = loop.CallAt(TimeSpan.MaxValue, () => fired = true);
            LoopHandle c = loop.CallLater(TimeSpan.FromDays(365), () => fired = true);
            await loop.DelayAsync(TimeSpan.FromMilliseconds(2)); // the poll copes with far deadlines
            Assert.True(a.IsPending && b.IsPending && c.IsPending);
        });
        Assert.False(fired);
    }

    [Fact]
    public void Negative_delays_throw_ArgumentOutOfRangeException()
    {
        RunLoop(loop =>
        {
            TimeSpan negative = TimeSpan.FromMilliseconds(-5); // not -1 ms: that is Timeout.InfiniteTimeSpan
            Assert.Throws<ArgumentOutOfRangeException>(() => loop.CallLater(negative, () => { }));
            Assert.Throws<ArgumentOutOfRangeException>(() => loop.CallLater(negative, static _ => { }, 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.DelayAsync(negative); });
            Assert.Throws<ArgumentOutOfRangeException>(() => loop.TimeProvider.CreateTimer(_ => { }, null, negative, Timeout.InfiniteTimeSpan));
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void CallAt_in_the_past_runs_at_the_next_iteration()
    {
        bool ran = false;
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            bool minValueRan = false;
            loop.CallAt(TimeSpan.MinValue, () => minValueRan = true);
            loop.CallAt(TimeSpan.Zero, () => { ran = minValueRan; done.SetResult(); });
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        });
        Assert.True(ran);
    }

    [Fact]
    public void Time_is_monotonic_and_follows_the_clock()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(loop =>
        {
            TimeSpan t0 = loop.Time;
            clock.Advance(TimeSpan.FromMilliseconds(1234));
            Assert.Equal(TimeSpan.FromMilliseconds(1234), loop.Time - t0);
            return Task.CompletedTask;
        }, options);

        RunLoop(async loop =>
        {
            TimeSpan previous = loop.Time;
            for (int i = 0; i < 1000; i++)
            {
                TimeSpan now = loop.Time;
                Assert.True(now >= previous);
                previous = now;
            }

            TimeSpan before = loop.Time;
            await loop.DelayAsync(TimeSpan.FromMilliseconds(10));
            Assert.True(loop.Time - before >= TimeSpan.FromMilliseconds(9), $"slept {loop.Time - before}");
        });
    }

    [Fact]
    public void DelayAsync_completes_on_the_loop_after_the_delay()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            TimeSpan start = loop.Time;
            Task delay = loop.DelayAsync(TimeSpan.FromMinutes(5));
            await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
            Assert.False(delay.IsCompleted);
            AdvanceOnLoop(loop, clock, TimeSpan.FromMinutes(5));
            await delay.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(id, Environment.CurrentManagedThreadId);
            Assert.Equal(TimeSpan.FromMinutes(5), loop.Time - start);
            await loop.DelayAsync(TimeSpan.Zero);
        }, options);
    }

    [Fact]
    public void DelayAsync_is_cancelled_by_its_token()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            using var cts = new CancellationTokenSource();
            Task delay = loop.DelayAsync(TimeSpan.FromHours(1), cts.Token);
            loop.CallSoon(cts.Cancel);
            var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => delay);
            Assert.Equal(cts.Token, ex.CancellationToken);
            Assert.True(delay.IsCanceled);
            Assert.Equal(id, Environment.CurrentManagedThreadId);

            // Already cancelled: completes cancelled at once.
            Assert.True(loop.DelayAsync(TimeSpan.FromHours(1), cts.Token).IsCanceled);

            // Cancelled from another thread.
            using var other = new CancellationTokenSource();
            Task delay2 = loop.DelayAsync(TimeSpan.FromHours(1), other.Token);
            _ = Task.Run(other.Cancel);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => delay2);
            Assert.Equal(id, Environment.CurrentManagedThreadId);
        });
    }

    [Fact]
    public void TimeProvider_Task_Delay_runs_on_loop_timers()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            Task delay = Task.Delay(TimeSpan.FromSeconds(30), loop.TimeProvider);
            await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
            Assert.False(delay.IsCompleted);
            Assert.Equal(1, loop.TimerCount);
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(30));
            await delay.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(id, Environment.CurrentManagedThreadId);
        }, options);
    }

    [Fact]
    public void TimeProvider_CancellationTokenSource_cancels_on_the_loop()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2), loop.TimeProvider);
            var cancelledOn = new TaskCompletionSource<int>();
            cts.Token.Register(() => cancelledOn.SetResult(Environment.CurrentManagedThreadId));
            await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
            Assert.False(cts.IsCancellationRequested);
            AdvanceOnLoop(loop, clock, TimeSpan.FromSeconds(2));
            Assert.Equal(id, await cancelledOn.Task);
            Assert.True(cts.IsCancellationRequested);
        }, options);
    }

    [Fact]
    public void TimeProvider_timer_Change_periodic_and_Dispose()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            int fires = 0;
            int wrongThread = 0;
            ITimer timer = loop.TimeProvider.CreateTimer(_ =>
            {
                fires++;
                if (Environment.CurrentManagedThreadId != id)
                {
                    wrongThread++;
                }
            }, null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

            async Task Step(TimeSpan by)
            {
                AdvanceOnLoop(loop, clock, by);
                for (int i = 0; i < 3; i++)
                {
                    await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
                }
            }

            await Step(TimeSpan.FromSeconds(10));
            Assert.Equal(0, fires); // infinite due time: never

            Assert.True(timer.Change(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)));
            await Step(TimeSpan.FromSeconds(1));
            Assert.Equal(1, fires);
            await Step(TimeSpan.FromSeconds(2));
            Assert.Equal(2, fires);
            await Step(TimeSpan.FromSeconds(2));
            Assert.Equal(3, fires);

            // Change to one-shot.
            Assert.True(timer.Change(TimeSpan.FromSeconds(5), Timeout.InfiniteTimeSpan));
            await Step(TimeSpan.FromSeconds(4));
            Assert.Equal(3, fires);
            await Step(TimeSpan.FromSeconds(1));
            Assert.Equal(4, fires);
            await Step(TimeSpan.FromSeconds(10));
            Assert.Equal(4, fires);

            Assert.True(timer.Change(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
            timer.Dispose();
            Assert.False(timer.Change(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
            await Step(TimeSpan.FromSeconds(5));
            Assert.Equal(4, fires);
            Assert.Equal(0, wrongThread);
            Assert.Equal(0, loop.TimerCount);
        }, options);
    }

    [Fact]
    public void TimeProvider_timer_created_and_disposed_from_another_thread_fires_on_the_loop()
    {
        RunLoop(async loop =>
        {
            int id = Environment.CurrentManagedThreadId;
            var fired = new TaskCompletionSource<int>();
            ITimer timer = await Task.Run(() => loop.TimeProvider.CreateTimer(
                _ => fired.TrySetResult(Environment.CurrentManagedThreadId), null, TimeSpan.FromMilliseconds(2), Timeout.InfiniteTimeSpan));
            Assert.Equal(id, await fired.Task);

            int late = 0;
            ITimer periodic = await Task.Run(() => loop.TimeProvider.CreateTimer(
                _ => late++, null, TimeSpan.FromHours(1), TimeSpan.FromHours(1)));
            await Task.Run(periodic.Dispose);
            await Task.Run(() => Assert.False(periodic.Change(TimeSpan.Zero, TimeSpan.Zero)));
            await loop.DelayAsync(TimeSpan.FromMilliseconds(2));
            Assert.Equal(0, late);
            timer.Dispose();
        });
    }

    [Fact]
    public void Timers_disposed_from_another_thread_leave_the_loop()
    {
        RunLoop(async loop =>
        {
            TimeProvider tp = loop.TimeProvider;
            ITimer[] timers = null!;
            await Task.Run(() =>
            {
                timers = Enumerable.Range(0, 1000)
                    .Select(_ => tp.CreateTimer(static _ => { }, null, TimeSpan.FromHours(1), Timeout.InfiniteTimeSpan)).ToArray();
                return AfterPostsFromThisThread(loop);
            });
            Assert.True(loop.TimerCount >= 1000, $"{loop.TimerCount} timers");
            await Task.Run(() =>
            {
                Array.ForEach(timers, t => t.Dispose());
                return AfterPostsFromThisThread(loop);
            });
            Assert.True(loop.TimerCount <= 200, $"{loop.TimerCount} of 1000 disposed timers are still in the loop's heap");
        });
    }

    [Fact]
    public void Task_Delays_cancelled_from_another_thread_leave_the_loop()
    {
        RunLoop(async loop =>
        {
            using var cts = new CancellationTokenSource();
            Task[] delays = Enumerable.Range(0, 1000).Select(_ => Task.Delay(TimeSpan.FromHours(1), loop.TimeProvider, cts.Token)).ToArray();
            Assert.True(loop.TimerCount >= 1000, $"{loop.TimerCount} timers");
            await Task.Run(() =>
            {
                cts.Cancel();
                return AfterPostsFromThisThread(loop);
            });
            Assert.All(delays, d => Assert.True(d.IsCanceled));
            Assert.True(loop.TimerCount <= 200, $"{loop.TimerCount} of 1000 cancelled delays are still in the loop's heap");
        });
    }

    [Fact]
    public void Many_timers_cancelled_on_the_loop_are_removed()
    {
        RunLoop(async loop =>
        {
            var handles = new LoopHandle[1000];
            for (int i = 0; i < handles.Length; i++)
            {
                handles[i] = loop.CallLater(TimeSpan.FromHours(1), static () => { });
            }

            foreach (LoopHandle h in handles)
            {
                Assert.True(h.Cancel());
            }

            Assert.True(loop.TimerCount <= 200, $"{loop.TimerCount} of 1000 cancelled timers are still in the heap");
            await loop.DelayAsync(TimeSpan.Zero); // one turn of the loop
        });
    }

    [Fact]
    public void Task_Delay_with_the_loop_TimeProvider_from_another_thread_completes()
    {
        RunLoop(async loop =>
        {
            TimeProvider tp = loop.TimeProvider;
            await Task.Run(() => Task.Delay(TimeSpan.FromMilliseconds(2), tp));
            using var cts = await Task.Run(() => new CancellationTokenSource(TimeSpan.FromMilliseconds(2), tp));
            var cancelled = new TaskCompletionSource();
            cts.Token.Register(cancelled.SetResult);
            await cancelled.Task.WaitAsync(TestPipes.TestTimeout);
        });
    }

    /// <summary>
    /// Completes (on the loop) once the loop has run everything the calling thread posted with
    /// <see cref="Loop.CallSoonThreadSafe(Action)"/> before this call: posts from one thread run in order.
    /// Call it from the other thread, after the work whose posts the test waits for.
    /// </summary>
    private static Task AfterPostsFromThisThread(Loop loop)
    {
        Assert.False(loop.IsOnLoopThread);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.CallSoonThreadSafe(static d => d.SetResult(), done);
        return done.Task;
    }
}

public sealed class ManagedTimerTests : TimerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
