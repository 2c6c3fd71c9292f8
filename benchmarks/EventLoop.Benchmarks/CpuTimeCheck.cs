using System.Diagnostics;
using BenchmarkDotNet.Attributes;

namespace EventLoop.Benchmarks;

/// <summary>
/// A check of the CPU/op column (<see cref="CpuTimeDiagnoser"/>): a millisecond asleep should cost ~0 CPU, a millisecond
/// of spinning ~1 ms, and the same spin on two threads ~2 ms per millisecond of wall time.
/// </summary>
public class CpuTimeCheck
{
    [Benchmark(Description = "Thread.Sleep(1 ms)")]
    public void Sleep() => Thread.Sleep(1);

    [Benchmark(Baseline = true, Description = "spin 1 ms")]
    public void Spin() => SpinFor(1.0);

    [Benchmark(Description = "spin 1 ms on two threads")]
    public void SpinTwoThreads()
    {
        var other = new Thread(() => SpinFor(1.0));
        other.Start();
        SpinFor(1.0);
        other.Join();
    }

    private static void SpinFor(double milliseconds)
    {
        long end = Stopwatch.GetTimestamp() + (long)(milliseconds * Stopwatch.Frequency / 1000);
        while (Stopwatch.GetTimestamp() < end)
        {
        }
    }
}
