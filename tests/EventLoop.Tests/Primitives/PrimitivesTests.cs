using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Primitives;

public abstract class AsyncQueueTests : LoopTestBase
{
    [Fact]
    public void Waiting_consumers_are_served_in_fifo_order()
    {
        var got = RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            var received = new List<(int Consumer, int Item)>();
            async Task Consume(int id)
            {
                for (int i = 0; i < 3; i++)
                {
                    received.Add((id, await queue.GetAsync()));
                }
            }

            Task a = Consume(1), b = Consume(2);
            for (int i = 0; i < 6; i++)
            {
                await queue.PutAsync(i).AsTask().WaitAsync(TestTimeout);
            }

            await Task.WhenAll(a, b).WaitAsync(TestTimeout);
            return received;
        });
        // Waiting consumers are served in the order they started waiting; each sees items in put order.
        Assert.Equal(Enumerable.Range(0, 6), got.Select(r => r.Item).Order());
        Assert.Equal(0, got.First(r => r.Consumer == 1).Item);
        Assert.Equal(1, got.First(r => r.Consumer == 2).Item);
        foreach (int consumer in new[] { 1, 2 })
        {
            var items = got.Where(r => r.Consumer == consumer).Select(r => r.Item).ToList();
            Assert.Equal(items.Order(), items);
        }
    }

    [Fact]
    public void A_bounded_queue_makes_the_producer_wait_until_there_is_room()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<string>(capacity: 2);
            Assert.True(queue.TryPut("a"));
            await queue.PutAsync("b").AsTask().WaitAsync(TestTimeout);
            Assert.True(queue.IsFull);
            Assert.False(queue.TryPut("x"));
            ValueTask third = queue.PutAsync("c");
            Assert.False(third.IsCompleted);
            Assert.Equal("a", await queue.GetAsync().AsTask().WaitAsync(TestTimeout));
            Assert.True(third.IsCompleted);
            await third.AsTask().WaitAsync(TestTimeout);
            Assert.True(queue.TryGet(out string? b));
            Assert.Equal("b", b);
            Assert.Equal("c", await queue.GetAsync().AsTask().WaitAsync(TestTimeout));
            Assert.True(queue.IsEmpty);
            Assert.False(queue.TryGet(out _));
        });
    }

    [Fact]
    public void Negative_capacity_is_rejected()
    {
        RunLoop(loop =>
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => new AsyncQueue<int>(-1));
            Assert.Equal("capacity", error.ParamName);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void JoinAsync_waits_until_every_item_is_marked_done_and_extra_TaskDone_throws()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            await queue.JoinAsync().WaitAsync(TestTimeout); // nothing put: completes at once
            queue.TryPut(1);
            queue.TryPut(2);
            Task join = queue.JoinAsync();
            Assert.Equal(1, await queue.GetAsync().AsTask().WaitAsync(TestTimeout));
            queue.TaskDone();
            Assert.False(join.IsCompleted);
            Assert.Equal(2, await queue.GetAsync().AsTask().WaitAsync(TestTimeout));
            queue.TaskDone();
            await join.WaitAsync(TestTimeout);
            Assert.Throws<InvalidOperationException>(queue.TaskDone);
        });
    }

    [Fact]
    public void A_cancelled_JoinAsync_ends_alone_and_marks_nothing_done()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            queue.TryPut(1);
            using var cts = new CancellationTokenSource();
            Task cancelledJoin = queue.JoinAsync(cts.Token);
            Task join = queue.JoinAsync();
            Assert.False(cancelledJoin.IsCompleted);
            cts.Cancel();
            var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelledJoin.WaitAsync(TestTimeout));
            Assert.Equal(cts.Token, error.CancellationToken);
            Assert.Equal(1, queue.UnfinishedTasks);
            Assert.False(join.IsCompleted); // the other join still waits for the item

            // Already cancelled: cancelled at once. Cancelled from another thread: ends on the loop.
            Assert.True(queue.JoinAsync(new CancellationToken(canceled: true)).IsCanceled);
            using var other = new CancellationTokenSource();
            int loopThread = Environment.CurrentManagedThreadId;
            Task joinFromThread = queue.JoinAsync(other.Token);
            await Task.Run(other.Cancel).WaitAsync(TestTimeout);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => joinFromThread.WaitAsync(TestTimeout));
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);

            Assert.Equal(1, await queue.GetAsync().AsTask().WaitAsync(TestTimeout));
            Assert.False(join.IsCompleted);
            queue.TaskDone();
            await join.WaitAsync(TestTimeout);
            Assert.Equal(0, queue.UnfinishedTasks);
        });
    }

    [Fact]
    public void A_cancelled_get_consumes_no_item_and_a_cancelled_put_adds_none()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>(capacity: 1);
            using (var cts = new CancellationTokenSource())
            {
                ValueTask<int> get = queue.GetAsync(cts.Token);
                cts.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => get.AsTask().WaitAsync(TestTimeout));
            }

            queue.TryPut(7);
            using (var cts = new CancellationTokenSource())
            {
                ValueTask put = queue.PutAsync(8, cts.Token);
                Assert.False(put.IsCompleted);
                cts.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => put.AsTask().WaitAsync(TestTimeout));
            }

            Assert.Equal(7, await queue.GetAsync().AsTask().WaitAsync(TestTimeout));
            Assert.True(queue.IsEmpty);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(
                async () => await queue.GetAsync(new CancellationToken(canceled: true)));
        });
    }

    [Fact]
    public void Cancellation_from_another_thread_completes_the_wait_on_the_loop()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            using var cts = new CancellationTokenSource();
            int loopThread = Environment.CurrentManagedThreadId;
            ValueTask<int> get = queue.GetAsync(cts.Token);
            await Task.Run(cts.Cancel).WaitAsync(TestTimeout);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => get.AsTask().WaitAsync(TestTimeout));
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
        });
    }

    [Fact]
    public void A_get_left_waiting_when_main_returns_is_cancelled_by_shutdown()
    {
        Task? orphan = null;
        bool finallyRan = false;
        RunLoop(loop =>
        {
            var queue = new AsyncQueue<int>();
            orphan = Waiter();
            return Task.CompletedTask;

            async Task Waiter()
            {
                try
                {
                    await queue.GetAsync();
                }
                finally
                {
                    finallyRan = true;
                }
            }
        });
        Assert.True(orphan!.IsCanceled);
        Assert.True(finallyRan);
    }

    [Fact]
    public void Calls_from_another_thread_are_rejected()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            var error = await Task.Run(() => Assert.Throws<InvalidOperationException>(() => queue.TryPut(1))).WaitAsync(TestTimeout);
            Assert.Contains("loop thread", error.Message);
        });
    }

    [Fact]
    public void A_steady_state_hand_off_allocates_nothing_per_item()
    {
        const int Rounds = 5;
        const int PerRound = 20_000;
        long[] allocated = RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>(capacity: 16);
            await HandOff(queue, 2_000).WaitAsync(TestTimeout); // warm up pools and tiered code
            var rounds = new long[Rounds];
            for (int round = 0; round < Rounds; round++)
            {
                // Measured on the loop thread, where every hand-off runs.
                long before = GC.GetAllocatedBytesForCurrentThread();
                await HandOff(queue, PerRound).WaitAsync(TestTimeout);
                rounds[round] = GC.GetAllocatedBytesForCurrentThread() - before;
            }

            return rounds;
        });

        // A round's fixed costs do not grow with its hand-offs: the producer's and consumer's async method boxes,
        // the timeout's timer, and whatever the runtime allocates on this thread meanwhile (tiered compilation,
        // more of it on a loaded machine). A single object per hand-off is at least 24 bytes, 480,000 bytes a
        // round, in every round; the bound, half a byte per hand-off in the quietest round, leaves the fixed costs
        // 10,000 bytes.
        long quietest = allocated.Min();
        Assert.True(quietest < PerRound / 2,
            $"allocated {quietest} bytes for {PerRound:N0} hand-offs in the quietest of {Rounds} rounds ({string.Join(", ", allocated)})");

        static async Task HandOff(AsyncQueue<int> queue, int count)
        {
            Task producer = Produce(queue, count);
            int outOfOrder = 0;
            for (int i = 0; i < count; i++)
            {
                if (await queue.GetAsync() != i)
                {
                    outOfOrder++;
                }
            }

            await producer;
            Assert.Equal(0, outOfOrder);
        }

        static async Task Produce(AsyncQueue<int> queue, int count)
        {
            for (int i = 0; i < count; i++)
            {
                await queue.PutAsync(i);
            }
        }
    }
}

public abstract class AsyncLockTests : LoopTestBase
{
    [Fact]
    public void The_lock_excludes_and_grants_in_fifo_order()
    {
        var log = RunLoop(async loop =>
        {
            var gate = new AsyncLock();
            var entries = new List<string>();
            int inside = 0;
            async Task Worker(string name)
            {
                using (await gate.LockAsync())
                {
                    Assert.Equal(0, inside++);
                    entries.Add(name);
                    await Task.Yield();
                    await Task.Yield();
                    inside--;
                }
            }

            await Task.WhenAll(Worker("a"), Worker("b"), Worker("c")).WaitAsync(TestTimeout);
            Assert.False(gate.IsLocked);
            return entries;
        });
        Assert.Equal(["a", "b", "c"], log);
    }

    [Fact]
    public void Disposing_a_releaser_twice_does_not_release_the_next_holder()
    {
        RunLoop(async loop =>
        {
            var gate = new AsyncLock();
            AsyncLock.Releaser first = await gate.LockAsync().AsTask().WaitAsync(TestTimeout);
            ValueTask<AsyncLock.Releaser> waiting = gate.LockAsync();
            first.Dispose();                 // hands the lock to the waiter
            AsyncLock.Releaser second = await waiting.AsTask().WaitAsync(TestTimeout);
            first.Dispose();                 // a second dispose of the old releaser: must do nothing
            Assert.True(gate.IsLocked);
            Assert.False(gate.LockAsync().IsCompleted, "the lock was taken from its holder");
            second.Dispose();
            Assert.True(gate.IsLocked);      // the pending LockAsync above now holds it
        });
    }

    [Fact]
    public void Releasing_a_lock_that_is_not_held_throws_and_a_cancelled_waiter_is_skipped()
    {
        RunLoop(async loop =>
        {
            var gate = new AsyncLock();
            Assert.Throws<InvalidOperationException>(gate.Release);
            var held = await gate.LockAsync().AsTask().WaitAsync(TestTimeout);
            using var cts = new CancellationTokenSource();
            var cancelled = gate.LockAsync(cts.Token);
            var next = gate.LockAsync();
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WaitAsync(TestTimeout));
            held.Dispose();
            (await next.AsTask().WaitAsync(TestTimeout)).Dispose();
            Assert.False(gate.IsLocked);
        });
    }
}

public abstract class AsyncEventTests : LoopTestBase
{
    [Fact]
    public void Set_wakes_every_waiter_and_clear_resets()
    {
        RunLoop(async loop =>
        {
            var ev = new AsyncEvent();
            int woken = 0;
            async Task Wait() { await ev.WaitAsync(); woken++; }
            Task all = Task.WhenAll(Wait(), Wait(), Wait());
            await Task.Yield();
            Assert.Equal(0, woken);
            ev.Set();
            await all.WaitAsync(TestTimeout);
            Assert.Equal(3, woken);
            Assert.True(ev.WaitAsync().IsCompleted);
            ev.Clear();
            Assert.False(ev.IsSet);
            ValueTask again = ev.WaitAsync();
            Assert.False(again.IsCompleted);
            ev.Set();
            await again.AsTask().WaitAsync(TestTimeout);
        });
    }

    [Fact]
    public void A_cancelled_wait_ends_alone_and_Set_still_wakes_the_others()
    {
        RunLoop(async loop =>
        {
            var ev = new AsyncEvent();
            using var cts = new CancellationTokenSource();
            ValueTask cancelled = ev.WaitAsync(cts.Token);
            ValueTask other = ev.WaitAsync();
            Assert.False(cancelled.IsCompleted);
            cts.Cancel();
            var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WaitAsync(TestTimeout));
            Assert.Equal(cts.Token, error.CancellationToken);
            Assert.False(ev.IsSet);
            Assert.False(other.IsCompleted);

            // Already cancelled: cancelled at once. Cancelled from another thread: ends on the loop.
            Assert.True(ev.WaitAsync(new CancellationToken(canceled: true)).IsCanceled);
            using var fromThread = new CancellationTokenSource();
            int loopThread = Environment.CurrentManagedThreadId;
            ValueTask waitFromThread = ev.WaitAsync(fromThread.Token);
            await Task.Run(fromThread.Cancel).WaitAsync(TestTimeout);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waitFromThread.AsTask().WaitAsync(TestTimeout));
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);

            ev.Set();
            await other.AsTask().WaitAsync(TestTimeout);
        });
    }
}

public abstract class AsyncSemaphoreTests : LoopTestBase
{
    [Fact]
    public void The_semaphore_limits_concurrency()
    {
        int peak = RunLoop(async loop =>
        {
            var sem = new AsyncSemaphore(2);
            int inside = 0, max = 0;
            async Task Work()
            {
                await sem.WaitAsync();
                try
                {
                    max = Math.Max(max, ++inside);
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
                    inside--;
                }
                finally
                {
                    sem.Release();
                }
            }

            await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Work())).WaitAsync(TestTimeout);
            Assert.Equal(2, sem.CurrentCount);
            return max;
        });
        Assert.Equal(2, peak);
    }

    [Fact]
    public void A_cancelled_wait_takes_no_slot_and_the_next_waiter_gets_it()
    {
        RunLoop(async loop =>
        {
            var sem = new AsyncSemaphore(0);
            using var cts = new CancellationTokenSource();
            ValueTask cancelled = sem.WaitAsync(cts.Token);
            ValueTask next = sem.WaitAsync();
            Assert.False(cancelled.IsCompleted);
            cts.Cancel();
            var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.AsTask().WaitAsync(TestTimeout));
            Assert.Equal(cts.Token, error.CancellationToken);

            sem.Release(); // to the waiter behind the cancelled one
            await next.AsTask().WaitAsync(TestTimeout);
            Assert.Equal(0, sem.CurrentCount);
            sem.Release(); // nobody waits now: the slot is free
            Assert.Equal(1, sem.CurrentCount);

            // Already cancelled with no slot free: cancelled at once, and takes nothing.
            Assert.True(sem.TryWait());
            Assert.True(sem.WaitAsync(new CancellationToken(canceled: true)).IsCanceled);

            // Cancelled from another thread: ends on the loop, and the slot released later stays free.
            using var fromThread = new CancellationTokenSource();
            int loopThread = Environment.CurrentManagedThreadId;
            ValueTask waitFromThread = sem.WaitAsync(fromThread.Token);
            await Task.Run(fromThread.Cancel).WaitAsync(TestTimeout);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waitFromThread.AsTask().WaitAsync(TestTimeout));
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            sem.Release();
            Assert.Equal(1, sem.CurrentCount);
        });
    }

    [Fact]
    public void A_bounded_semaphore_refuses_over_release()
    {
        RunLoop(loop =>
        {
            var sem = new AsyncSemaphore(1, maxCount: 1);
            Assert.Throws<SemaphoreFullException>(sem.Release);
            Assert.True(sem.TryWait());
            Assert.False(sem.TryWait());
            sem.Release();
            Assert.Throws<ArgumentOutOfRangeException>(() => new AsyncSemaphore(-1));
            return Task.CompletedTask;
        });
    }
}

public abstract class TaskGroupTests : LoopTestBase
{
    [Fact]
    public void The_first_failure_cancels_the_siblings_and_all_failures_are_reported()
    {
        bool siblingCancelled = false;
        var error = Assert.Throws<AggregateException>(() => RunLoop(async loop =>
        {
            await using var group = new TaskGroup();
            _ = group.Start(async token =>
            {
                try
                {
                    await loop.DelayAsync(TimeSpan.FromSeconds(30), token);
                }
                catch (OperationCanceledException)
                {
                    siblingCancelled = true;
                    throw;
                }
            });
            _ = group.Start(async _ => { await Task.Yield(); throw new InvalidOperationException("first"); });
            _ = group.Start(_ => throw new FormatException("second, synchronous"));
        }));
        Assert.True(siblingCancelled);
        Assert.Equal(2, error.InnerExceptions.Count);
        Assert.Contains(error.InnerExceptions, e => e is InvalidOperationException);
        Assert.Contains(error.InnerExceptions, e => e is FormatException);
    }

    [Fact]
    public void Results_are_available_and_late_starts_are_refused()
    {
        RunLoop(async loop =>
        {
            var group = new TaskGroup();
            Task<int> a = group.Start(async _ => { await Task.Yield(); return 1; });
            Task<int> b = group.Start(_ => Task.FromResult(2));
            await group.WaitAsync().WaitAsync(TestTimeout);
            Assert.Equal(3, a.Result + b.Result);
            Assert.Throws<InvalidOperationException>(() => { _ = group.Start(_ => Task.CompletedTask); });
        });
    }

    [Fact]
    public void The_outer_token_cancels_the_group()
    {
        RunLoop(async loop =>
        {
            using var cts = new CancellationTokenSource();
            var group = new TaskGroup(cts.Token);
            _ = group.Start(token => loop.DelayAsync(TimeSpan.FromSeconds(30), token));
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => group.WaitAsync().WaitAsync(TestTimeout));
        });
    }
}

public sealed class ManagedAsyncQueueTests : AsyncQueueTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedAsyncLockTests : AsyncLockTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedAsyncEventTests : AsyncEventTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedAsyncSemaphoreTests : AsyncSemaphoreTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedTaskGroupTests : TaskGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
