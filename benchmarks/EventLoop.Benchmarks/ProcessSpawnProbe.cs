using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using EventLoop.Libuv;

namespace EventLoop.Benchmarks;

/// <summary>
/// Subprocess spawn+wait throughput beside uvloop, in one run (issue 12: "subprocess spawn+wait per second"):
/// <c>/bin/true</c> started with <see cref="Loop.StartProcess"/> (stdio to /dev/null) and awaited, <c>concurrency</c>
/// at a time, for a few seconds, on the managed loop, the libuv loop and uvloop (asyncio.create_subprocess_exec, run
/// by <c>benchmarks/processes/spawn_uvloop.py</c> under /usr/bin/python3), the three alternating for several rounds.
/// Reports spawns per second and CPU per spawn: the spawning process's (the loop's cost) and its children's.
/// <code>
/// taskset -c 0 dotnet benchmarks/EventLoop.Benchmarks/bin/Release/net10.0/EventLoop.Benchmarks.dll --spawn [seconds] [rounds] [concurrency,...]
/// </code>
/// </summary>
internal static class ProcessSpawnProbe
{
    private sealed record Sample(string Loop, int Concurrency, long Spawns, double Wall, double CpuSelf, double CpuChildren);

    public static int Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        int rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3;
        int[] concurrencies = args.Length > 3 ? args[3].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray() : [1, 8];
        string script = FindScript();
        var samples = new List<Sample>();
        for (int round = 1; round <= rounds; round++)
        {
            foreach (int concurrency in concurrencies)
            {
                foreach (string loop in new[] { "managed", "libuv", "uvloop" })
                {
                    Sample sample = loop == "uvloop" ? RunUvloop(script, seconds, concurrency) : RunOurs(loop, seconds, concurrency);
                    samples.Add(sample);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"round {round} {loop,-8} x{concurrency,-3} {sample.Spawns / sample.Wall,8:F0} spawns/s  {sample.CpuSelf / sample.Spawns * 1e6,6:F0} us CPU/spawn (children {sample.CpuChildren / sample.Spawns * 1e6,5:F0} us)"));
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine($"| loop | in flight | spawns/s (median of {rounds}) | CPU per spawn, spawner (median) | CPU per spawn, child (median) |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
        foreach (int concurrency in concurrencies)
        {
            foreach (string loop in new[] { "managed", "libuv", "uvloop" })
            {
                Sample[] mine = samples.Where(s => s.Loop == loop && s.Concurrency == concurrency).ToArray();
                double rate = Median(mine.Select(s => s.Spawns / s.Wall));
                double self = Median(mine.Select(s => s.CpuSelf / s.Spawns * 1e6));
                double child = Median(mine.Select(s => s.CpuChildren / s.Spawns * 1e6));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {loop} | {concurrency} | {rate:N0} | {self:F0} us | {child:F0} us |"));
            }
        }

        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static Sample RunOurs(string name, double seconds, int concurrency)
    {
        LoopPolicy policy = name == "libuv" ? new LibuvLoopPolicy() : new ManagedLoopPolicy();
        return Loop.Run(async () =>
        {
            Loop loop = Loop.Current;
            var options = new LoopProcessOptions { StandardInput = ProcessStdio.Discard, StandardOutput = ProcessStdio.Discard, StandardError = ProcessStdio.Discard };
            long[] counter = new long[1];
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => WorkerAsync(loop, options, Stopwatch.GetTimestamp() + Stopwatch.Frequency / 2, new long[1])));
            (double self0, double children0) = (Usage(Self), Usage(Children));
            long start = Stopwatch.GetTimestamp();
            long deadline = start + (long)(seconds * Stopwatch.Frequency);
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => WorkerAsync(loop, options, deadline, counter)));
            double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
            return new Sample(name, concurrency, counter[0], wall, Usage(Self) - self0, Usage(Children) - children0);
        }, policy);
    }

    private static async Task WorkerAsync(Loop loop, LoopProcessOptions options, long deadline, long[] counter)
    {
        while (Stopwatch.GetTimestamp() < deadline)
        {
            await using LoopProcess process = loop.StartProcess("/bin/true", null, options);
            if ((await process.WaitForExitAsync()).ExitCode != 0)
            {
                throw new InvalidOperationException("/bin/true failed");
            }

            counter[0]++;
        }
    }

    private static Sample RunUvloop(string script, double seconds, int concurrency)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(seconds.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add(concurrency.ToString(CultureInfo.InvariantCulture));
        using Process python = Process.Start(start)!;
        string line = python.StandardOutput.ReadToEnd().Trim();
        python.WaitForExit();
        if (python.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} exited with {python.ExitCode}: {line}");
        }

        string[] f = line.Split(' ');
        return new Sample("uvloop", concurrency, long.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[1], CultureInfo.InvariantCulture),
            double.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture));
    }

    private static string FindScript()
    {
        for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            string candidate = Path.Combine(dir, "benchmarks", "processes", "spawn_uvloop.py");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("benchmarks/processes/spawn_uvloop.py not found above " + AppContext.BaseDirectory);
    }

    private const int Self = 0, Children = -1;

    /// <summary>User plus system CPU seconds of this process (RUSAGE_SELF) or of its reaped children (RUSAGE_CHILDREN).</summary>
    private static unsafe double Usage(int who)
    {
        long* usage = stackalloc long[18]; // struct rusage: two timevals, then 14 longs
        if (getrusage(who, usage) != 0)
        {
            return double.NaN;
        }

        return usage[0] + (usage[1] / 1e6) + usage[2] + (usage[3] / 1e6);
    }

    [DllImport("libc")]
    private static extern unsafe int getrusage(int who, long* usage);
}
