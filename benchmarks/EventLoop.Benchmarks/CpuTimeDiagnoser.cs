using System.Globalization;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Analysers;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Validators;

namespace EventLoop.Benchmarks;

/// <summary>
/// A "CPU/op" column: the benchmark process's CPU time (user + kernel, all its threads, including threads that have
/// exited) over the actual workload iterations, divided by their operations. BenchmarkDotNet has no CPU-time column on
/// Linux; on a shared machine CPU per operation moves much less than wall time per operation, because time the process
/// waits for its core costs no CPU. The host reads <c>/proc/&lt;pid&gt;/stat</c> of the benchmark process when it
/// signals the start and the end of its actual run (the process waits for the host's acknowledgment at both), so the
/// figure covers the same iterations as the Mean, plus the engine's own few instructions between them. A cross-thread
/// case counts both threads, so its CPU/op can exceed its time/op; a case that waits (a sleep, a timer) costs ~0.
/// Resolution: one clock tick (10 ms) per run of several hundred milliseconds or more. With several launches
/// (<c>RunStrategy.ColdStart</c>), BenchmarkDotNet hands the diagnoser one launch's results, and the figure is that
/// launch's. Linux only; elsewhere the column stays empty.
/// </summary>
internal sealed class CpuTimeDiagnoser : IDiagnoser
{
    public static readonly CpuTimeDiagnoser Default = new();

    private static readonly IMetricDescriptor s_descriptor = new CpuPerOperationDescriptor();
    private static readonly double s_nanosecondsPerTick = 1e9 / ClockTicksPerSecond();

    // Per benchmark case, the CPU ticks of each launch's actual run, in launch order.
    private readonly Dictionary<BenchmarkCase, List<long>> _ticks = [];
    private readonly Dictionary<BenchmarkCase, long> _started = [];

    public IEnumerable<string> Ids => ["CpuTime"];

    public IEnumerable<IExporter> Exporters => [];

    public IEnumerable<IAnalyser> Analysers => [];

    public RunMode GetRunMode(BenchmarkCase benchmarkCase) => OperatingSystem.IsLinux() ? RunMode.NoOverhead : RunMode.None;

    public void Handle(HostSignal signal, DiagnoserActionParameters parameters)
    {
        if (signal == HostSignal.BeforeActualRun)
        {
            _started[parameters.BenchmarkCase] = ReadTicks(parameters.Process.Id);
        }
        else if (signal == HostSignal.AfterActualRun && _started.Remove(parameters.BenchmarkCase, out long start))
        {
            long ticks = ReadTicks(parameters.Process.Id) - start;
            if (!_ticks.TryGetValue(parameters.BenchmarkCase, out List<long>? list))
            {
                _ticks[parameters.BenchmarkCase] = list = [];
            }

            list.Add(ticks);
        }
    }

    public IEnumerable<Metric> ProcessResults(DiagnoserResults results)
    {
        if (!_ticks.TryGetValue(results.BenchmarkCase, out List<long>? launches) || launches.Count == 0)
        {
            yield break;
        }

        // The operations of the actual workload iterations, per launch. When the results cover as many launches as
        // were recorded, use them all; otherwise they are the last launch's (what BenchmarkDotNet passes for a
        // no-overhead diagnoser), so pair them with the last recording.
        long[] operations = results.Measurements
            .Where(m => m.IterationStage == IterationStage.Actual && m.IterationMode == IterationMode.Workload)
            .GroupBy(m => m.LaunchIndex)
            .OrderBy(g => g.Key)
            .Select(g => g.Sum(m => m.Operations))
            .ToArray();
        if (operations.Length == 0)
        {
            yield break;
        }

        long ticks = operations.Length == launches.Count ? launches.Sum() : launches[^1];
        long ops = operations.Length == launches.Count ? operations.Sum() : operations[^1];
        yield return new Metric(s_descriptor, ticks * s_nanosecondsPerTick / ops);
    }

    public void DisplayResults(ILogger logger)
    {
    }

    public IEnumerable<ValidationError> Validate(ValidationParameters validationParameters) => [];

    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime) in clock ticks, counted after the command name, which is in
    // parentheses and may itself contain spaces.
    private static long ReadTicks(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    private static long ClockTicksPerSecond()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 100;
        }

        const int ScClkTck = 2; // _SC_CLK_TCK on Linux
        long ticks = SysConf(ScClkTck);
        return ticks > 0 ? ticks : 100;
    }

    [DllImport("libc", EntryPoint = "sysconf")]
    private static extern long SysConf(int name);

    private sealed class CpuPerOperationDescriptor : IMetricDescriptor
    {
        public string Id => "CpuTimePerOperation";

        public string DisplayName => "CPU/op";

        public string Legend => "CPU time (user + kernel, all threads of the benchmark process) per operation over the actual iterations";

        public string NumberFormat => "N2";

        public UnitType UnitType => UnitType.Time;

        public string Unit => "ns";

        public bool TheGreaterTheBetter => false;

        public int PriorityInCategory => 0;

        public bool GetIsAvailable(Metric metric) => true;
    }
}
