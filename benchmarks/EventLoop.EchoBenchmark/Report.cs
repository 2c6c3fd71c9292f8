using System.Globalization;
using System.Text;
using EventLoop.Benchmarking;
using ScottPlot;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.EchoBenchmark;

/// <summary>The Markdown table and the PNG charts.</summary>
internal static class Report
{
    private static string Baseline = "threadpool"; // --baseline
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static string RoundsText(int rounds) => rounds == 1
        ? "One round (no spread to judge a difference by)."
        : $"Each figure is the median of {rounds} rounds; every round measures every server, in an order that rotates from round to round.";

    public static string FormatSize(int size) =>
        size % 1024 == 0 ? $"{size / 1024} KiB" : $"{size} B";

    private static string Split(CoreSplit? split) => split?.Format() ?? "n/a";

    private static string Percent(double? value) => Stats.Percent(value);

    public static string Markdown(List<CaseSummary> results, List<ServerSpec> servers, ClientSpec client, List<string> notes, Options options, bool pinned, string loadBefore)
    {
        Baseline = options.Baseline;
        var md = new StringBuilder();
        md.AppendLine(options.Tls ? "# TLS echo benchmark" : "# Echo benchmark");
        md.AppendLine();
        md.AppendLine(Inv, $"Made {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {CpuModel()} (`nproc`: {Environment.ProcessorCount}), .NET {Environment.Version}; load average (1, 5, 15 min) before the run {loadBefore}, after it {LoadAverage()}. Command:");
        md.AppendLine();
        md.AppendLine("```");
        string arguments = string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
        md.AppendLine(("dotnet build EventLoop.sln -c Release && dotnet benchmarks/EventLoop.EchoBenchmark/bin/Release/net10.0/EventLoop.EchoBenchmark.dll " + arguments).TrimEnd());
        md.AppendLine("```");
        md.AppendLine();
        string pinning = pinned
            ? $"Server pinned to {(options.SingleServerCore is null ? "cores" : "core")} {options.ServerCores} and client to core {options.ClientCore} with `taskset`."
            : "Not pinned (no taskset, or --no-pin): core use is over wall time.";
        if (options.InlineCompletions)
        {
            pinning += " .NET servers ran with `DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1`.";
        }

        string churn = options.MessagesPerConnection switch
        {
            0 => "",
            1 => " **Every message on a new connection** (`--messages-per-connection 1`: the client closes each connection after one echo and connects again), so msg/s is also connections accepted per second.",
            int k => $" Each connection is closed after {k} echoes and a new one opened (`--messages-per-connection {k}`).",
        };
        md.AppendLine(Inv, $"Load generator: {client.Description}. {options.Connections} connections, each sending one message and reading the whole echo back before the next (ping-pong), {options.Duration:0.#} s measured after {options.Warmup:0.#} s of warm-up per case{(client.Name == "c" && options.WarmupServerCpu > 0 ? string.Create(Inv, $" (longer if the server had not yet used {options.WarmupServerCpu:0.#} s of CPU since the client started, so a .NET server's tiered JIT has finished before the measured window)") : "")}.{churn} {RoundsText(options.Rounds)} {pinning}");
        md.AppendLine();
        md.AppendLine($"| server | message | msg/s | rounds' range | vs {Baseline} | server CPU µs/msg (range) | server kernel time | client CPU µs/msg | server core: server / others / idle | client core: client / others / idle | errors / wrong bytes |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int size in options.Sizes)
        {
            CaseSummary? baseline = results.FirstOrDefault(r => r.Server == Baseline && r.Size == size && r.MessagesPerSecond > 0);
            foreach (CaseSummary r in results.Where(r => r.Size == size))
            {
                string ratio = "";
                if (baseline is not null && r.MessagesPerSecond > 0)
                {
                    ratio = (r.MessagesPerSecond / baseline.MessagesPerSecond).ToString("0.00x", Inv);
                    ratio = r != baseline && r.DiffersBeyondSpread(baseline) ? $"**{ratio}**" : ratio;
                }

                (double low, double high) = r.MessagesPerSecondRange;
                string cpu = r.ServerMicrosPerMessage is { } us
                    ? r.ServerMicrosRange is { } range && r.Rounds.Count > 1 ? string.Create(Inv, $"{us:N1} ({range.Min:N1}–{range.Max:N1})") : us.ToString("N1", Inv)
                    : "n/a";
                string note = r.Note is null ? "" : $" ({r.Note})";
                md.AppendLine(Inv, $"| {r.Server}{note} | {FormatSize(size)} | {r.MessagesPerSecond:N0} | {low:N0}–{high:N0} | {ratio} | {cpu} | {Percent(r.ServerKernelShare)} | {r.ClientMicrosPerMessage?.ToString("N1", Inv) ?? "n/a"} | {Split(r.ServerCoreSplit)} | {Split(r.ClientCoreSplit)} | {r.Errors} / {r.MismatchedBytes} |");
            }
        }

        AppendBullets(md, "How to read it:",
        [
            "**msg/s**: round trips per second, all connections; **rounds' range**: the slowest and the fastest round.",
            $"**vs {Baseline}**: the ratio of medians; **bold** only where every round of the one beat every round of the other (the ranges do not overlap), so a plain ratio is within the round-to-round spread.",
            "**server CPU µs/msg**: the server process's CPU time (utime + stime of all its threads, from `/proc/<pid>/stat`, read by the client at the start and end of its measured window) per round trip. It moves less than msg/s on a shared machine, but not nothing: a busier server batches more messages per wake-up.",
            "**server kernel time**: the share of that CPU time spent in the kernel (stime): system calls, and on loopback the TCP stack's work for the packets this process sends.",
            "**client CPU µs/msg**: the load generator's own CPU time (getrusage) per round trip, for comparison: on loopback the client pays the kernel's TCP work for its sends as the server does for its replies, so even a client that does nothing else costs about as much per message as the leanest server.",
            "**server core, client core**: how each pinned process's core spent the measured window, as shares of wall-clock time: the process itself (its CPU time), **others** (time the hypervisor stole for other machines, other processes on the shared machine, interrupts: the window less the process and idle time, from `/proc/stat`) and **idle**, each the median of its rounds (so the three need not add up to exactly 100%). A core with no idle time was the limit; a client core at ~0% idle means that case measured the client (or what else ran on its core) as much as the server.",
            "**errors / wrong bytes**: failed connections, and reply bytes that differed from the bytes sent, summed over all rounds (every byte is checked).",
        ]);
        AppendBullets(md, "Servers:", servers.Select(spec => $"**{spec.Name}**: {spec.Description}"));
        AppendBullets(md, "Notes:", notes);

        md.AppendLine();
        md.AppendLine($"![echo throughput relative to the baseline server]({options.ReportName}.png)");
        md.AppendLine();
        md.AppendLine($"![server CPU time per round trip]({options.ReportName}-cpu.png)");
        return md.ToString();
    }

    /// <summary>Two charts: msg/s relative to the thread-pool server, and the server's CPU µs per round trip.</summary>
    public static void Chart(List<CaseSummary> results, Options options, ClientSpec client, string path)
    {
        Baseline = options.Baseline;
        string cores = options.SingleServerCore is null ? $"server on cores {options.ServerCores}" : "server on one core";
        bool relative = results.Any(r => r.Server == Baseline && r.MessagesPerSecond > 0);
        Bars(results, options, path,
            $"{(options.Tls ? "TLS" : "TCP")} echo, {options.Connections} connections, ping-pong ({cores}; {client.Name} client)",
            relative ? $"msg/s relative to the {Baseline} server" : "thousand msg/s",
            r =>
            {
                double baseline = results.FirstOrDefault(b => b.Server == Baseline && b.Size == r.Size)?.MessagesPerSecond ?? 0;
                return relative ? (baseline > 0 ? r.MessagesPerSecond / baseline : null) : r.MessagesPerSecond / 1000.0;
            },
            relative ? "0.00" : "0");
        Bars(results, options, Path.Combine(Path.GetDirectoryName(path)!, Path.GetFileNameWithoutExtension(path) + "-cpu.png"),
            $"Server CPU time per round trip, {options.Connections} connections (lower is better)",
            "server CPU µs per message (user + kernel)",
            r => r.ServerMicrosPerMessage,
            "0.0");
    }

    /// <summary>Grouped bars: one group per message size, one bar per server.</summary>
    private static void Bars(List<CaseSummary> results, Options options, string path, string title, string yLabel, Func<CaseSummary, double?> value, string format)
    {
        string[] servers = results.Select(r => r.Server).Distinct().ToArray();
        var values = new double?[options.Sizes.Length, servers.Length];
        for (int g = 0; g < options.Sizes.Length; g++)
        {
            for (int s = 0; s < servers.Length; s++)
            {
                CaseSummary? r = results.FirstOrDefault(x => x.Server == servers[s] && x.Size == options.Sizes[g]);
                values[g, s] = r is null ? null : value(r);
            }
        }

        GroupedBars(path, title, yLabel, "message size", options.Sizes.Select(FormatSize).ToArray(), servers, values, format);
    }

    /// <summary>
    /// Grouped bars, one group per <paramref name="groups"/> label and one bar per <paramref name="series"/> name (a missing
    /// value leaves a gap), the legend in one row across the top. The echo charts and the web chart (<c>chart</c> role) both
    /// draw with it.
    /// </summary>
    public static void GroupedBars(string path, string title, string yLabel, string xLabel, string[] groups, string[] series, double?[,] values, string format)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        double groupWidth = series.Length + 1;
        for (int g = 0; g < groups.Length; g++)
        {
            for (int s = 0; s < series.Length; s++)
            {
                if (values[g, s] is not { } v)
                {
                    continue;
                }

                bars.Add(new Bar
                {
                    Position = (g * groupWidth) + s,
                    Value = v,
                    FillColor = palette.GetColor(s),
                    Label = v.ToString(format, Inv),
                });
            }
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 11;
        double[] ticks = Enumerable.Range(0, groups.Length).Select(g => (g * groupWidth) + ((series.Length - 1) / 2.0)).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks, groups);
        for (int s = 0; s < series.Length; s++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = series[s], FillColor = palette.GetColor(s) });
        }

        // One row across the top, in the headroom the margin below leaves: a column in a corner hid a bar's label.
        plot.Legend.IsVisible = true;
        plot.Legend.Orientation = Orientation.Horizontal;
        plot.Legend.Alignment = Alignment.UpperCenter;
        plot.Title(title);
        plot.YLabel(yLabel);
        plot.XLabel(xLabel);
        plot.Axes.Margins(bottom: 0, top: 0.35); // room for the legend above the bars
        plot.SavePng(path, 1000, 560);
    }
}
