using System.Globalization;
using System.Text;
using ScottPlot;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.EchoBenchmark;

/// <summary>The Markdown table and the PNG chart.</summary>
internal static class Report
{
    private const string Baseline = "threadpool";

    private static string RoundsText(int rounds) => rounds == 1
        ? "One round."
        : $"Each figure is the median of {rounds} rounds; every round measures every server, in an order that rotates from round to round.";

    public static string FormatSize(int size) =>
        size % 1024 == 0 ? $"{size / 1024} KiB" : $"{size} B";

    public static string Markdown(List<CaseResult> results, List<ServerSpec> servers, List<string> notes, Options options, bool pinned)
    {
        var md = new StringBuilder();
        CultureInfo inv = CultureInfo.InvariantCulture;
        md.AppendLine("# Echo benchmark");
        md.AppendLine();
        md.AppendLine(inv, $"Made {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {CpuModel()} ({Environment.ProcessorCount} cores), .NET {Environment.Version}, with:");
        md.AppendLine();
        md.AppendLine("```");
        string arguments = string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
        md.AppendLine(("dotnet build EventLoop.sln -c Release && dotnet benchmarks/EventLoop.EchoBenchmark/bin/Release/net10.0/EventLoop.EchoBenchmark.dll " + arguments).TrimEnd());
        md.AppendLine("```");
        md.AppendLine();
        string pinning = pinned ? "Server pinned to core 0 and client to core 1 with `taskset`." : "Not pinned (no taskset, or --no-pin).";
        if (options.InlineCompletions)
        {
            pinning += " .NET servers ran with `DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1`.";
        }

        md.AppendLine(inv, $"{options.Connections} connections, each sending one message and reading the whole echo back before the next (ping-pong), {options.Duration:0.#} s measured after {options.Warmup:0.#} s of warm-up per case. {RoundsText(options.Rounds)} {pinning}");
        md.AppendLine();
        md.AppendLine("| server | message | msg/s | MiB/s | vs threadpool |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        foreach (int size in options.Sizes)
        {
            double? baseline = results.FirstOrDefault(r => r.Server == Baseline && r.Size == size && r.MessagesPerSecond > 0)?.MessagesPerSecond;
            foreach (CaseResult r in results.Where(r => r.Size == size))
            {
                string ratio = baseline is { } b && r.MessagesPerSecond > 0 ? (r.MessagesPerSecond / b).ToString("0.00x", inv) : "";
                string note = r.Note is null ? "" : $" ({r.Note})";
                md.AppendLine(inv, $"| {r.Server}{note} | {FormatSize(size)} | {r.MessagesPerSecond:N0} | {r.MiBPerSecond:N1} | {ratio} |");
            }
        }

        AppendBullets(md, "Servers:", servers.Select(spec => $"**{spec.Name}**: {spec.Description}"));
        AppendBullets(md, "Notes:", notes);

        md.AppendLine();
        md.AppendLine("![echo throughput relative to the .NET thread-pool server](echo.png)");
        return md.ToString();
    }

    /// <summary>Grouped bars: one group per message size, one bar per server, height = msg/s relative to the thread-pool server.</summary>
    public static void Chart(List<CaseResult> results, Options options, string path)
    {
        var plot = new Plot();
        string[] servers = results.Select(r => r.Server).Distinct().ToArray();
        bool relative = results.Any(r => r.Server == Baseline && r.MessagesPerSecond > 0);
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        double groupWidth = servers.Length + 1;
        for (int g = 0; g < options.Sizes.Length; g++)
        {
            int size = options.Sizes[g];
            double baseline = results.FirstOrDefault(r => r.Server == Baseline && r.Size == size)?.MessagesPerSecond ?? 0;
            for (int s = 0; s < servers.Length; s++)
            {
                CaseResult? r = results.FirstOrDefault(x => x.Server == servers[s] && x.Size == size);
                if (r is null)
                {
                    continue;
                }

                double value = relative ? (baseline > 0 ? r.MessagesPerSecond / baseline : 0) : r.MessagesPerSecond / 1000.0;
                bars.Add(new Bar
                {
                    Position = (g * groupWidth) + s,
                    Value = value,
                    FillColor = palette.GetColor(s),
                    Label = relative ? value.ToString("0.00", CultureInfo.InvariantCulture) : value.ToString("0", CultureInfo.InvariantCulture),
                });
            }
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 11;
        double[] ticks = Enumerable.Range(0, options.Sizes.Length).Select(g => (g * groupWidth) + ((servers.Length - 1) / 2.0)).ToArray();
        string[] labels = options.Sizes.Select(FormatSize).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks, labels);
        for (int s = 0; s < servers.Length; s++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = servers[s], FillColor = palette.GetColor(s) });
        }

        // One row across the top, in the headroom the margin below leaves: a column in a corner hid a bar's label.
        plot.Legend.IsVisible = true;
        plot.Legend.Orientation = Orientation.Horizontal;
        plot.Legend.Alignment = Alignment.UpperCenter;
        plot.Title($"TCP echo, {options.Connections} connections, ping-pong (server on one core)");
        plot.YLabel(relative ? "msg/s relative to the .NET thread-pool server" : "thousand msg/s");
        plot.XLabel("message size");
        plot.Axes.Margins(bottom: 0, top: 0.35); // room for the legend above the bars
        plot.SavePng(path, 1000, 560);
    }
}
