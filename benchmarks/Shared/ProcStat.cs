using System.Globalization;

namespace EventLoop.Benchmarking;

/// <summary>CPU time of one process, in seconds: user mode and kernel mode (all its threads).</summary>
internal readonly record struct ProcessCpu(double User, double System)
{
    /// <summary>User plus kernel time.</summary>
    public double Total => User + System;

    /// <summary>The CPU time spent between two readings.</summary>
    public static ProcessCpu operator -(ProcessCpu after, ProcessCpu before) =>
        new(after.User - before.User, after.System - before.System);
}

/// <summary>One core's idle and stolen time so far, in seconds (a cpuN line of /proc/stat).</summary>
/// <param name="Idle">Idle plus I/O-wait time.</param>
/// <param name="Steal">
/// Time the hypervisor gave this core to another machine. On a shared virtual machine it says how much of the
/// wall-clock time a process pinned to the core could have had at all.
/// </param>
internal readonly record struct CoreTimes(double Idle, double Steal);

/// <summary>
/// Readers for Linux's /proc CPU accounting, used by the macro harnesses to put CPU time beside throughput.
/// Every reader returns null where /proc is missing or the process has gone, never throws.
/// </summary>
internal static class ProcStat
{
    /// <summary>
    /// /proc reports times in USER_HZ ticks, which the kernel fixes at 100 per second for user space on every
    /// architecture .NET runs on (sysconf(_SC_CLK_TCK)).
    /// </summary>
    private const double TicksPerSecond = 100;

    /// <summary>utime and stime of process <paramref name="pid"/> (fields 14 and 15 of /proc/&lt;pid&gt;/stat).</summary>
    public static ProcessCpu? Process(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // Field 2, the command name in parentheses, may itself hold spaces and parentheses: count from the last ')'.
        int end = text.LastIndexOf(')');
        string[] fields = text[(end + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so utime (field 14) is fields[11] and stime (field 15) fields[12].
        if (end < 0 || fields.Length < 13
            || !long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out long utime)
            || !long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out long stime))
        {
            return null;
        }

        return new ProcessCpu(utime / TicksPerSecond, stime / TicksPerSecond);
    }

    /// <summary>Every core's idle and stolen time so far, indexed by core number.</summary>
    public static CoreTimes[]? Cores()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        var cores = new List<CoreTimes>();
        foreach (string line in lines)
        {
            // "cpuN user nice system idle iowait irq softirq steal ..." (the first line, "cpu ", is the sum).
            if (!line.StartsWith("cpu", StringComparison.Ordinal) || line.Length < 4 || !char.IsAsciiDigit(line[3]))
            {
                continue;
            }

            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 9)
            {
                return null;
            }

            double Ticks(int i) => long.Parse(f[i], NumberStyles.None, CultureInfo.InvariantCulture) / TicksPerSecond;
            cores.Add(new CoreTimes(Ticks(4) + Ticks(5), Ticks(8)));
        }

        return cores.Count > 0 ? cores.ToArray() : null;
    }

    /// <summary>Each core's idle and stolen time between two readings (null when either is missing).</summary>
    public static CoreTimes[]? Between(CoreTimes[]? before, CoreTimes[]? after) =>
        before is null || after is null || before.Length != after.Length
            ? null
            : before.Zip(after, (b, a) => new CoreTimes(a.Idle - b.Idle, a.Steal - b.Steal)).ToArray();
}
