using BenchmarkDotNet.Attributes;
using Nito.AsyncEx;

namespace EventLoop.Benchmarks;

/// <summary>
/// Schedules 100,000 timers with deadlines spread over 0-9 ms and waits until all have fired.
/// Baselines: <c>Task.Delay</c> on the thread pool's timer queue, and under AsyncContext.
/// </summary>
public class Timers
{
    private const int N = 100_000;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "ThreadPool Task.Delay")]
    public void ThreadPool() => Task.Run(Delays).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = N, Description = "AsyncContext Task.Delay")]
    public void NitoAsyncContext() => AsyncContext.Run(Delays);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallLater")]
    public void Managed() => Harness.OnLoop(Harness.Policy("managed"), CallLaters);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv CallLater")]
    public void Libuv() => Harness.OnLoop(Harness.Policy("libuv"), CallLaters);

    private static Task Delays()
    {
        var tasks = new Task[N];
        for (int i = 0; i < N; i++)
        {
            tasks[i] = Task.Delay(i % 10);
        }

        return Task.WhenAll(tasks);
    }

    private static Task CallLaters(Loop loop)
    {
        var state = new Countdown();
        for (int i = 0; i < N; i++)
        {
            loop.CallLater(TimeSpan.FromMilliseconds(i % 10), Countdown.Fire, state);
        }

        return state.Done.Task;
    }

    private sealed class Countdown
    {
        public static readonly Action<Countdown> Fire = static s =>
        {
            if (++s.Fired == N)
            {
                s.Done.SetResult();
            }
        };

        public readonly TaskCompletionSource Done = new();
        public int Fired;
    }
}
