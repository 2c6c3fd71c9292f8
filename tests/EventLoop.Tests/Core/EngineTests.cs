using Microsoft.Extensions.Time.Testing;

namespace EventLoop.Tests.Core;

/// <summary>
/// Engine behaviours that mutation testing showed no test pinned down: FIFO order across the ready queue's growth
/// while it wraps, a timer change superseded by a later one, a cancelled sleep leaving the heap, and the loop's
/// <c>TimeProvider</c> following the configured clock.
/// </summary>
public abstract class EngineTests : LoopTestBase
{
    [Fact]
    public void Callbacks_run_in_FIFO_order_while_the_ready_queue_grows_and_wraps()
    {
        var ran = new List<int>();
        RunLoop(async loop =>
        {
            int next = 0;
            var done = new TaskCompletionSource();

            // Each callback schedules one or two more, so the queue keeps its head moving (it wraps) while it
            // grows well past its first capacity (256). Ids are given at scheduling time: FIFO means they run in order.
            void Schedule()
            {
                int id = next++;
                loop.CallSoon(() =>
                {
                    ran.Add(id);
                    if (id < 3_000)
                    {
                        Schedule();
                        if (id % 3 == 0)
                        {
                            Schedule();
                        }
                    }
                    else if (ran.Count == next)
                    {
                        done.TrySetResult();
                    }
                });
            }

            for (int i = 0; i < 150; i++)
            {
                Schedule();
            }

            await done.Task.WaitAsync(TestPipes.TestTimeout);
        });
        Assert.True(ran.Count > 3_000);
        Assert.Equal(Enumerable.Range(0, ran.Count), ran);
    }

    [Fact]
    public void A_timer_change_made_on_another_thread_and_superseded_on_the_loop_is_not_applied()
    {
        var clock = new FakeTimeProvider();
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        int fires = 0;
        RunLoop(async loop =>
        {
            using ITimer timer = loop.TimeProvider.CreateTimer(_ => fires++, null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

            // The other thread's change is posted to the loop; the loop's own change, made after it, applies at
            // once. When the posted one runs it is stale and must do nothing.
            var applied = new TaskCompletionSource();
            var other = new Thread(() =>
            {
                timer.Change(TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
                loop.CallSoonThreadSafe(() => applied.SetResult()); // posts from one thread run in order: after the change
            });
            other.Start();
            other.Join();
            Assert.True(timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan));

            await applied.Task.WaitAsync(TestPipes.TestTimeout); // the posted change has run
            Assert.Equal(0, loop.LiveTimerCount); // it armed nothing (not even a timer that would find itself stale)
            loop.CallSoon(() => clock.Advance(TimeSpan.FromSeconds(10)));
            for (int i = 0; i < 3; i++)
            {
                await loop.DelayAsync(TimeSpan.Zero);
            }

            Assert.Equal(0, loop.TimerCount);
        }, options);
        Assert.Equal(0, fires);
    }

    [Fact]
    public void A_cancelled_sleep_leaves_the_timer_heap_at_once()
    {
        RunLoop(async loop =>
        {
            int before = loop.LiveTimerCount;
            using var cancel = new CancellationTokenSource();
            Task sleep = loop.DelayAsync(TimeSpan.FromHours(1), cancel.Token);
            Assert.Equal(before + 1, loop.LiveTimerCount);
            cancel.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sleep.WaitAsync(TestPipes.TestTimeout));
            Assert.Equal(before, loop.LiveTimerCount); // cancelled, not left to fire (and hold the sleep) in an hour
        });
    }

    [Fact]
    public void The_loops_TimeProvider_tells_the_time_of_the_configured_clock()
    {
        var start = new DateTimeOffset(2000, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var clock = new FakeTimeProvider(start);
        clock.SetLocalTimeZone(TimeZoneInfo.CreateCustomTimeZone("Test/Zone", TimeSpan.FromHours(5), "Test", "Test"));
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        RunLoop(loop =>
        {
            Assert.Equal(start, loop.TimeProvider.GetUtcNow());
            clock.Advance(TimeSpan.FromMinutes(7));
            Assert.Equal(start.AddMinutes(7), loop.TimeProvider.GetUtcNow());
            Assert.Equal("Test/Zone", loop.TimeProvider.LocalTimeZone.Id);
            Assert.Equal(start.AddMinutes(7).ToOffset(TimeSpan.FromHours(5)), loop.TimeProvider.GetLocalNow());
            return Task.CompletedTask;
        }, options);
    }
}

public sealed class ManagedEngineTests : EngineTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvEngineTests : EngineTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
