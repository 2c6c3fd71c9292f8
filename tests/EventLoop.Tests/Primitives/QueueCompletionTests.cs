namespace EventLoop.Tests.Primitives;

/// <summary>Completing a queue (asyncio 3.13's Queue.shutdown), the LIFO and priority queues, and the thread-safe puts.</summary>
public abstract class QueueCompletionTests : LoopTestBase
{
    [Fact]
    public void Completing_fails_the_waiting_getters_and_every_later_get()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            ValueTask<int> first = queue.GetAsync();
            ValueTask<int> second = queue.GetAsync();
            Assert.False(first.IsCompleted);
            queue.Complete();
            Assert.True(queue.IsCompleted);
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await first).WaitAsync(TestPipes.TestTimeout);
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await second).WaitAsync(TestPipes.TestTimeout);
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await queue.GetAsync());
            Assert.False(queue.TryGet(out _));
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await queue.PutAsync(1));
            Assert.False(queue.TryPut(1));
            Assert.True(queue.IsEmpty);
        });
    }

    [Fact]
    public void Completing_fails_the_waiting_putters_and_leaves_the_queued_items_to_be_taken()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<string>(capacity: 1);
            await queue.PutAsync("kept");
            ValueTask blocked = queue.PutAsync("dropped");
            Assert.False(blocked.IsCompleted);
            queue.Complete();
            var error = await Assert.ThrowsAsync<QueueCompletedException>(async () => await blocked).WaitAsync(TestPipes.TestTimeout);
            Assert.Contains("put", error.Message);
            Assert.IsAssignableFrom<InvalidOperationException>(error);
            Assert.Equal(1, queue.Count);
            Assert.Equal("kept", await queue.GetAsync());
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await queue.GetAsync());
            Assert.Equal(1, queue.UnfinishedTasks); // the dropped put was never counted
        });
    }

    [Fact]
    public void ReadAllAsync_ends_normally_once_the_completed_queue_is_drained()
    {
        var seen = RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>(capacity: 2);
            var got = new List<(int Consumer, int Item)>();
            async Task Consume(int id)
            {
                await foreach (int item in queue.ReadAllAsync())
                {
                    got.Add((id, item));
                    await Task.Yield();
                }
            }

            async Task Produce(int from)
            {
                for (int i = from; i < from + 10; i++)
                {
                    await queue.PutAsync(i);
                }
            }

            Task consumers = Task.WhenAll(Consume(1), Consume(2), Consume(3));
            await Task.WhenAll(Produce(0), Produce(100));
            queue.Complete(); // no sentinel values: every consumer ends after the last item
            await consumers.WaitAsync(TestPipes.TestTimeout);
            return got;
        });
        Assert.Equal(Enumerable.Range(0, 10).Concat(Enumerable.Range(100, 10)), seen.Select(s => s.Item).Order());
        Assert.Equal(3, seen.Select(s => s.Consumer).Distinct().Count());
    }

    [Fact]
    public void A_queue_completed_with_an_error_hands_out_its_items_then_throws_the_error_inside()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            queue.TryPut(1);
            queue.TryPut(2);
            var cause = new FormatException("the producer failed");
            queue.Complete(cause);
            queue.Complete(new InvalidOperationException("a second call's error is ignored"));
            var items = new List<int>();
            var error = await Assert.ThrowsAsync<QueueCompletedException>(async () =>
            {
                await foreach (int item in queue.ReadAllAsync())
                {
                    items.Add(item);
                }
            }).WaitAsync(TestPipes.TestTimeout);
            Assert.Equal([1, 2], items);
            Assert.Same(cause, error.InnerException);
            var again = await Assert.ThrowsAsync<QueueCompletedException>(async () => await queue.GetAsync());
            Assert.Same(cause, again.InnerException);
        });
    }

    [Fact]
    public void Immediate_completion_drops_the_items_and_wakes_putters_getters_and_join()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>(capacity: 2);
            await queue.PutAsync(1);
            await queue.PutAsync(2);
            ValueTask blocked = queue.PutAsync(3);
            Task join = queue.JoinAsync();
            queue.Complete(immediate: true);
            Assert.Equal(0, queue.Count);
            Assert.Equal(0, queue.UnfinishedTasks);
            await join.WaitAsync(TestPipes.TestTimeout); // the dropped items count as done
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await blocked).WaitAsync(TestPipes.TestTimeout);
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await queue.GetAsync());

            // Immediate after a graceful completion still drops what is left; waiting getters end at once.
            var other = new AsyncQueue<int>();
            other.TryPut(7);
            other.Complete();
            Assert.Equal(1, other.Count);
            other.Complete(immediate: true);
            Assert.Equal(0, other.Count);
            var idle = new AsyncQueue<int>();
            ValueTask<int> waiting = idle.GetAsync();
            idle.Complete(immediate: true);
            await Assert.ThrowsAsync<QueueCompletedException>(async () => await waiting).WaitAsync(TestPipes.TestTimeout);
        });
    }

    [Fact]
    public void Join_still_waits_for_items_taken_but_not_done_after_an_immediate_completion()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>();
            queue.TryPut(1);
            queue.TryPut(2);
            Assert.Equal(1, await queue.GetAsync()); // taken, not yet done
            Task join = queue.JoinAsync();
            queue.Complete(immediate: true);          // drops 2
            await Task.Yield();
            Assert.False(join.IsCompleted);
            queue.TaskDone();
            await join.WaitAsync(TestPipes.TestTimeout);
        });
    }

    [Fact]
    public void The_lifo_queue_hands_out_the_newest_item_first_and_completes_like_the_fifo_one()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncLifoQueue<int>(capacity: 3);
            AsyncQueue<int> asBase = queue;
            for (int i = 1; i <= 3; i++)
            {
                await asBase.PutAsync(i);
            }

            ValueTask blocked = queue.PutAsync(4);
            Assert.Equal(3, await queue.GetAsync()); // room made: 4 goes in on top
            await blocked;
            Assert.Equal(4, await queue.GetAsync());
            queue.Complete();
            var rest = new List<int>();
            await foreach (int item in queue.ReadAllAsync())
            {
                rest.Add(item);
            }

            Assert.Equal([2, 1], rest);
        });
    }

    [Fact]
    public void The_priority_queue_hands_out_the_smallest_first_and_equal_ones_in_put_order()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncPriorityQueue<(int Priority, string Job)>();
            foreach (var job in new[] { (3, "c"), (1, "a2"), (2, "b"), (1, "a1"), (0, "z") })
            {
                await queue.PutAsync(job);
            }

            var order = new List<string>();
            queue.Complete();
            await foreach (var (_, job) in queue.ReadAllAsync())
            {
                order.Add(job);
            }

            Assert.Equal(["z", "a1", "a2", "b", "c"], order); // (1, "a1") < (1, "a2"): tuples compare whole

            var byLength = new AsyncPriorityQueue<string>(comparer: Comparer<string>.Create((a, b) => a.Length.CompareTo(b.Length)));
            foreach (string word in new[] { "ccc", "x", "bb", "y", "a" })
            {
                byLength.TryPut(word);
            }

            var words = new List<string>();
            while (byLength.TryGet(out string? word))
            {
                words.Add(word);
            }

            Assert.Equal(["x", "y", "a", "bb", "ccc"], words); // equal lengths keep their put order
        });
    }

    [Fact]
    public void A_waiting_consumer_of_a_priority_queue_gets_the_first_item_put()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncPriorityQueue<int>();
            ValueTask<int> waiting = queue.GetAsync();
            queue.TryPut(5); // handed straight to the waiting consumer
            queue.TryPut(1);
            Assert.Equal(5, await waiting);
            Assert.Equal(1, await queue.GetAsync());
        });
    }

    [Fact]
    public void Other_threads_put_through_PutThreadSafeAsync_with_backpressure_and_complete_through_CompleteThreadSafe()
    {
        var got = RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>(capacity: 2);
            await Task.Run(() => Assert.Throws<InvalidOperationException>(() => queue.TryPut(0))); // the plain methods stay loop-affine
            Task producer = Task.Run(async () =>
            {
                for (int i = 0; i < 50; i++)
                {
                    await queue.PutThreadSafeAsync(i).WaitAsync(TestPipes.TestTimeout);
                }

                queue.CompleteThreadSafe();
            });
            var items = new List<int>();
            await foreach (int item in queue.ReadAllAsync())
            {
                Assert.True(loop.IsOnLoopThread);
                Assert.True(queue.Count <= 2);
                items.Add(item);
                if (items.Count % 10 == 0)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
                }
            }

            await producer.WaitAsync(TestPipes.TestTimeout);
            await Assert.ThrowsAsync<QueueCompletedException>(() => Task.Run(() => queue.PutThreadSafeAsync(99))).WaitAsync(TestPipes.TestTimeout);
            return items;
        });
        Assert.Equal(Enumerable.Range(0, 50), got);
    }

    [Fact]
    public void A_thread_safe_put_waiting_for_room_is_cancelled_by_its_token_and_adds_nothing()
    {
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<int>(capacity: 1);
            queue.TryPut(1);
            using var cts = new CancellationTokenSource();
            Task put = Task.Run(() => queue.PutThreadSafeAsync(2, cts.Token));
            await loop.DelayAsync(TimeSpan.FromMilliseconds(5));
            Assert.False(put.IsCompleted);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => put).WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(1, await queue.GetAsync());
            Assert.True(queue.IsEmpty);
        });
    }
}

public sealed class ManagedQueueCompletionTests : QueueCompletionTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvQueueCompletionTests : QueueCompletionTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
