namespace EventLoop.Tests.Core;

/// <summary>
/// AsyncLocal values flow into callbacks as asyncio's contextvars do (uvloop's test_context): the Action overloads of
/// CallSoon, CallLater, CallAt and CallSoonThreadSafe run the callback in the scheduler's ExecutionContext; the
/// state-passing overloads are the explicit no-capture hot path.
/// </summary>
public abstract class ExecutionContextFlowTests : LoopTestBase
{
    private static readonly AsyncLocal<string?> Request = new();

    [Fact]
    public void Every_Action_overload_runs_its_callback_with_the_callers_AsyncLocal_values()
    {
        var seen = RunLoop(async loop =>
        {
            var values = new Dictionary<string, string?>();
            var done = new TaskCompletionSource();
            int pending = 5;
            void Record(string name)
            {
                values[name] = Request.Value;
                if (--pending == 0)
                {
                    done.SetResult();
                }
            }

            Request.Value = "scheduled on the loop";
            loop.CallSoon(() => Record("CallSoon"));
            loop.CallLater(TimeSpan.FromMilliseconds(1), () => Record("CallLater"));
            loop.CallAt(loop.Time, () => Record("CallAt"));
            loop.CallSoonThreadSafe(() => Record("CallSoonThreadSafe on the loop"));
            Request.Value = null; // what counts is the value when each was scheduled
            await Task.Run(() =>
            {
                Request.Value = "scheduled on another thread";
                loop.CallSoonThreadSafe(() => Record("CallSoonThreadSafe"));
            });
            Assert.Null(Request.Value);
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            return values;
        });
        Assert.Equal(5, seen.Count);
        Assert.All(seen.Where(p => p.Key != "CallSoonThreadSafe"), p => Assert.Equal("scheduled on the loop", p.Value));
        Assert.Equal("scheduled on another thread", seen["CallSoonThreadSafe"]);
    }

    [Fact]
    public void The_state_passing_overloads_capture_nothing()
    {
        var seen = RunLoop(async loop =>
        {
            var values = new List<string?>();
            var done = new TaskCompletionSource();
            Request.Value = "not flowed";
            loop.CallSoon(static s => s.Add(Request.Value), values);
            loop.CallLater(TimeSpan.Zero, static s => s.Add(Request.Value), values);
            loop.CallAt(loop.Time, static s => s.Add(Request.Value), values);
            loop.CallSoonThreadSafe(static s => s.Add(Request.Value), values);
            loop.CallLater(TimeSpan.FromMilliseconds(1), static s => s.SetResult(), done);
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            return values;
        });
        Assert.Equal([null, null, null, null], seen);
    }

    [Fact]
    public void What_a_callback_sets_does_not_leak_into_the_loop_or_later_callbacks()
    {
        var seen = RunLoop(async loop =>
        {
            var values = new List<string?>();
            var done = new TaskCompletionSource();

            // A callback that carries a context runs in it and leaves the loop's as it was: the next one sees nothing.
            Request.Value = "outer";
            loop.CallSoon(() => { values.Add(Request.Value); Request.Value = "changed inside a callback"; });
            loop.CallSoon(static s => s.Add(Request.Value), values);

            // A state-passing callback carries none and runs in the loop's; what it sets is cleared when its batch of
            // callbacks ends, so the timer it adds (collected at the next iteration) sees nothing either.
            loop.CallSoon(static s =>
            {
                Request.Value = "set by a callback that carries no context";
                s.Loop.CallLater(TimeSpan.Zero, static s => s.Values.Add(Request.Value), s);
                s.Loop.CallLater(TimeSpan.FromMilliseconds(1), static s => s.Done.SetResult(), s);
            }, (Loop: loop, Values: values, Done: done));
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            values.Add(Request.Value); // main's own value: unchanged by any callback
            return values;
        });
        Assert.Equal(["outer", null, null, "outer"], seen);
    }

    [Fact]
    public void Scheduling_allocates_nothing_with_or_without_an_AsyncLocal_set()
    {
        long allocated = RunLoop(async loop =>
        {
            await new Chain(loop, 1_000).Run(); // warm up
            long before = GC.GetAllocatedBytesForCurrentThread();
            await new Chain(loop, 20_000).Run(); // the loop's own context: nothing captured
            return GC.GetAllocatedBytesForCurrentThread() - before;
        });
        Assert.True(allocated < 1_000, $"allocated {allocated} bytes for 20,000 CallSoon(Action) callbacks");

        (long withLocal, int sawValue) = RunLoop(async loop =>
        {
            Request.Value = "set";
            await new Chain(loop, 1_000).Run(); // warm up the item pool
            var chain = new Chain(loop, 20_000);
            long before = GC.GetAllocatedBytesForCurrentThread();
            await chain.Run();
            return (GC.GetAllocatedBytesForCurrentThread() - before, chain.SawValue);
        });
        Assert.Equal(20_000, sawValue);
        Assert.True(withLocal < 1_000, $"allocated {withLocal} bytes for 20,000 CallSoon(Action) callbacks carrying a context");
    }

    /// <summary>A chain of CallSoon(Action) callbacks with one cached delegate, so no closure is allocated per call.</summary>
    private sealed class Chain
    {
        private readonly Loop _loop;
        private readonly Action _step;
        private readonly TaskCompletionSource _done = new();
        private int _left;

        public Chain(Loop loop, int count)
        {
            _loop = loop;
            _left = count;
            _step = Next;
        }

        public int SawValue { get; private set; }

        public Task Run()
        {
            _loop.CallSoon(_step);
            return _done.Task;
        }

        private void Next()
        {
            if (Request.Value is not null)
            {
                SawValue++;
            }

            if (--_left == 0)
            {
                _done.SetResult();
            }
            else
            {
                _loop.CallSoon(_step);
            }
        }
    }
}

public sealed class ManagedExecutionContextFlowTests : ExecutionContextFlowTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvExecutionContextFlowTests : ExecutionContextFlowTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
