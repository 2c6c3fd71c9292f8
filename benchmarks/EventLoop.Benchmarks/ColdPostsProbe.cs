using System.Diagnostics;

namespace EventLoop.Benchmarks;

/// <summary>
/// <c>--cold-posts POLICY [N]</c>: the cold cross-thread case outside BenchmarkDotNet, printing CPU time beside wall
/// time (the machine is shared: wall-clock rates swing, CPU per post is steadier). One fresh process, one fresh loop,
/// default tiering; a thread posts N <see cref="Loop.CallSoonThreadSafe(Action)"/> and the run ends when the loop has
/// run them all. Prints one line: <c>policy posts wall_ms posts_per_s cpu_ns_per_post bytes_per_post gen0 gen1 gen2</c>.
/// </summary>
internal static class ColdPostsProbe
{
    public static int Run(string[] args)
    {
        string policy = args.Length > 1 ? args[1] : "managed";
        int n = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000;
        var process = Process.GetCurrentProcess();
        int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
        long bytes = GC.GetTotalAllocatedBytes(precise: true);
        TimeSpan cpu = process.TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();

        using (Loop loop = Harness.Policy(policy).CreateLoop(new LoopOptions { Debug = false }))
        {
            loop.RunUntilComplete(() =>
            {
                int count = 0;
                var done = new TaskCompletionSource();
                Action hit = () =>
                {
                    if (++count == n)
                    {
                        done.SetResult();
                    }
                };
                var producer = new Thread(() =>
                {
                    for (int i = 0; i < n; i++)
                    {
                        loop.CallSoonThreadSafe(hit);
                    }
                });
                producer.Start();
                return done.Task;
            });
        }

        double wall = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        process.Refresh();
        double cpuNs = (process.TotalProcessorTime - cpu).TotalMilliseconds * 1e6 / n;
        double perPost = (GC.GetTotalAllocatedBytes(precise: true) - bytes) / (double)n;
        Console.WriteLine(FormattableString.Invariant(
            $"{policy} {n} {wall:F1} {n / wall * 1000:F0} {cpuNs:F1} {perPost:F1} {GC.CollectionCount(0) - g0} {GC.CollectionCount(1) - g1} {GC.CollectionCount(2) - g2}"));
        return 0;
    }
}
