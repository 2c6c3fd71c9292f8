namespace EventLoop.Tests.Primitives;

/// <summary>AsyncCondition, AsyncBarrier, the bounded semaphore's cancellation, and the primitives' ...ThreadSafe members.</summary>
public abstract class ConditionBarrierTests : LoopTestBase
{
    [Fact]
    public void A_condition_hands_items_from_producers_to_waiting_consumers()
    {
        var got = RunLoop(async loop =>
        {
            var ready = new AsyncCondition();
            var items = new Queue<int>();
            var consumed = new List<int>();
            async Task Consume()
            {
                for (int i = 0; i < 5; i++)
                {
                    using (await ready.LockAsync())
                    {
                        await ready.WaitForAsync(() => items.Count > 0);
                        Assert.True(ready.IsLocked);
                        consumed.Add(items.Dequeue());
                    }
                }
            }

            async Task Produce(int from)
            {
                for (int i = from; i < from + 5; i++)
                {
                    using (await ready.LockAsync())
                    {
                        items.Enqueue(i);
                        ready.Notify();
                    }

                    await Task.Yield();
                }
            }

            await Task.WhenAll(Consume(), Consume(), Produce(0), Produce(100)).WaitAsync(TestPipes.TestTimeout);
            Assert.False(ready.IsLocked);
            return consumed;
        });
        Assert.Equal(Enumerable.Range(0, 5).Concat(Enumerable.Range(100, 5)), got.Order());
    }

    [Fact]
    public void Notify_wakes_the_oldest_waiters_and_NotifyAll_every_one()
    {
        var order = RunLoop(async loop =>
        {
            var condition = new AsyncCondition();
            var woken = new List<string>();
            async Task Wait(string name)
            {
                using (await condition.LockAsync())
                {
                    await condition.WaitAsync();
                    woken.Add(name);
                }
            }

            Task all = Task.WhenAll(Wait("a"), Wait("b"), Wait("c"), Wait("d"));
            await Task.Yield();
            Assert.Equal(4, condition.Waiting);
            using (await condition.LockAsync())
            {
                condition.Notify(2);
            }

            await Task.Yield();
            await Task.Yield();
            Assert.Equal(["a", "b"], woken);
            using (await condition.LockAsync())
            {
                condition.NotifyAll();
            }

            await all.WaitAsync(TestPipes.TestTimeout);
            return woken;
        });
        Assert.Equal(["a", "b", "c", "d"], order);
    }

    [Fact]
    public void A_cancelled_wait_takes_the_lock_back_before_throwing_and_the_callers_releaser_still_releases()
    {
        RunLoop(async loop =>
        {
            var condition = new AsyncCondition();
            Assert.Throws<InvalidOperationException>(() => condition.Notify());
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await condition.WaitAsync());

            using var cts = new CancellationTokenSource();
            bool heldAfterCancel = false;
            async Task WaitAndGetCancelled()
            {
                using (await condition.LockAsync())
                {
                    try
                    {
                        await condition.WaitAsync(cts.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        heldAfterCancel = condition.IsLocked;
                    }
                }
            }

            Task first = WaitAndGetCancelled();
            await Task.Yield();
            AsyncLock.Releaser other = await condition.LockAsync(); // the waiter let go of the lock
            cts.Cancel();
            await Task.Yield();
            Assert.False(first.IsCompleted, "the cancelled waiter must wait for the lock before it throws");
            other.Dispose();
            await first.WaitAsync(TestPipes.TestTimeout);
            Assert.True(heldAfterCancel);
            Assert.False(condition.IsLocked, "the releaser taken before the wait did not release the lock");

            // A plain wait and notify: the releaser from before the wait releases the re-acquired lock.
            async Task WaitOnce()
            {
                using (await condition.LockAsync())
                {
                    await condition.WaitAsync();
                }
            }

            Task waiting = WaitOnce();
            await Task.Yield();
            using (await condition.LockAsync())
            {
                condition.Notify();
            }

            await waiting.WaitAsync(TestPipes.TestTimeout);
            Assert.False(condition.IsLocked);
        });
    }

    [Fact]
    public void A_barrier_releases_each_round_together_with_their_places_and_is_reusable()
    {
        RunLoop(async loop =>
        {
            var barrier = new AsyncBarrier(3);
            var log = new List<string>();
            async Task<int[]> Party(string name)
            {
                var places = new int[2];
                for (int round = 0; round < 2; round++)
                {
                    log.Add($"{name} arrives {round}");
                    places[round] = await barrier.SignalAndWaitAsync();
                    log.Add($"{name} passes {round}");
                    await Task.Yield();
                }

                return places;
            }

            Task<int[]> a = Party("a");
            Task<int[]> b = Party("b");
            await Task.Yield();
            Assert.Equal(2, barrier.Waiting);
            Assert.DoesNotContain(log, l => l.Contains("passes"));
            Task<int[]> c = Party("c");
            int[][] places = await Task.WhenAll(a, b, c).WaitAsync(TestPipes.TestTimeout);
            Assert.Equal([0, 1, 2], places.Select(p => p[0]));
            Assert.All(places.Select(p => p[1]).Order().Select((p, i) => (p, i)), x => Assert.Equal(x.i, x.p));
            // No one passes round 0 before all three arrived.
            int lastArrival = log.IndexOf("c arrives 0");
            Assert.True(log.FindIndex(l => l.EndsWith("passes 0")) > lastArrival);
        });
    }

    [Fact]
    public void A_cancelled_barrier_wait_leaves_the_round_and_abort_and_reset_break_and_mend_it()
    {
        RunLoop(async loop =>
        {
            var barrier = new AsyncBarrier(2);
            using (var cts = new CancellationTokenSource())
            {
                ValueTask<int> leaving = barrier.SignalAndWaitAsync(cts.Token);
                cts.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await leaving);
            }

            Assert.Equal(0, barrier.Waiting);
            ValueTask<int> first = barrier.SignalAndWaitAsync();
            Assert.False(first.IsCompleted, "the cancelled waiter still counted");
            barrier.Abort();
            await Assert.ThrowsAsync<BrokenBarrierException>(async () => await first);
            Assert.True(barrier.IsBroken);
            await Assert.ThrowsAsync<BrokenBarrierException>(async () => await barrier.SignalAndWaitAsync());
            barrier.Reset();
            Assert.False(barrier.IsBroken);
            ValueTask<int> again = barrier.SignalAndWaitAsync();
            Assert.Equal(1, await barrier.SignalAndWaitAsync());
            Assert.Equal(0, await again);

            ValueTask<int> reset = barrier.SignalAndWaitAsync();
            barrier.Reset();
            await Assert.ThrowsAsync<BrokenBarrierException>(async () => await reset);
            Assert.Throws<ArgumentOutOfRangeException>(() => new AsyncBarrier(0));
        });
    }

    [Fact]
    public void A_cancelled_semaphore_wait_takes_no_slot_and_the_bounded_semaphore_refuses_over_release()
    {
        RunLoop(async loop =>
        {
            var semaphore = new AsyncSemaphore(1, maxCount: 1);
            await semaphore.WaitAsync();
            using var cts = new CancellationTokenSource();
            ValueTask cancelled = semaphore.WaitAsync(cts.Token);
            ValueTask next = semaphore.WaitAsync();
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await cancelled);
            semaphore.Release();
            await next; // the slot went to the waiter behind the cancelled one
            semaphore.Release();
            Assert.Equal(1, semaphore.CurrentCount);
            Assert.Throws<SemaphoreFullException>(semaphore.Release);
        });
    }

    [Fact]
    public void Other_threads_signal_through_the_ThreadSafe_members_and_the_plain_ones_refuse()
    {
        ExpectErrors = true; // the over-release posted from another thread reaches the exception handler
        RunLoop(async loop =>
        {
            var ev = new AsyncEvent();
            var semaphore = new AsyncSemaphore(0, maxCount: 1);
            ValueTask evWait = ev.WaitAsync();
            ValueTask semWait = semaphore.WaitAsync();
            await Task.Run(() =>
            {
                Assert.Throws<InvalidOperationException>(ev.Set);
                Assert.Throws<InvalidOperationException>(semaphore.Release);
                ev.SetThreadSafe();
                semaphore.ReleaseThreadSafe();
            });
            await evWait.AsTask().WaitAsync(TestPipes.TestTimeout);
            await semWait.AsTask().WaitAsync(TestPipes.TestTimeout);
            Assert.True(ev.IsSet);
            Assert.True(loop.IsOnLoopThread);

            await Task.Run(() =>
            {
                semaphore.ReleaseThreadSafe();
                semaphore.ReleaseThreadSafe(); // one too many for a bounded semaphore
            });
            for (int i = 0; i < 5 && UnhandledErrors.Count == 0; i++)
            {
                await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
            }

            Assert.IsType<SemaphoreFullException>(Assert.Single(UnhandledErrors).Exception);
        });
    }
}

public sealed class ManagedConditionBarrierTests : ConditionBarrierTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvConditionBarrierTests : ConditionBarrierTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
