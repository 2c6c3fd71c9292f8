using BenchmarkDotNet.Attributes;

namespace EventLoop.Benchmarks;

/// <summary>
/// Schedule-and-run of one callback with state: each callback schedules the next, so every operation is
/// one enqueue and one dispatch. Baseline: the thread pool's <c>UnsafeQueueUserWorkItem</c> doing the same.
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
