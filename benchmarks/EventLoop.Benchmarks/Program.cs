using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;

// Micro suite for the loop core. Run pinned to one core, as the targets are stated:
//   taskset -c 0 dotnet run -c Release --project benchmarks/EventLoop.Benchmarks -- --filter '*'
// Every case runs on both loop policies beside its baselines (Nito.AsyncEx AsyncContext, the thread pool)
// in the same run, so the ratios hold on a noisy shared machine.
if (args.Length > 0 && args[0] == "--cold-posts")
{
    return EventLoop.Benchmarks.ColdPostsProbe.Run(args);
}

if (args.Length > 0 && args[0] == "--spawn")
{
    return EventLoop.Benchmarks.ProcessSpawnProbe.Run(args);
}

IConfig config = DefaultConfig.Instance
    .AddJob(Job.Default
        .WithWarmupCount(3)
        .WithIterationCount(8)
        .WithId("1core"))
    .AddDiagnoser(MemoryDiagnoser.Default, EventLoop.Benchmarks.CpuTimeDiagnoser.Default)
    .AddColumn(StatisticColumn.OperationsPerSecond)
    .AddExporter(MarkdownExporter.GitHub)
    .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend))
    .WithOptions(ConfigOptions.JoinSummary | ConfigOptions.DisableLogFile);

// The cold cases (classes named Cold...) run as their own job says instead: a fresh process per launch, one
// invocation each, default tiering, so they show what an app's first operations cost.
IConfig coldConfig = DefaultConfig.Instance
    .AddDiagnoser(MemoryDiagnoser.Default, EventLoop.Benchmarks.CpuTimeDiagnoser.Default)
    .AddColumn(StatisticColumn.OperationsPerSecond, StatisticColumn.Min, StatisticColumn.Median, StatisticColumn.Max)
    .AddExporter(MarkdownExporter.GitHub)
    .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend))
    .WithOptions(ConfigOptions.DisableLogFile);
Type[] all = typeof(EventLoop.Benchmarks.YieldHop).Assembly.GetTypes()
    .Where(t => t.IsPublic && !t.IsAbstract && t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkDotNet.Attributes.BenchmarkAttribute), false)))
    .ToArray();
Type[] cold = all.Where(t => t.Name.StartsWith("Cold", StringComparison.Ordinal)).ToArray();
BenchmarkSwitcher.FromTypes(all.Except(cold).ToArray()).Run(args, config);
BenchmarkSwitcher.FromTypes(cold).Run(args, coldConfig);
return 0;
