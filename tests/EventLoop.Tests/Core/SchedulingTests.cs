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
    public void Callbacks_added_by_callbacks_run_after_those_already_ready()
    {
        var order = new List<string>();
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            loop.CallSoon(() =>
            {
                order.Add("a");
                loop.CallSoon(() =>
                {
                    order.Add("c");
                    loop.CallSoon(() => { order.Add("e"); done.SetResult(); });
                });
            });
            loop.CallSoon(() => { order.Add("b"); loop.CallSoon(() => order.Add("d")); });
            await done.Task;
        });
        Assert.Equal(["a", "b", "c", "d", "e"], order);
    }

    [Fact]
    public void State_overloads_pass_their_state()
    {
        var seen = new List<(string, int)>();
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            loop.CallSoon(static s => s.seen.Add(("soon", s.n)), (seen, n: 1));
            loop.CallSoonThreadSafe(static s => s.seen.Add(("threadsafe", s.n)), (seen, n: 2));
            loop.CallLater(TimeSpan.Zero, static s => s.seen.Add(("later", s.n)), (seen, n: 3));
            loop.CallAt(loop.Time, static s => s.seen.Add(("at", s.n)), (seen, n: 4));
            await Task.Run(() => loop.CallSoonThreadSafe(static s => { s.seen.Add(("other thread", s.n)); }, (seen, n: 5)));
            loop.CallLater(TimeSpan.FromMilliseconds(1), static s => s.SetResult(), done);
            await done.Task;
        });
        Assert.Equal(5, seen.Count);
        Assert.Equal([("soon", 1), ("threadsafe", 2)], seen.Take(2));
        Assert.Contains(("later", 3), seen);
        Assert.Contains(("at", 4), seen);
        Assert.Contains(("other thread", 5), seen);
    }

    [Fact]
    public void Cancel_before_run_prevents_the_callback()
    {
        bool ran = false;
        LoopHandle handle = default;
        RunLoop(async loop =>
        {
            handle = loop.CallSoon(() => ran = true);
            Assert.True(handle.IsPending);
            Assert.False(handle.IsCancelled);
            Assert.True(handle.Cancel());
            Assert.False(handle.IsPending);
            Assert.True(handle.IsCancelled);
            Assert.False(handle.Cancel());
            await Task.Yield();
            await Task.Yield();
        });
        Assert.False(ran);
    }

    [Fact]
    public void Cancel_after_run_returns_false()
    {
        int runs = 0;
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            LoopHandle handle = loop.CallSoon(() => { runs++; done.SetResult(); });
            await done.Task;
            Assert.False(handle.IsPending);
            Assert.False(handle.IsCancelled);
            Assert.False(handle.Cancel());
            Assert.False(handle.IsCancelled);

            // The pooled item behind the stale handle is reused: the old handle must not cancel the new callback.
            bool second = false;
            LoopHandle next = loop.CallSoon(() => second = true);
            Assert.False(handle.Cancel());
            await Task.Yield();
            await Task.Yield();
            Assert.True(second);
            Assert.False(next.IsPending);
        });
        Assert.Equal(1, runs);
    }

    [Fact]
    public void Cancel_is_loop_affine_and_other_threads_cancel_through_the_loop()
    {
        bool ran = false;
        RunLoop(async loop =>
        {
            LoopHandle handle = loop.CallLater(TimeSpan.FromMilliseconds(50), () => ran = true);
            Exception? offLoop = null;
            var thread = new Thread(() =>
            {
                offLoop = Record.Exception(() => handle.Cancel());
                loop.CallSoonThreadSafe(() => Assert.True(handle.Cancel()));
            });
            thread.Start();
            thread.Join();
            Assert.IsType<InvalidOperationException>(offLoop);
            await loop.DelayAsync(TimeSpan.FromMilliseconds(80));
        });
        Assert.False(ran);
    }

    private sealed class PostCounter(int threads, int expected)
    {
        public readonly int[] Next = new int[threads];
        public readonly TaskCompletionSource Done = new();
        public int LoopThread;
        public int Total;
        public int OutOfOrder;
        public int WrongThread;

        // Runs on the loop thread only, so it takes no lock.
        public void Record(int thread, int sequence)
        {
            if (Environment.CurrentManagedThreadId != LoopThread)
            {
                WrongThread++;
            }

            if (Next[thread] != sequence)
            {
                OutOfOrder++;
            }

            Next[thread] = sequence + 1;
            if (++Total == expected)
            {
                Done.SetResult();
            }
        }
    }

    [Fact]
    public void CallSoonThreadSafe_from_many_threads_runs_each_post_once_in_per_thread_order()
    {
        const int Threads = 8;
        const int PostsPerThread = 10_000;
        var counter = new PostCounter(Threads, Threads * PostsPerThread);
        RunLoop(async loop =>
        {
            counter.LoopThread = Environment.CurrentManagedThreadId;
            using var start = new ManualResetEventSlim();
            var workers = new Thread[Threads];
            for (int t = 0; t < Threads; t++)
            {
                int thread = t;
                workers[t] = new Thread(() =>
                {
                    start.Wait();
                    for (int i = 0; i < PostsPerThread; i++)
                    {
                        loop.CallSoonThreadSafe(static s => s.counter.Record(s.thread, s.i), (counter, thread, i));
                    }
                }) { IsBackground = true };
                workers[t].Start();
            }

            // Let the loop go idle (blocked in its poll) before the posts start, so they must wake it.
            await loop.DelayAsync(TimeSpan.FromMilliseconds(5));
            start.Set();
            await counter.Done.Task;
            foreach (Thread w in workers)
            {
                w.Join();
            }
        });
        Assert.Equal(Threads * PostsPerThread, counter.Total);
        Assert.All(counter.Next, n => Assert.Equal(PostsPerThread, n));
        Assert.Equal(0, counter.OutOfOrder);
        Assert.Equal(0, counter.WrongThread);
    }

    [Fact]
    public void Pooled_posts_circulating_between_threads_keep_each_callback_with_its_own_state()
    {
        // Posts rent pooled queue nodes and callback items on the posting thread; the loop thread returns them,
        // and batches travel back to the posting threads. Several rounds of more posts than a thread keeps
        // locally make every item and node be reused, across threads, many times over.
        const int Threads = 4;
        const int Rounds = 3;
        const int PostsPerThread = 20_000;
        var seen = new int[Threads * Rounds * PostsPerThread];
        int wrongState = 0;
        RunLoop(async loop =>
        {
            for (int round = 0; round < Rounds; round++)
            {
                int remaining = Threads * PostsPerThread;
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Action<Box> record = box =>
                {
                    if (box.Id < 0 || box.Id >= seen.Length)
                    {
                        wrongState++;
                        return;
                    }

                    seen[box.Id]++;
                    if (--remaining == 0)
                    {
                        done.SetResult();
                    }
                };
                int first = round * Threads * PostsPerThread;
                Task[] posters = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
                {
                    for (int i = 0; i < PostsPerThread; i++)
                    {
                        loop.CallSoonThreadSafe(record, new Box(first + (t * PostsPerThread) + i));
                    }
                })).ToArray();
                // A pool handing one item to two posts would lose or repeat posts: fail rather than hang then.
                await done.Task.WaitAsync(TimeSpan.FromSeconds(60), loop.TimeProvider);
                await Task.WhenAll(posters);
            }
        });
        Assert.Equal(0, wrongState);
        Assert.All(seen, n => Assert.Equal(1, n));
    }

    private sealed record Box(int Id);

    [Fact]
    public void CallSoonThreadSafe_wakes_an_idle_loop()
    {
        int runs = 0;
        RunLoop(async loop =>
        {
            for (int round = 0; round < 20; round++)
            {
                var done = new TaskCompletionSource();
                // The loop has nothing else to do: it sleeps until the post wakes it.
                _ = Task.Run(() => loop.CallSoonThreadSafe(() => { runs++; done.SetResult(); }));
                await done.Task;
            }
        });
        Assert.Equal(20, runs);
    }

    [Fact]
    public void CallSoonThreadSafe_on_the_loop_thread_keeps_fifo_order_with_CallSoon()
    {
        var order = new List<int>();
        RunLoop(async loop =>
        {
            loop.CallSoon(() => order.Add(1));
            loop.CallSoonThreadSafe(() => order.Add(2));
            loop.CallSoon(() => order.Add(3));
            LoopHandle cancelled = loop.CallSoonThreadSafe(() => order.Add(99));
            Assert.True(cancelled.Cancel());
            loop.CallSoonThreadSafe(() => order.Add(4));
            var done = new TaskCompletionSource();
            loop.CallSoon(done.SetResult);
            await done.Task;
        });
        Assert.Equal([1, 2, 3, 4], order);
    }

    [Fact]
    public void A_callback_that_keeps_rescheduling_itself_does_not_starve_timers_or_posts()
    {
        int spins = 0;
        bool timerFired = false;
        bool postRan = false;
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            void Spin()
            {
                spins++;
                if (timerFired && postRan)
                {
                    done.TrySetResult();
                    return;
                }

                loop.CallSoon(Spin); // always ready work: the loop never goes idle
            }

            loop.CallSoon(Spin);
            loop.CallLater(TimeSpan.FromMilliseconds(2), () => timerFired = true);
            _ = Task.Run(() => loop.CallSoonThreadSafe(() => postRan = true));
            await done.Task;
        });
        Assert.True(timerFired);
        Assert.True(postRan);
        Assert.True(spins > 1);
    }

    [Fact]
    public void A_default_handle_does_nothing()
    {
        LoopHandle handle = default;
        Assert.False(handle.IsPending);
        Assert.False(handle.IsCancelled);
        Assert.False(handle.Cancel());
        Assert.Equal(default, handle);
    }

    [Fact]
    public void Stop_from_a_callback_ends_the_run_and_reports_that_main_did_not_complete()
    {
        using Loop loop = CreateLoop();
        bool finallyRan = false;
        var never = new TaskCompletionSource();
        var ex = Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(async () =>
        {
            try
            {
                loop.CallSoon(loop.Stop);
                await never.Task;
            }
            finally
            {
                finallyRan = true;
            }
        }));
        Assert.Contains("stopped", ex.Message);
        Assert.False(finallyRan); // asyncio leaves main pending after stop(); only loop waits are cancelled
        AssertClosedCleanly(loop);
    }

    [Fact]
    public void Stop_before_main_completed_throws_from_RunUntilComplete_of_T()
    {
        using Loop loop = CreateLoop();
        var never = new TaskCompletionSource<int>();
        var ex = Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(() =>
        {
            loop.CallSoon(loop.Stop);
            return never.Task;
        }));
        Assert.Contains("stopped", ex.Message);
        AssertClosedCleanly(loop);
    }

    [Fact]
    public void Stop_from_another_thread_wakes_and_stops_an_idle_loop()
    {
        using Loop loop = CreateLoop();
        var never = new TaskCompletionSource();
        Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(async () =>
        {
            _ = Task.Run(async () =>
            {
                await Task.Delay(5);
                loop.Stop();
            });
            await never.Task;
        }));
        AssertClosedCleanly(loop);
    }

    [Fact]
    public void Stop_after_main_completed_is_harmless()
    {
        RunLoop(async loop =>
        {
            await Task.Yield();
            loop.Stop();
        });
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
