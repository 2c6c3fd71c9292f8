using BenchmarkDotNet.Attributes;

namespace EventLoop.Benchmarks;

/// <summary>
/// Schedule-and-run of one callback with state: each callback schedules the next, so every operation is
/// one enqueue and one dispatch. Baseline: the thread pool's <c>UnsafeQueueUserWorkItem</c> doing the same.
/// The <c>UnsafeCallSoon</c> rows skip the ExecutionContext check <c>CallSoon</c> makes; the "AsyncLocal set" rows
/// schedule from a context that holds an AsyncLocal value, so every callback carries and restores it.
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

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed UnsafeCallSoon<TState>")]
    public void ManagedUnsafe() => Harness.OnLoop(Harness.Policy("managed"), UnsafeChain);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv UnsafeCallSoon<TState>")]
    public void LibuvUnsafe() => Harness.OnLoop(Harness.Policy("libuv"), UnsafeChain);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallSoon<TState>, AsyncLocal set")]
    public void ManagedWithAsyncLocal() => Harness.OnLoop(Harness.Policy("managed"), ChainWithAsyncLocal);

    private static readonly AsyncLocal<object?> s_local = new();

    private static Task Chain(Loop loop)
    {
        var state = new LoopChain(loop);
        loop.CallSoon(LoopChain.Step, state);
        return state.Done.Task;
    }

    private static Task UnsafeChain(Loop loop)
    {
        var state = new LoopChain(loop);
        loop.UnsafeCallSoon(LoopChain.UnsafeStep, state);
        return state.Done.Task;
    }

    private static async Task ChainWithAsyncLocal(Loop loop)
    {
        // An async method: the value stays in its context, which now differs from the loop's, so every CallSoon
        // captures it; the caller's (the benchmark thread's) context is left as it was.
        s_local.Value = loop;
        await Chain(loop);
    }

    private sealed class LoopChain(Loop loop)
    {
        public static readonly Action<LoopChain> Step = Run;
        public static readonly Action<LoopChain> UnsafeStep = RunUnsafe;

        public readonly Loop Loop = loop;
        public readonly TaskCompletionSource Done = new();
        public int Count;

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

        private static void RunUnsafe(LoopChain s)
        {
            if (++s.Count == N)
            {
                s.Done.SetResult();
            }
            else
            {
                s.Loop.UnsafeCallSoon(UnsafeStep, s);
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
