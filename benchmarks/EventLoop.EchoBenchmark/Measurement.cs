using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using EventLoop.Benchmarking;

namespace EventLoop.EchoBenchmark;

/// <summary>
/// What a load generator measured over its measured window, as carried by its one RESULT line. Both clients
/// (the C one in benchmarks/echo/echo_client.c and the .NET fallback) print the same line:
/// <c>RESULT messages=N seconds=S errors=E mismatches=B client_user=S client_sys=S server_user=S server_sys=S
/// core_idle=S,S core_steal=S,S</c> (CPU times in seconds; server_* -1 when unknown).
/// </summary>
/// <param name="Messages">Round trips completed in the window, all connections.</param>
/// <param name="Seconds">The window's measured length.</param>
/// <param name="Errors">Connections that failed (reset, closed early).</param>
/// <param name="MismatchedBytes">Reply bytes that differed from the bytes sent at that position (whole run).</param>
/// <param name="Client">The client's own CPU time in the window.</param>
/// <param name="Server">The server's CPU time in the same window, when its pid was known.</param>
/// <param name="Cores">Each core's idle and stolen time in the window, when /proc/stat was readable.</param>
internal sealed partial record Measurement(long Messages, double Seconds, int Errors, long MismatchedBytes,
    ProcessCpu Client, ProcessCpu? Server, CoreTimes[]? Cores)
{
    /// <summary>The RESULT line for this measurement.</summary>
    public string ToResultLine()
    {
        CultureInfo inv = CultureInfo.InvariantCulture;
        var line = new StringBuilder();
        line.Append(inv, $"RESULT messages={Messages} seconds={Seconds:F6} errors={Errors} mismatches={MismatchedBytes}");
        line.Append(inv, $" client_user={Client.User:F6} client_sys={Client.System:F6}");
        line.Append(inv, $" server_user={Server?.User ?? -1:F6} server_sys={Server?.System ?? -1:F6}");
        CoreTimes[] cores = Cores ?? [];
        line.Append(" core_idle=").AppendJoin(',', cores.Select(c => c.Idle.ToString("F3", inv)));
        line.Append(" core_steal=").AppendJoin(',', cores.Select(c => c.Steal.ToString("F3", inv)));
        return line.ToString();
    }

    /// <summary>The measurement in a client's output, or null when it printed no RESULT line.</summary>
    public static Measurement? Parse(string output)
    {
        Match m = ResultLine().Match(output);
        if (!m.Success)
        {
            return null;
        }

        double D(string group) => double.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);
        double[] List(string group) => m.Groups[group].Value.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        double[] idle = List("idle"), steal = List("steal");
        CoreTimes[]? cores = idle.Length > 0 && idle.Length == steal.Length ? idle.Zip(steal, (i, s) => new CoreTimes(i, s)).ToArray() : null;
        ProcessCpu? server = D("suser") < 0 ? null : new ProcessCpu(D("suser"), D("ssys"));
        return new Measurement(long.Parse(m.Groups["messages"].Value, CultureInfo.InvariantCulture), D("seconds"),
            int.Parse(m.Groups["errors"].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups["mismatches"].Value, CultureInfo.InvariantCulture),
            new ProcessCpu(D("cuser"), D("csys")), server, cores);
    }

    [GeneratedRegex(@"RESULT messages=(?<messages>\d+) seconds=(?<seconds>[\d.]+) errors=(?<errors>\d+) mismatches=(?<mismatches>\d+) client_user=(?<cuser>-?[\d.]+) client_sys=(?<csys>-?[\d.]+) server_user=(?<suser>-?[\d.]+) server_sys=(?<ssys>-?[\d.]+) core_idle=(?<idle>[\d.,]*) core_steal=(?<steal>[\d.,]*)")]
    private static partial Regex ResultLine();
}
