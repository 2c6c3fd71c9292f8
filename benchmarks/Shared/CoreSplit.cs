namespace EventLoop.Benchmarking;

/// <summary>
/// How one pinned process's core spent a measured window, as shares of the wall-clock time: the process
/// itself, everything else (time stolen by the hypervisor, other processes, interrupts), and idle. A core with
/// no idle time left was the limit: the process on it could not have gone faster, or others held it back.
/// </summary>
/// <param name="Own">The process's CPU time over the window.</param>
/// <param name="Others">What neither the process nor idleness took; null when the core is not known (not pinned).</param>
/// <param name="Idle">The core's idle time over the window; null when not known.</param>
internal readonly record struct CoreSplit(double Own, double? Others, double? Idle)
{
    /// <summary>
    /// The split of a window of <paramref name="seconds"/> for a process that used <paramref name="cpu"/> on a
    /// core that was idle for <paramref name="core"/>'s idle time (null: not pinned, only the process's share known).
    /// </summary>
    public static CoreSplit? Of(double seconds, ProcessCpu cpu, CoreTimes? core)
    {
        if (seconds <= 0)
        {
            return null;
        }

        double own = cpu.Total / seconds;
        if (core is not { } c)
        {
            return new CoreSplit(own, null, null);
        }

        double idle = Math.Min(1, c.Idle / seconds);
        return new CoreSplit(own, Math.Max(0, 1 - own - idle), idle);
    }

    /// <summary>The core <paramref name="index"/> of <paramref name="cores"/>, when both are known.</summary>
    public static CoreTimes? Pick(CoreTimes[]? cores, int? index) =>
        index is { } i && cores is not null && i < cores.Length ? cores[i] : null;

    /// <summary>Each share's median over several windows, or null when none is known.</summary>
    public static CoreSplit? Median(IEnumerable<CoreSplit?> splits)
    {
        CoreSplit[] known = splits.OfType<CoreSplit>().ToArray();
        return known.Length == 0
            ? null
            : new CoreSplit(Stats.Median(known.Select(k => (double?)k.Own)) ?? 0, Stats.Median(known.Select(k => k.Others)), Stats.Median(known.Select(k => k.Idle)));
    }

    /// <summary>"process / others / idle" as percentages, or the process's share alone when the core is not known.</summary>
    public string Format() => Idle is null ? Stats.Percent(Own) : $"{Stats.Percent(Own)} / {Stats.Percent(Others)} / {Stats.Percent(Idle)}";
}

/// <summary>Small statistics the reports share.</summary>
internal static class Stats
{
    /// <summary>The median of the values that are there (the mean of the middle two for an even count), or null.</summary>
    public static double? Median(IEnumerable<double?> values)
    {
        double[] sorted = values.OfType<double>().Order().ToArray();
        return sorted.Length == 0 ? null : (sorted[(sorted.Length - 1) / 2] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>A share as a whole percentage ("83%"), or "n/a".</summary>
    public static string Percent(double? value) =>
        value is { } v ? v.ToString("P0", System.Globalization.CultureInfo.InvariantCulture).Replace(" ", "", StringComparison.Ordinal) : "n/a";

    /// <summary>
    /// Whether two sets of rounds differ beyond their spread: every round of one above every round of the other.
    /// Needs two rounds or more of each; with fewer there is no spread to judge by.
    /// </summary>
    public static bool DifferBeyondSpread(IReadOnlyCollection<double> a, IReadOnlyCollection<double> b) =>
        a.Count > 1 && b.Count > 1 && (a.Min() > b.Max() || a.Max() < b.Min());
}
