using System.Globalization;

namespace EventLoop.EchoBenchmark;

/// <summary>
/// The <c>chart</c> role: the web benchmark's charts (<c>benchmarks/web/run.sh</c> writes the CSV) drawn with the echo
/// charts' <see cref="Report.GroupedBars"/>: requests/s relative to Kestrel's Sockets transport, and the server's CPU time
/// per request, one group per route and core count, one bar per server.
/// </summary>
internal static class WebChart
{
    private const string Baseline = "Kestrel Sockets";

    /// <summary><c>chart --csv FILE --out PREFIX</c>: writes PREFIX.png and PREFIX-cpu.png.</summary>
    public static int RunFromArgs(string[] args)
    {
        string? csv = null, prefix = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--csv": csv = args[++i]; break;
                case "--out": prefix = args[++i]; break;
                default: throw new ArgumentException($"chart: unknown option '{args[i]}'.", nameof(args));
            }
        }

        if (csv is null || prefix is null)
        {
            throw new ArgumentException("chart needs --csv FILE (written by benchmarks/web/run.sh) and --out PREFIX.", nameof(args));
        }

        // cores,server,route,requests_per_second,p99_ms,cpu_us_per_request
        var rows = File.ReadAllLines(csv).Skip(1).Where(l => l.Length > 0).Select(l => l.Split(','))
            .Select(f => (Cores: int.Parse(f[0], CultureInfo.InvariantCulture), Server: f[1], Route: f[2],
                Rps: double.Parse(f[3], CultureInfo.InvariantCulture), CpuUs: double.Parse(f[5], CultureInfo.InvariantCulture)))
            .ToList();
        var groups = rows.Select(r => (r.Route, r.Cores)).Distinct().OrderBy(g => g.Cores).ThenBy(g => g.Route == "json").ToArray();
        string[] servers = rows.Select(r => r.Server).Distinct().ToArray();
        string[] labels = groups.Select(g => $"/{g.Route}, server on {g.Cores} core{(g.Cores == 1 ? "" : "s")}").ToArray();
        var relative = new double?[groups.Length, servers.Length];
        var cpu = new double?[groups.Length, servers.Length];
        for (int g = 0; g < groups.Length; g++)
        {
            double baseline = rows.FirstOrDefault(r => r.Server == Baseline && (r.Route, r.Cores) == groups[g]).Rps;
            for (int s = 0; s < servers.Length; s++)
            {
                var row = rows.FirstOrDefault(r => r.Server == servers[s] && (r.Route, r.Cores) == groups[g]);
                if (row.Server is null)
                {
                    continue;
                }

                relative[g, s] = baseline > 0 ? row.Rps / baseline : null;
                cpu[g, s] = row.CpuUs;
            }
        }

        Report.GroupedBars(prefix + ".png", "Kestrel on EventLoop's transport vs its Sockets transport (wrk, 64 keep-alive connections)",
            $"requests/s relative to {Baseline}", "route and server cores", labels, servers, relative, "0.00");
        Report.GroupedBars(prefix + "-cpu.png", "Server CPU time per request (lower is better)",
            "server CPU µs per request (user + kernel)", "route and server cores", labels, servers, cpu, "0.0");
        Console.WriteLine($"wrote {prefix}.png and {prefix}-cpu.png");
        return 0;
    }
}
