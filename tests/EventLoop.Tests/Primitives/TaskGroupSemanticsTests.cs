namespace EventLoop.Tests.Primitives;

/// <summary>TaskGroup as asyncio and trio define it: RunAsync with a failing body, StartAsync (trio's nursery.start).</summary>
public abstract class TaskGroupSemanticsTests : LoopTestBase
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    [Fact]
    public void A_child_failing_while_a_sibling_is_mid_await_cancels_it_and_the_group_waits_for_its_cleanup()
    {
        var log = new List<string>();
        var error = Assert.Throws<AggregateException>(() => RunLoop(async loop =>
        {
            try
            {
                await TaskGroup.RunAsync(group =>
                {
                    _ = group.Start(async token =>
                    {
                        try
                        {
                            await loop.DelayAsync(Hour, token);
                        }
                        finally
                        {
                            log.Add("sibling cancelled");
                            await loop.DelayAsync(TimeSpan.FromMilliseconds(5)); // cleanup that itself awaits
                            log.Add("sibling cleaned up");
                        }
                    });
                    _ = group.Start(async _ =>
                    {
                        await Task.Yield();
                        log.Add("child fails");
                        throw new InvalidOperationException("child failed");
                    });
                    return Task.CompletedTask;
                }).WaitAsync(TestPipes.TestTimeout);
            }
            finally
            {
                log.Add("group ended");
            }
        }));
        Assert.Equal(["child fails", "sibling cancelled", "sibling cleaned up", "group ended"], log);
        Assert.IsType<InvalidOperationException>(Assert.Single(error.InnerExceptions));
    }

    [Fact]
    public void When_the_body_throws_the_children_are_cancelled_and_the_body_error_is_reported_with_theirs()
    {
        int cancelled = 0;
        var error = Assert.Throws<AggregateException>(() => RunLoop(async loop =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                for (int i = 0; i < 2; i++)
                {
                    _ = group.Start(async token =>
                    {
                        try
                        {
                            await loop.DelayAsync(Hour, token);
                        }
                        catch (OperationCanceledException)
                        {
                            cancelled++;
                            throw;
                        }
                    });
                }

                _ = group.Start(async token =>
                {
                    try
                    {
                        await loop.DelayAsync(Hour, token);
                    }
                    catch (OperationCanceledException)
                    {
                        throw new FormatException("a child that fails while being cancelled");
                    }
                });
                await Task.Yield();
                throw new ArgumentException("the body failed");
            }).WaitAsync(TestPipes.TestTimeout);
        }));
        Assert.Equal(2, cancelled);
        Assert.Equal(2, error.InnerExceptions.Count);
        Assert.IsType<ArgumentException>(error.InnerExceptions[0]);
        Assert.IsType<FormatException>(error.InnerExceptions[1]);
    }

    [Fact]
    public void A_body_cancelled_by_its_group_is_not_a_failure_and_results_come_back()
    {
        var error = Assert.Throws<AggregateException>(() => RunLoop(async loop =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                _ = group.Start(async _ => { await Task.Yield(); throw new TimeoutException("child"); });
                await loop.DelayAsync(Hour, group.Token); // cancelled by the child's failure
            }).WaitAsync(TestPipes.TestTimeout);
        }));
        Assert.IsType<TimeoutException>(Assert.Single(error.InnerExceptions));

        int sum = RunLoop(loop => TaskGroup.RunAsync(async group =>
        {
            Task<int> a = group.Start(async _ => { await Task.Yield(); return 1; });
            Task<int> b = group.Start(_ => Task.FromResult(2));
            return await a + await b;
        }));
        Assert.Equal(3, sum);
    }

    [Fact]
    public void StartAsync_returns_the_value_the_child_signals_and_the_child_runs_on_in_the_group()
    {
        var log = RunLoop(async loop =>
        {
            var steps = new List<string>();
            await TaskGroup.RunAsync(async group =>
            {
                int port = await group.StartAsync<int>(async (ready, token) =>
                {
                    await Task.Yield();
                    steps.Add("child ready");
                    ready.Started(8080);
                    Assert.Throws<InvalidOperationException>(() => ready.Started(1)); // once only
                    steps.Add("child goes on");
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(5), token);
                    steps.Add("child done");
                });
                steps.Add($"started on {port}");
                Assert.Equal(1, group.Running);
                await group.StartAsync(async (ready, _) => { await Task.Yield(); ready.Started(); });
                steps.Add("second started");
            }).WaitAsync(TestPipes.TestTimeout);
            steps.Add("group done");
            return steps;
        });
        Assert.Equal(["child ready", "child goes on", "started on 8080", "second started", "child done", "group done"], log);
    }

    [Fact]
    public void StartAsync_whose_child_fails_before_signalling_throws_that_error_and_the_group_goes_on()
    {
        RunLoop(async loop =>
        {
            bool siblingFinished = false;
            await TaskGroup.RunAsync(async group =>
            {
                _ = group.Start(async token =>
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(10), token);
                    siblingFinished = true;
                });
                var error = await Assert.ThrowsAsync<FormatException>(() => group.StartAsync<int>(async (ready, _) =>
                {
                    await Task.Yield();
                    throw new FormatException("could not bind");
                }));
                Assert.Equal("could not bind", error.Message);
                Assert.False(group.Token.IsCancellationRequested, "a failure before the signal is not the group's");

                await Assert.ThrowsAsync<FormatException>(() => group.StartAsync<int>((_, _) => throw new FormatException("synchronously")));
                var silent = await Assert.ThrowsAsync<InvalidOperationException>(() => group.StartAsync<int>((_, _) => Task.CompletedTask));
                Assert.Contains("without calling Started", silent.Message);
            }).WaitAsync(TestPipes.TestTimeout);
            Assert.True(siblingFinished);
        });
    }

    [Fact]
    public void A_child_failing_after_it_signalled_fails_the_group()
    {
        var error = Assert.Throws<AggregateException>(() => RunLoop(async loop =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                _ = group.Start(token => loop.DelayAsync(Hour, token));
                await group.StartAsync(async (ready, _) =>
                {
                    ready.Started();
                    await Task.Yield();
                    throw new FormatException("after start");
                });
            }).WaitAsync(TestPipes.TestTimeout);
        }));
        Assert.IsType<FormatException>(Assert.Single(error.InnerExceptions));
    }

    [Fact]
    public void A_finished_group_keeps_its_token_and_ignores_Cancel_and_refuses_new_children()
    {
        RunLoop(async loop =>
        {
            var group = new TaskGroup();
            _ = group.Start(_ => Task.Delay(1));
            await group.WaitAsync().WaitAsync(TestPipes.TestTimeout);
            CancellationToken token = group.Token; // the source is disposed; the token is still readable
            Assert.False(token.IsCancellationRequested);
            group.Cancel();
            Assert.Throws<InvalidOperationException>(() => { _ = group.Start(_ => Task.CompletedTask); });
            await Assert.ThrowsAsync<InvalidOperationException>(() => group.StartAsync((_, _) => Task.CompletedTask));
        });
    }

    [Fact]
    public void A_group_cancelled_before_the_child_signalled_cancels_StartAsync()
    {
        RunLoop(async loop =>
        {
            using var outer = new CancellationTokenSource();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => TaskGroup.RunAsync(async group =>
            {
                Task<int> start = group.StartAsync<int>(async (ready, token) =>
                {
                    await loop.DelayAsync(Hour, token);
                    ready.Started(1);
                });
                outer.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start);
            }, outer.Token)).WaitAsync(TestPipes.TestTimeout);
        });
    }
}

public sealed class ManagedTaskGroupSemanticsTests : TaskGroupSemanticsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTaskGroupSemanticsTests : TaskGroupSemanticsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
