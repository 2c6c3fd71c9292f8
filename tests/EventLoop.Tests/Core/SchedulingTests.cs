using Microsoft.Extensions.Time.Testing;

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

            var last = new TaskCompletionSource();
            loop.CallSoon(last.SetResult); // after the hundred, in FIFO order
            await last.Task.WaitAsync(TestPipes.TestTimeout);
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
            await done.Task.WaitAsync(TestPipes.TestTimeout);
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
            await done.Task.WaitAsync(TestPipes.TestTimeout);
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
            await done.Task.WaitAsync(TestPipes.TestTimeout);
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
        Exception? offLoop = null;
        bool cancelledThroughLoop = false;
        var clock = new FakeTimeProvider();
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        RunLoop(async loop =>
        {
            LoopHandle handle = loop.CallLater(TimeSpan.FromSeconds(1), () => ran = true);

            // The other thread's own Cancel throws; the one it posts runs on the loop. Both results are recorded
            // here and asserted by the test (an assertion inside the posted callback would only reach the loop's
            // exception handler).
            var throughLoop = new TaskCompletionSource<bool>();
            await Task.Run(() =>
            {
                offLoop = Record.Exception(() => handle.Cancel());
                loop.CallSoonThreadSafe(() => throughLoop.SetResult(handle.Cancel()));
            }).WaitAsync(TestPipes.TestTimeout);
            cancelledThroughLoop = await throughLoop.Task.WaitAsync(TestPipes.TestTimeout);

            // Past the deadline, with no sleeping: a later timer fires, and the cancelled one, due before it,
            // would have been collected and run first.
            var later = new TaskCompletionSource();
            loop.CallLater(TimeSpan.FromSeconds(2), later.SetResult);
            clock.Advance(TimeSpan.FromSeconds(3));
            await later.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);
        Assert.IsType<InvalidOperationException>(offLoop);
        Assert.True(cancelledThroughLoop, "the Cancel posted to the loop did not cancel the timer");
        Assert.False(ran);
    }

    /// <summary>
    /// Runs <paramref name="main"/> as <see cref="LoopTestBase.RunLoop(Func{Loop, Task}, LoopOptions?)"/> does, on a thread of its
    /// own, and fails if the run has not finished in time. For the tests of cross-thread wake-ups: a lost wake-up
    /// can leave the loop asleep for good, since even the stop at the end of main reaches it from another thread.
    /// </summary>
    private void RunLoopBounded(Func<Loop, Task> main)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                RunLoop(main);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        })
        { IsBackground = true, Name = "loop under test" };
        thread.Start();
        Assert.True(thread.Join(TestPipes.TestTimeout + TimeSpan.FromSeconds(10)), "the loop never finished: a wake-up was lost");
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
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
        RunLoopBounded(async loop =>
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
                })
                { IsBackground = true };
                workers[t].Start();
            }

            // The workers start posting once the loop is idle (blocked in its poll), which it is from this await
            // on: their posts must wake it. A loop timer bounds the wait, so a lost wake-up fails instead of hanging.
            Task starter = Task.Run(() =>
            {
                try
                {
                    LoopProbe.WaitUntilSleeping(loop);
                }
                finally
                {
                    start.Set();
                }
            });
            await counter.Done.Task.WaitAsync(TestPipes.TestTimeout, loop.TimeProvider);
            await starter;
            foreach (Thread w in workers)
            {
                Assert.True(w.Join(TestPipes.TestTimeout));
            }
        });
        Assert.Equal(Threads * PostsPerThread, counter.Total);
        Assert.All(counter.Next, n => Assert.Equal(PostsPerThread, n));
        Assert.Equal(0, counter.OutOfOrder);
        Assert.Equal(0, counter.WrongThread);
    }

    [Fact]
    public void Posts_of_both_kinds_from_many_threads_interleave_in_per_thread_order()
    {
        // CallSoonThreadSafe links its pooled callback item into the inject queue itself; a context's Post travels in
        // a pooled queue node. Both kinds alternate here on every thread, so the queue hands out each kind after the
        // other, and runs empty (its last node taken through the stub) many times while the posters run.
        const int Threads = 4;
        const int PostsPerThread = 20_000;
        var counter = new PostCounter(Threads, Threads * PostsPerThread);
        RunLoopBounded(async loop =>
        {
            counter.LoopThread = Environment.CurrentManagedThreadId;
            SynchronizationContext context = loop.SynchronizationContext;
            Task[] posters = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
            {
                for (int i = 0; i < PostsPerThread; i++)
                {
                    if (i % 2 == 0)
                    {
                        loop.CallSoonThreadSafe(static s => s.counter.Record(s.t, s.i), (counter, t, i));
                    }
                    else
                    {
                        context.Post(static s => { var (c, thread, n) = ((PostCounter, int, int))s!; c.Record(thread, n); }, (counter, t, i));
                    }

                    if (i % 1_000 == 0)
                    {
                        Thread.Yield(); // let the loop catch up and find the queue empty now and then
                    }
                }
            })).ToArray();
            await counter.Done.Task.WaitAsync(TestPipes.TestTimeout, loop.TimeProvider);
            await Task.WhenAll(posters);
        });
        Assert.Equal(Threads * PostsPerThread, counter.Total);
        Assert.All(counter.Next, n => Assert.Equal(PostsPerThread, n));
        Assert.Equal(0, counter.OutOfOrder);
        Assert.Equal(0, counter.WrongThread);
    }

    [Fact]
    public void A_burst_of_posts_larger_than_one_iteration_takes_runs_to_the_last_post()
    {
        // An iteration moves at most 2 x CallbacksPerIteration posts from the inject queue. A burst of one more, made
        // while the loop is busy, leaves exactly the last post in the queue after the first move: the queue must
        // still say it is not empty, or the loop sleeps with that post waiting (until something else wakes it).
        const int PerIteration = 4;
        const int Posts = (2 * PerIteration) + 1;
        int ran = 0;
        LoopOptions options = CreateOptions();
        options.CallbacksPerIteration = PerIteration;
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            var poster = new Thread(() =>
            {
                for (int i = 0; i < Posts; i++)
                {
                    loop.CallSoonThreadSafe(() =>
                    {
                        if (++ran == Posts)
                        {
                            done.SetResult();
                        }
                    });
                }
            });
            poster.Start();
            Assert.True(poster.Join(TestPipes.TestTimeout)); // the loop is busy here: the whole burst waits in the queue
            await done.Task.WaitAsync(TestPipes.TestTimeout, loop.TimeProvider);
        }, options);
        Assert.Equal(Posts, ran);
    }

    [Fact]
    public void A_batch_of_posts_from_another_thread_reports_exceptions_and_honours_cancels_as_any_batch()
    {
        // Callbacks that came from other threads run in a copy of the ready batch compiled fully optimised from its
        // first call (Loop.RunInjectedBatch); it must behave as the tiered one: an exception goes to the handler and
        // the batch goes on, and a CallSoon handle cancelled before its turn stays cancelled.
        ExpectErrors = true;
        var seen = new List<string>();
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            var poster = new Thread(() =>
            {
                loop.CallSoonThreadSafe(static () => throw new InvalidTimeZoneException("post threw"));
                loop.CallSoonThreadSafe(() =>
                {
                    seen.Add("second post");
                    LoopHandle cancelled = loop.CallSoon(static s => s.Add("cancelled callback"), seen);
                    loop.CallSoon(static s => s.Add("queued callback"), seen);
                    Assert.True(cancelled.Cancel());
                });
                loop.CallSoonThreadSafe(() =>
                {
                    seen.Add("third post");
                    loop.CallSoon(static d => d.SetResult(), done);
                });
            });
            poster.Start();
            await done.Task.WaitAsync(TestPipes.TestTimeout, loop.TimeProvider);
            Assert.True(poster.Join(TestPipes.TestTimeout));
        });
        Assert.Contains("second post", seen);
        Assert.Contains("third post", seen);
        Assert.Contains("queued callback", seen);
        Assert.DoesNotContain("cancelled callback", seen);
        Assert.Equal("post threw", Assert.Single(UnhandledErrors).Exception!.Message);
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
        RunLoopBounded(async loop =>
        {
            // One loop timer bounds the whole test, so a lost wake-up fails it instead of hanging it. (A timer per
            // round would not: the loop would wake for an earlier round's stale deadline and find the post then.)
            using var deadline = new CancellationTokenSource(TestPipes.TestTimeout, loop.TimeProvider);
            for (int round = 0; round < 20; round++)
            {
                var done = new TaskCompletionSource();

                // The loop has nothing else to do: it sleeps until the post wakes it. The post waits until it does.
                Task poster = Task.Run(() =>
                {
                    LoopProbe.WaitUntilSleeping(loop);
                    loop.CallSoonThreadSafe(() => { runs++; done.SetResult(); });
                });

                await done.Task.WaitAsync(deadline.Token);
                await poster;
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
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        });
        Assert.Equal([1, 2, 3, 4], order);
    }

    [Fact]
    public void A_callback_that_keeps_rescheduling_itself_does_not_starve_timers_or_posts()
    {
        int spins = 0;
        bool timerFired = false;
        bool postRan = false;
        bool starved = false;
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

                if (spins == 20_000_000)
                {
                    starved = true; // fail instead of spinning for ever
                    done.TrySetResult();
                    return;
                }

                loop.CallSoon(Spin); // always ready work: the loop never goes idle
            }

            loop.CallSoon(Spin);
            loop.CallLater(TimeSpan.FromMilliseconds(2), () => timerFired = true);
            _ = Task.Run(() => loop.CallSoonThreadSafe(() => postRan = true));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        });
        Assert.False(starved, $"after {spins} callbacks the timer had {(timerFired ? "" : "not ")}fired and the post had {(postRan ? "" : "not ")}run");
        Assert.True(timerFired);
        Assert.True(postRan);
        Assert.True(spins > 1);
    }

    [Fact]
    public void CallbacksPerIteration_gives_a_due_timer_a_turn_every_N_callbacks()
    {
        const int N = 4;
        const int DueAfter = 10; // the link of the chain that moves the (fake) clock past the timer's deadline
        var clock = new FakeTimeProvider();
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        options.CallbacksPerIteration = N;
        int links = 0;
        int timerRanAfter = -1;
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            loop.CallLater(TimeSpan.FromSeconds(1), () => timerRanAfter = links);
            void Link()
            {
                if (++links == DueAfter)
                {
                    clock.Advance(TimeSpan.FromSeconds(1)); // due from now on
                }

                if (timerRanAfter >= 0 || links == 10_000)
                {
                    done.TrySetResult();
                    return;
                }

                loop.CallSoon(Link); // always one callback ready: the loop never goes idle
            }

            loop.CallSoon(Link);
            await done.Task.WaitAsync(TestPipes.TestTimeout);
        }, options);

        // Timers are looked at after every N callbacks: at most the rest of the batch the deadline passed in, and
        // the link queued before the timer, run first.
        Assert.InRange(timerRanAfter, DueAfter, DueAfter + N);
    }

    private sealed class PostTurns(int posts)
    {
        public int Links; // written by the loop thread only, read by the poster
        public int Ran;   // how many posts have run
        public readonly int[] PostedAfter = new int[posts]; // links run when the post was surely in the inject queue
        public readonly int[] RanAfter = new int[posts];    // links run when the post ran
    }

    [Fact]
    public void CallbacksPerIteration_gives_cross_thread_posts_a_turn_every_N_callbacks()
    {
        const int N = 4;
        const int Posts = 20;
        LoopOptions options = CreateOptions();
        options.CallbacksPerIteration = N;
        var turns = new PostTurns(Posts);
        RunLoop(async loop =>
        {
            var done = new TaskCompletionSource();
            void Link()
            {
                Volatile.Write(ref turns.Links, turns.Links + 1);
                if (turns.Ran == Posts || turns.Links == 50_000_000)
                {
                    done.TrySetResult();
                    return;
                }

                loop.CallSoon(Link); // always one callback ready: the loop never goes idle
            }

            loop.CallSoon(Link);
            Task poster = Task.Factory.StartNew(() =>
            {
                for (int i = 0; i < Posts; i++)
                {
                    int post = i;
                    loop.CallSoonThreadSafe(() =>
                    {
                        turns.RanAfter[post] = turns.Links;
                        Volatile.Write(ref turns.Ran, post + 1);
                    });
                    turns.PostedAfter[post] = Volatile.Read(ref turns.Links);
                    Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref turns.Ran) > post, TestPipes.TestTimeout), $"post {post} never ran");
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            await poster.WaitAsync(TestPipes.TestTimeout);
        }, options);

        // Posts are moved to the ready queue after every N callbacks: at most the rest of the batch the post
        // arrived in, and the link queued before it, run first.
        Assert.Equal(Posts, turns.Ran);
        for (int i = 0; i < Posts; i++)
        {
            Assert.True(turns.RanAfter[i] - turns.PostedAfter[i] <= N + 1,
                $"post {i} arrived after link {turns.PostedAfter[i]} and ran after link {turns.RanAfter[i]}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void CallbacksPerIteration_below_one_is_rejected_and_one_works(int value)
    {
        var options = new LoopOptions();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => options.CallbacksPerIteration = value);
        Assert.Equal("value", error.ParamName);
        Assert.Equal(128, options.CallbacksPerIteration); // unchanged, the default

        // One is the smallest: a callback, then timers, posts and I/O get a turn.
        LoopOptions one = CreateOptions();
        one.CallbacksPerIteration = 1;
        var order = new List<int>();
        RunLoop(async loop =>
        {
            for (int i = 0; i < 10; i++)
            {
                loop.CallSoon(static s => s.order.Add(s.i), (order, i));
            }

            await Task.Yield();
            await loop.DelayAsync(TimeSpan.FromMilliseconds(1)).WaitAsync(TestPipes.TestTimeout);
            await Task.Run(() => { }).WaitAsync(TestPipes.TestTimeout);
        }, one);
        Assert.Equal(Enumerable.Range(0, 10), order);
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
        Task stopper = Task.CompletedTask;
        var run = System.Diagnostics.Stopwatch.StartNew();
        Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(async () =>
        {
            stopper = Task.Run(() =>
            {
                try
                {
                    LoopProbe.WaitUntilSleeping(loop); // idle in its poll: only the stop's wake-up can end the run
                }
                finally
                {
                    loop.Stop();
                }
            });
            await never.Task.WaitAsync(TestPipes.TestTimeout, loop.TimeProvider); // a lost wake-up fails (TimeoutException), not hangs
        }));
        stopper.GetAwaiter().GetResult(); // the loop was idle when the stop came

        // A lost wake-up would leave the loop asleep until main's timer and only then let it see the stop.
        Assert.True(run.Elapsed < TestPipes.TestTimeout, "the stop did not wake the idle loop");
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
            await LoopProbe.CompletedOnAnotherThreadLater(loop); // completed on another thread after the await registered
            Assert.Equal(id, Environment.CurrentManagedThreadId);
            Assert.Same(loop, Loop.Current);
        });
    }
}

public sealed class ManagedSchedulingTests : SchedulingTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}
