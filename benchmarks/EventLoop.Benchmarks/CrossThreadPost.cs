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
    public void ThreadPool() => PostCounter.ThreadPoolPosts(N);

    [Benchmark(OperationsPerInvoke = N, Description = "AsyncContext Post")]
    public void NitoAsyncContext()
    {
        AsyncContext.Run(() =>
        {
            var counter = new PostCounter(N);
            SynchronizationContext context = SynchronizationContext.Current!;
            var producer = new Thread(() =>
            {
                for (int i = 0; i < N; i++)
                {
                    context.Post(static c => ((PostCounter)c!).HitOnLoop(), counter);
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
        var counter = new PostCounter(N);
        SynchronizationContext context = loop.SynchronizationContext;
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                context.Post(static c => ((PostCounter)c!).HitOnLoop(), counter);
            }
        });
        producer.Start();
        return counter.Completion.Task;
    }

    private static Task Posts(Loop loop)
    {
        var counter = new PostCounter(N);
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                loop.CallSoonThreadSafe(static c => c.HitOnLoop(), counter);
            }
        });
        producer.Start();
        return counter.Completion.Task;
    }
}
