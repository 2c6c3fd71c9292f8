using BenchmarkDotNet.Attributes;
using Nito.AsyncEx;

namespace EventLoop.Benchmarks;

/// <summary>
/// Posts from another thread: a producer thread posts N callbacks; the operation ends when the loop has
/// run them all. Baselines: <c>SynchronizationContext.Post</c> to Nito's AsyncContext, and the thread pool's queue.
/// The loops are long-lived (as in an app), so the pools that carry posts between threads are warm.
/// </summary>
public class CrossThreadPost
{
    private const int N = 200_000;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "ThreadPool UnsafeQueueUserWorkItem")]
    public void ThreadPool()
    {
        var counter = new Counter();
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                System.Threading.ThreadPool.UnsafeQueueUserWorkItem(static c => c.Hit(), counter, preferLocal: false);
            }
        });
        producer.Start();
        counter.Done.Wait();
        producer.Join();
    }

    [Benchmark(OperationsPerInvoke = N, Description = "AsyncContext Post")]
    public void NitoAsyncContext()
    {
        AsyncContext.Run(() =>
        {
            var counter = new Counter();
            SynchronizationContext context = SynchronizationContext.Current!;
            var producer = new Thread(() =>
            {
                for (int i = 0; i < N; i++)
                {
                    context.Post(static c => ((Counter)c!).HitAsync(), counter);
                }
            });
            producer.Start();
            return counter.Completion.Task;
        });
    }

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed SynchronizationContext.Post")]
    public void ManagedContextPost() => Harness.OnPersistentLoop("managed", ContextPosts);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv SynchronizationContext.Post")]
    public void LibuvContextPost() => Harness.OnPersistentLoop("libuv", ContextPosts);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallSoonThreadSafe")]
    public void Managed() => Harness.OnPersistentLoop("managed", Posts);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv CallSoonThreadSafe")]
    public void Libuv() => Harness.OnPersistentLoop("libuv", Posts);

    private static Task ContextPosts(Loop loop)
    {
        var counter = new Counter();
        SynchronizationContext context = loop.SynchronizationContext;
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                context.Post(static c => ((Counter)c!).HitAsync(), counter);
            }
        });
        producer.Start();
        return counter.Completion.Task;
    }

    private static Task Posts(Loop loop)
    {
        var counter = new Counter();
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                loop.CallSoonThreadSafe(static c => c.HitAsync(), counter);
            }
        });
        producer.Start();
        return counter.Completion.Task;
    }

    private sealed class Counter
    {
        public readonly ManualResetEventSlim Done = new();
        public readonly TaskCompletionSource Completion = new();
        private int _count;

        public void Hit()
        {
            if (Interlocked.Increment(ref _count) == N)
            {
                Done.Set();
            }
        }

        // Single-threaded consumers need no interlocked increment.
        public void HitAsync()
        {
            if (++_count == N)
            {
                Completion.SetResult();
            }
        }
    }
}
