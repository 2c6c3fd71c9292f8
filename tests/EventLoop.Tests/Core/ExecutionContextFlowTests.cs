namespace EventLoop.Tests.Core;

/// <summary>
/// AsyncLocal values flow into callbacks as asyncio's contextvars do (uvloop's test_context): CallSoon, CallLater,
/// CallAt and CallSoonThreadSafe run the callback in the scheduler's ExecutionContext; the Unsafe... overloads do not.
/// </summary>
public abstract class ExecutionContextFlowTests : LoopTestBase
{
    private static readonly AsyncLocal<string?> Request = new();

    [Fact]
    public void Every_Call_method_runs_its_callback_with_the_callers_AsyncLocal_values()
    {
        var seen = RunLoop(async loop =>
        {
            var values = new Dictionary<string, string?>();
            var done = new TaskCompletionSource();
            int pending = 6;
            void Record(string name)
            {
                values[name] = Request.Value;
                if (--pending == 0)
                {
                    done.SetResult();
                }
            }

            Request.Value = "scheduled on the loop";
            loop.CallSoon(() => Record("CallSoon(Action)"));
            loop.CallSoon(static s => s("CallSoon<TState> reference state"), (Action<string>)Record);
            loop.CallSoon(static s => s.Record(s.Name), (Record: (Action<string>)Record, Name: "CallSoon<TState> value state"));
            loop.CallLater(TimeSpan.FromMilliseconds(1), () => Record("CallLater"));
            loop.CallAt(loop.Time, static s => s("CallAt"), (Action<string>)Record);
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
        Assert.Equal(6, seen.Count);
        Assert.All(seen.Where(p => p.Key != "CallSoonThreadSafe"), p => Assert.Equal("scheduled on the loop", p.Value));
        Assert.Equal("scheduled on another thread", seen["CallSoonThreadSafe"]);
    }

    [Fact]
    public void What_a_callback_sets_does_not_leak_into_the_loop_or_the_callbacks_after_it()
    {
        var seen = RunLoop(async loop =>
        {
            var values = new List<string?>();
            var done = new TaskCompletionSource();
            Request.Value = "outer";
            loop.CallSoon(() => { values.Add(Request.Value); Request.Value = "changed inside a callback"; });
            Request.Value = null;
            loop.CallSoon(() => { values.Add(Request.Value); Request.Value = "changed by a callback that captured nothing"; });
            loop.CallSoon(() => values.Add(Request.Value));
            loop.UnsafeCallSoon(static s => s.SetResult(), done);
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            values.Add(Request.Value);
            return values;
        });
        Assert.Equal(["outer", null, null, null], seen);
    }

    [Fact]
    public void The_Unsafe_overloads_capture_nothing()
    {
        var seen = RunLoop(async loop =>
        {
            var values = new List<string?>();
            var done = new TaskCompletionSource();
            Request.Value = "not flowed";
            loop.UnsafeCallSoon(static s => s.Add(Request.Value), values);
            loop.UnsafeCallLater(TimeSpan.Zero, static s => s.Add(Request.Value), values);
            loop.UnsafeCallAt(loop.Time, static s => s.Add(Request.Value), values);
            loop.UnsafeCallSoonThreadSafe(static s => s.Add(Request.Value), values);
            loop.UnsafeCallLater(TimeSpan.FromMilliseconds(1), static s => s.SetResult(), done);
            await done.Task.WaitAsync(TestPipes.TestTimeout);
            return values;
        });
        Assert.Equal([null, null, null, null], seen);
    }

    [Fact]
    public void Scheduling_from_the_loops_own_context_stays_allocation_free()
    {
        long allocated = RunLoop(async loop =>
        {
            var chain = new Chain(loop, 1_000);
            await chain.Run(); // warm up
            chain = new Chain(loop, 20_000);
            long before = GC.GetAllocatedBytesForCurrentThread();
            await chain.Run();
            return GC.GetAllocatedBytesForCurrentThread() - before;
        });
        Assert.True(allocated < 1_000, $"allocated {allocated} bytes for 20,000 CallSoon<TState> callbacks");
    }

    [Fact]
    public void A_callback_scheduled_with_an_AsyncLocal_set_allocates_nothing_either()
    {
        long allocated = RunLoop(async loop =>
        {
            Request.Value = "set";
            var chain = new Chain(loop, 1_000);
            await chain.Run(); // warm up the item pool
            chain = new Chain(loop, 20_000);
            long before = GC.GetAllocatedBytesForCurrentThread();
            await chain.Run();
            Assert.Equal(20_000, chain.SawValue);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        });
        Assert.True(allocated < 1_000, $"allocated {allocated} bytes for 20,000 CallSoon<TState> callbacks with a captured context");
    }

    private sealed class Chain(Loop loop, int count)
    {
        private static readonly Action<Chain> Step = static s => s.Next();
        private readonly TaskCompletionSource _done = new();
        private int _left = count;

        public int SawValue { get; private set; }

        public Task Run()
        {
            loop.CallSoon(Step, this);
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
                loop.CallSoon(Step, this);
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
