using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;

namespace EventLoop.Benchmarks;

/// <summary>
/// What an app's first million posts from another thread cost: each launch is a fresh process (default tiering, so
/// the code starts at tier 0; empty pools) that starts a fresh loop and runs one invocation, a thread posting 1,000,000
/// <see cref="Loop.CallSoonThreadSafe(Action)"/> to it; the operation ends when the loop has run them all. The warm
/// case (<see cref="CrossThreadPost"/>) measures a long-lived loop with fully optimised code instead. Baseline: the
/// thread pool's queue in the same cold conditions.
/// </summary>
[SimpleJob(RunStrategy.ColdStart, launchCount: 5, warmupCount: 0, iterationCount: 1, id: "cold")]
public class ColdCrossThreadPost
{
    private const int N = 1_000_000;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "ThreadPool UnsafeQueueUserWorkItem, cold")]
    public void ThreadPool() => PostCounter.ThreadPoolPosts(N);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallSoonThreadSafe(Action), cold")]
    public void Managed() => Harness.OnLoop(Harness.Policy("managed"), Posts);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv CallSoonThreadSafe(Action), cold")]
    public void Libuv() => Harness.OnLoop(Harness.Policy("libuv"), Posts);

    private static Task Posts(Loop loop)
    {
        var counter = new PostCounter(N);
        Action hit = counter.HitOnLoop; // one delegate, posted N times: the cost measured is the post's, not the closure's
        var producer = new Thread(() =>
        {
            for (int i = 0; i < N; i++)
            {
                loop.CallSoonThreadSafe(hit);
            }
        });
        producer.Start();
        return counter.Completion.Task;
    }
}
