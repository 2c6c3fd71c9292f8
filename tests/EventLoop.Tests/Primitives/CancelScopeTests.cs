using Microsoft.Extensions.Time.Testing;

namespace EventLoop.Tests.Primitives;

/// <summary>
/// Cancel scopes and timeouts (trio's move_on_after/fail_after/CancelScope, asyncio's timeout). Most run on a fake
/// clock (LoopOptions.Clock): the test advances it on the loop thread and lets the loop turn, so which timer fires
/// first is decided by the deadlines and the order they were scheduled in, never by a race.
/// </summary>
public abstract class CancelScopeTests : LoopTestBase
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private LoopOptions FakeClockOptions(out FakeTimeProvider clock)
    {
        clock = new FakeTimeProvider();
        LoopOptions options = CreateOptions();
        options.Clock = clock;
        return options;
    }

    /// <summary>Advances the fake clock (on the loop thread) and lets the loop run a few iterations, so what became due has run.</summary>
    private static async Task AdvanceAsync(Loop loop, FakeTimeProvider clock, TimeSpan by)
    {
        clock.Advance(by);
        for (int i = 0; i < 5; i++)
        {
            await loop.DelayAsync(TimeSpan.Zero);
        }
    }

    [Fact]
    public void A_move_on_scope_cuts_the_body_short_at_its_deadline_and_catches_its_own_cancellation()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            CancelScope scope = loop.MoveOnAfter(Second);
            Assert.Equal(loop.Time + Second, scope.Deadline);
            bool reachedEnd = false;
            Task run = scope.RunAsync(async token =>
            {
                await loop.DelayAsync(Hour, token);
                reachedEnd = true;
            });
            await AdvanceAsync(loop, clock, Second - TimeSpan.FromTicks(1));
            Assert.False(run.IsCompleted);
            Assert.False(scope.CancelCalled);
            await AdvanceAsync(loop, clock, TimeSpan.FromTicks(1));
            Assert.True(run.IsCompletedSuccessfully, "the scope caught its own cancellation");
            await run;
            Assert.False(reachedEnd);
            Assert.True(scope.CancelCalled);
            Assert.True(scope.DeadlineReached);
            Assert.True(scope.CancelledCaught);
            Assert.True(scope.Token.IsCancellationRequested);
        }, options);
    }

    /// <summary>
    /// The deadline and the awaited work (an item put into a queue) are due at the same instant; the timer scheduled
    /// first fires first. Here the scope's: it cancels the pending get, which consumes nothing, and catches.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_deadline_that_fires_while_the_body_awaits_cuts_it_short(bool fail)
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<string>();
            TimeSpan at = loop.Time + Second;
            CancelScope scope = fail ? loop.FailAt(at) : loop.MoveOnAt(at);
            loop.CallAt(at, () => queue.TryPut("work done"));
            string? got = null;
            Task run = scope.RunAsync(async token => got = await queue.GetAsync(token));
            await AdvanceAsync(loop, clock, Second);
            Assert.True(run.IsCompleted);
            if (fail)
            {
                var timeout = await Assert.ThrowsAsync<TimeoutException>(() => run);
                Assert.IsAssignableFrom<OperationCanceledException>(timeout.InnerException);
            }
            else
            {
                await run;
            }

            Assert.Null(got);
            Assert.True(scope.CancelledCaught);
            Assert.Equal(1, queue.Count); // the cancelled get took nothing; the item arrived after it
        }, options);
    }

    /// <summary>
    /// Same instant, but the work's timer was scheduled first: the item reaches the waiting get, then the deadline
    /// fires before the body resumes. The body finishes with its result: the scope fired (CancelCalled) but caught
    /// nothing, and a fail scope does not throw (trio and asyncio alike).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_deadline_that_fires_just_after_the_awaited_work_completed_leaves_the_result(bool fail)
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            var queue = new AsyncQueue<string>();
            TimeSpan at = loop.Time + Second;
            loop.CallAt(at, () => queue.TryPut("work done"));
            CancelScope scope = fail ? loop.FailAt(at) : loop.MoveOnAt(at);
            bool cancelledWhenResumed = false;
            Task<string?> run = scope.RunAsync(async token =>
            {
                string item = await queue.GetAsync(token);
                cancelledWhenResumed = token.IsCancellationRequested;
                return item;
            });
            await AdvanceAsync(loop, clock, Second);
            Assert.Equal("work done", await run);
            Assert.True(cancelledWhenResumed, "the deadline fired between the work's completion and the body's resumption");
            Assert.True(scope.CancelCalled);
            Assert.False(scope.CancelledCaught);
        }, options);
    }

    [Fact]
    public void Nested_scopes_where_the_inner_deadline_fires_first_the_inner_catches_and_the_outer_body_goes_on()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            CancelScope outer = loop.MoveOnAfter(2 * Second);
            CancelScope? inner = null;
            var steps = new List<string>();
            Task run = outer.RunAsync(async token =>
            {
                inner = loop.MoveOnAfter(Second, token);
                await inner.RunAsync(t => loop.DelayAsync(Hour, t));
                steps.Add("after inner");
                await loop.DelayAsync(Hour, token);
                steps.Add("end of outer body");
            });
            await AdvanceAsync(loop, clock, Second);
            Assert.Equal(["after inner"], steps);
            Assert.True(inner!.CancelledCaught);
            Assert.False(outer.Token.IsCancellationRequested, "the inner scope's deadline must not reach the outer one");
            Assert.False(run.IsCompleted);
            await AdvanceAsync(loop, clock, Second);
            await run.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(["after inner"], steps);
            Assert.True(outer.CancelledCaught);
        }, options);
    }

    [Fact]
    public void Nested_scopes_where_the_outer_deadline_fires_first_the_inner_lets_the_cancellation_through_to_the_outer()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            CancelScope outer = loop.FailAfter(Second);
            CancelScope? inner = null;
            bool afterInner = false;
            Task run = outer.RunAsync(async token =>
            {
                inner = loop.MoveOnAfter(2 * Second, token);
                await inner.RunAsync(t => loop.DelayAsync(Hour, t));
                afterInner = true;
            });
            await AdvanceAsync(loop, clock, Second);
            await Assert.ThrowsAsync<TimeoutException>(() => run).WaitAsync(TestPipes.TestTimeout);
            Assert.False(afterInner, "the inner scope caught a cancellation it did not cause");
            Assert.True(inner!.Token.IsCancellationRequested);
            Assert.False(inner.CancelCalled);
            Assert.False(inner.CancelledCaught);
            Assert.True(outer.CancelledCaught);
        }, options);
    }

    [Fact]
    public void When_both_deadlines_passed_the_outermost_cancelled_scope_catches()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            CancelScope outer = loop.MoveOnAfter(Second);
            CancelScope inner = null!;
            bool afterInner = false;
            var checkpoint = new AsyncEvent();
            loop.CallLater(TimeSpan.FromMilliseconds(1500), checkpoint.Set);
            Task run = outer.RunAsync(async token =>
            {
                inner = loop.MoveOnAfter(TimeSpan.FromMilliseconds(500), token);
                await inner.RunAsync(async t =>
                {
                    // Work that does not take the token: the body notices the cancellation only at its next
                    // checkpoint, after both deadlines (0.5 s and 1 s) have passed.
                    await checkpoint.WaitAsync();
                    t.ThrowIfCancellationRequested();
                });
                afterInner = true;
            });
            await AdvanceAsync(loop, clock, 2 * Second);
            await run.WaitAsync(TestPipes.TestTimeout);
            Assert.True(inner.CancelCalled);
            Assert.False(inner.CancelledCaught);
            Assert.False(afterInner);
            Assert.True(outer.CancelledCaught);
        }, options);
    }

    [Fact]
    public void A_shielded_scope_finishes_its_work_while_the_outer_scope_is_cancelled()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            CancelScope outer = loop.MoveOnAfter(Second);
            CancelScope? shielded = null;
            var steps = new List<string>();
            Task run = outer.RunAsync(async token =>
            {
                shielded = new CancelScope(token, shield: true);
                await shielded.RunAsync(async t =>
                {
                    await loop.DelayAsync(3 * Second, t); // cleanup that must not be interrupted
                    steps.Add("cleanup done");
                });
                steps.Add("after shield");
                await loop.DelayAsync(Hour, token); // the outer cancellation is visible again
                steps.Add("not reached");
            });
            await AdvanceAsync(loop, clock, Second);
            Assert.True(outer.CancelCalled);
            Assert.False(shielded!.Token.IsCancellationRequested);
            Assert.Empty(steps);
            await AdvanceAsync(loop, clock, 2 * Second);
            await run.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(["cleanup done", "after shield"], steps);
            Assert.False(shielded.CancelledCaught);
            Assert.True(outer.CancelledCaught);
        }, options);
    }

    [Fact]
    public void Lowering_the_shield_while_the_outer_token_is_cancelled_cancels_the_scope()
    {
        RunLoop(async loop =>
        {
            using var outer = new CancellationTokenSource();
            var scope = new CancelScope(outer.Token, shield: true);
            outer.Cancel();
            Assert.False(scope.Token.IsCancellationRequested);
            Task run = scope.RunAsync(t => loop.DelayAsync(Hour, t));
            scope.Shield = false;
            Assert.True(scope.Token.IsCancellationRequested);
            // The cancellation came from outside: the scope does not catch it.
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run).WaitAsync(TestPipes.TestTimeout);
            Assert.False(scope.CancelledCaught);
        });
    }

    [Fact]
    public void A_cancellation_from_the_outer_token_is_rethrown_not_caught()
    {
        RunLoop(async loop =>
        {
            using var outer = new CancellationTokenSource();
            CancelScope scope = loop.MoveOnAfter(Hour, outer.Token);
            Task run = scope.RunAsync(t => loop.DelayAsync(Hour, t));
            await Task.Run(outer.Cancel); // from another thread: reaches the scope on the loop
            var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run).WaitAsync(TestPipes.TestTimeout);
            Assert.False(scope.CancelCalled);
            Assert.False(scope.CancelledCaught);

            CancelScope already = loop.MoveOnAfter(Hour, outer.Token); // linked to a token already cancelled
            Assert.True(already.Token.IsCancellationRequested);
            already.Dispose();
        });
    }

    [Fact]
    public void Rescheduling_moves_the_deadline_later_and_earlier_on_virtual_time()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            TimeSpan start = loop.Time;
            CancelScope scope = loop.FailAfter(Second);
            Task run = scope.RunAsync(t => loop.DelayAsync(Hour, t));
            scope.Deadline += 2 * Second;        // trio: scope.deadline += 2
            await AdvanceAsync(loop, clock, 2 * Second);
            Assert.False(scope.CancelCalled, "the old deadline fired after it was moved");
            scope.Reschedule(start + TimeSpan.FromMilliseconds(2500)); // asyncio: cm.reschedule(when), earlier than 3 s
            await AdvanceAsync(loop, clock, TimeSpan.FromMilliseconds(499));
            Assert.False(scope.CancelCalled);
            await AdvanceAsync(loop, clock, TimeSpan.FromMilliseconds(1));
            await Assert.ThrowsAsync<TimeoutException>(() => run).WaitAsync(TestPipes.TestTimeout);
            Assert.True(scope.DeadlineReached);
            Assert.Equal(start + TimeSpan.FromMilliseconds(2500), loop.Time);

            CancelScope none = loop.MoveOnAfter(Second);
            none.Deadline = CancelScope.NoDeadline;
            Task waiting = none.RunAsync(t => loop.DelayAsync(2 * Second, t));
            await AdvanceAsync(loop, clock, 2 * Second);
            await waiting.WaitAsync(TestPipes.TestTimeout);
            Assert.False(none.CancelCalled);
        }, options);
    }

    [Fact]
    public void Cancel_ends_the_body_quietly_even_in_a_fail_scope_and_works_from_another_thread()
    {
        RunLoop(async loop =>
        {
            CancelScope scope = loop.FailAfter(Hour);
            Task run = scope.RunAsync(t => loop.DelayAsync(Hour, t));
            await Task.Run(scope.Cancel);
            await run.WaitAsync(TestPipes.TestTimeout); // no TimeoutException: the deadline did not cause it
            Assert.True(scope.CancelCalled);
            Assert.False(scope.DeadlineReached);
            Assert.True(scope.CancelledCaught);
            await Assert.ThrowsAsync<InvalidOperationException>(() => scope.RunAsync(_ => Task.CompletedTask));
        });
    }

    [Fact]
    public void Other_exceptions_pass_through_and_a_body_that_finishes_in_time_keeps_its_result()
    {
        RunLoop(async loop =>
        {
            Assert.Equal(42, await loop.FailAfterAsync(Hour, async t => { await Task.Yield(); return 42; }));
            Assert.True(await loop.MoveOnAfterAsync(Hour, t => loop.DelayAsync(TimeSpan.FromMilliseconds(1), t)));
            await Assert.ThrowsAsync<FormatException>(() => loop.FailAfterAsync(Hour, async _ => { await Task.Yield(); throw new FormatException(); }));
            Assert.Throws<ArgumentOutOfRangeException>(() => loop.MoveOnAfter(TimeSpan.FromSeconds(-1)));
            Assert.Equal(CancelScope.NoDeadline, loop.MoveOnAfter(Timeout.InfiniteTimeSpan).Deadline);
            await Task.Run(() => Assert.Throws<InvalidOperationException>(() => loop.MoveOnAfter(Second)));
        });
    }

    [Fact]
    public void Real_time_deadlines_fire_on_loop_timers()
    {
        RunLoop(async loop =>
        {
            Assert.False(await loop.MoveOnAfterAsync(TimeSpan.FromMilliseconds(20), t => loop.DelayAsync(Hour, t)));
            await Assert.ThrowsAsync<TimeoutException>(() =>
                loop.FailAfterAsync(TimeSpan.FromMilliseconds(20), t => Task.Delay(Hour, loop.TimeProvider, t)));
            int thread = Environment.CurrentManagedThreadId;
            CancelScope scope = loop.MoveOnAfter(TimeSpan.FromMilliseconds(10));
            int firedOn = 0;
            scope.Token.Register(() => firedOn = Environment.CurrentManagedThreadId);
            await scope.RunAsync(t => loop.DelayAsync(Hour, t)).WaitAsync(TestPipes.TestTimeout);
            // The token's callbacks run in the deadline's timer callback, newest registration first; the body's sleep
            // (registered later) resumed this method inline, before the older callback ran. One turn later it has.
            await Task.Yield();
            Assert.Equal(thread, firedOn);
        });
    }

    [Fact]
    public void A_scope_cancels_a_task_group_inside_it_and_catches_the_groups_cancellation()
    {
        LoopOptions options = FakeClockOptions(out FakeTimeProvider clock);
        RunLoop(async loop =>
        {
            int cancelledChildren = 0;
            CancelScope scope = loop.MoveOnAfter(Second);
            Task run = scope.RunAsync(token => TaskGroup.RunAsync(group =>
            {
                for (int i = 0; i < 3; i++)
                {
                    _ = group.Start(async t =>
                    {
                        try
                        {
                            await loop.DelayAsync(Hour, t);
                        }
                        catch (OperationCanceledException)
                        {
                            cancelledChildren++;
                            throw;
                        }
                    });
                }

                return Task.CompletedTask;
            }, token));
            await AdvanceAsync(loop, clock, Second);
            await run.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(3, cancelledChildren);
            Assert.True(scope.CancelledCaught);
        }, options);
    }
}

public sealed class ManagedCancelScopeTests : CancelScopeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvCancelScopeTests : CancelScopeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
