using BenchmarkDotNet.Attributes;

namespace EventLoop.Benchmarks;

/// <summary>
/// Schedule-and-run of one callback with state: each callback schedules the next, so every operation is
/// one enqueue and one dispatch. Baseline: the thread pool's <c>UnsafeQueueUserWorkItem</c> doing the same.
/// <c>CallSoon&lt;TState&gt;</c> is the no-capture hot path; the <c>CallSoon(Action)</c> rows (a cached delegate, so no
/// closure is allocated) pay the ExecutionContext check, and with an AsyncLocal set carry the context on a pooled item
/// and switch to it and back around every callback.
/// </summary>
public class CallSoonChain
{
    private const int N = 100_000;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "ThreadPool UnsafeQueueUserWorkItem")]
    public void ThreadPoolChain()
    {
        var chain = new PoolChain();
        System.Threading.ThreadPool.UnsafeQueueUserWorkItem(chain, preferLocal: true);
        chain.Done.Wait();
    }

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallSoon<TState>")]
    public void Managed() => Harness.OnLoop(Harness.Policy("managed"), Chain);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv CallSoon<TState>")]
    public void Libuv() => Harness.OnLoop(Harness.Policy("libuv"), Chain);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallSoon(Action)")]
    public void ManagedAction() => Harness.OnLoop(Harness.Policy("managed"), ActionChain);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallSoon(Action), AsyncLocal set")]
    public void ManagedActionWithAsyncLocal() => Harness.OnLoop(Harness.Policy("managed"), ActionChainWithAsyncLocal);

    private static readonly AsyncLocal<object?> s_local = new();

    private static Task ActionChain(Loop loop)
    {
        var state = new LoopChain(loop);
        loop.CallSoon(state.StepAction);
        return state.Done.Task;
    }

    private static async Task ActionChainWithAsyncLocal(Loop loop)
    {
        // An async method: the value stays in its context (so every CallSoon captures it), and the benchmark thread's
        // context is left as it was.
        s_local.Value = loop;
        await ActionChain(loop);
    }

    private static Task Chain(Loop loop)
    {
        var state = new LoopChain(loop);
        loop.CallSoon(LoopChain.Step, state);
        return state.Done.Task;
    }

    private sealed class LoopChain(Loop loop)
    {
        public static readonly Action<LoopChain> Step = Run;

        public readonly Loop Loop = loop;
        public readonly TaskCompletionSource Done = new();
        public int Count;
        private Action? _stepAction;

        public Action StepAction => _stepAction ??= () => RunAction(this);

        private static void RunAction(LoopChain s)
        {
            if (++s.Count == N)
            {
                s.Done.SetResult();
            }
            else
            {
                s.Loop.CallSoon(s.StepAction);
            }
        }

        private static void Run(LoopChain s)
        {
            if (++s.Count == N)
            {
                s.Done.SetResult();
            }
            else
            {
                s.Loop.CallSoon(Step, s);
            }
        }
    }

    private sealed class PoolChain : IThreadPoolWorkItem
    {
        public readonly ManualResetEventSlim Done = new();
        private int _count;

        public void Execute()
        {
            if (++_count == N)
            {
                Done.Set();
            }
            else
            {
                System.Threading.ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
            }
        }
    }
}
