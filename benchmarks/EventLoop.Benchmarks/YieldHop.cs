using BenchmarkDotNet.Attributes;
using Nito.AsyncEx;

namespace EventLoop.Benchmarks;

/// <summary><c>await Task.Yield()</c>: one trip through the scheduler per operation.</summary>
public class YieldHop
{
    private const int N = 100_000;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "ThreadPool")]
    public void ThreadPool() => Task.Run(Hops).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = N, Description = "AsyncContext")]
    public void NitoAsyncContext() => AsyncContext.Run(Hops);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed")]
    public void Managed() => Harness.OnLoop(Harness.Policy("managed"), _ => Hops());

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv")]
    public void Libuv() => Harness.OnLoop(Harness.Policy("libuv"), _ => Hops());

    private static async Task Hops()
    {
        for (int i = 0; i < N; i++)
        {
            await Task.Yield();
        }
    }
}
