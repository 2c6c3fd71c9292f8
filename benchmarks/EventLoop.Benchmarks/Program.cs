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
IConfig config = DefaultConfig.Instance
    .AddJob(Job.Default
        .WithWarmupCount(3)
        .WithIterationCount(8)
        .WithId("1core"))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumn(StatisticColumn.OperationsPerSecond)
    .AddExporter(MarkdownExporter.GitHub)
    .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend))
    .WithOptions(ConfigOptions.JoinSummary | ConfigOptions.DisableLogFile);

BenchmarkSwitcher.FromAssembly(typeof(EventLoop.Benchmarks.YieldHop).Assembly).Run(args, config);
