using EventLoop.Benchmarking;

namespace EventLoop.EchoBenchmark;

/// <summary>One round of one case: what the client measured, or why nothing was.</summary>
/// <param name="Server">The server's name.</param>
/// <param name="Size">The message size in bytes.</param>
/// <param name="Measured">The client's measurement; null when the client failed or timed out.</param>
/// <param name="Note">What went wrong, if anything.</param>
internal sealed record CaseResult(string Server, int Size, Measurement? Measured, string? Note)
{
    /// <summary>Round trips per second in the measured window (0 when nothing was measured).</summary>
    public double MessagesPerSecond => Measured is { Seconds: > 0 } m ? m.Messages / m.Seconds : 0;

    /// <summary>The server's CPU time per round trip, in microseconds.</summary>
    public double? ServerMicrosPerMessage => Measured is { Server: { } s, Messages: > 0 } m ? s.Total * 1e6 / m.Messages : null;

    /// <summary>The client's CPU time per round trip, in microseconds.</summary>
    public double? ClientMicrosPerMessage => Measured is { Messages: > 0 } m ? m.Client.Total * 1e6 / m.Messages : null;

    /// <summary>The share of the server's CPU time spent in the kernel (stime).</summary>
    public double? ServerKernelShare => Measured?.Server is { Total: > 0 } s ? s.System / s.Total : null;

    /// <summary>How the server's core spent the window (see <see cref="CoreSplit"/>).</summary>
    public CoreSplit? ServerCore(int? core) => Measured is { Server: { } s } m ? CoreSplit.Of(m.Seconds, s, CoreSplit.Pick(m.Cores, core)) : null;

    /// <summary>How the client's core spent the window (see <see cref="CoreSplit"/>).</summary>
    public CoreSplit? ClientCore(int? core) => Measured is { } m ? CoreSplit.Of(m.Seconds, m.Client, CoreSplit.Pick(m.Cores, core)) : null;
}

/// <summary>All rounds of one case, summarised: each figure is the median of its rounds.</summary>
/// <param name="Server">The server's name.</param>
/// <param name="Size">The message size in bytes.</param>
/// <param name="Rounds">Every round's result, in the order measured.</param>
/// <param name="ServerCore">The core the server was pinned to, if pinned.</param>
/// <param name="ClientCore">The core the client was pinned to, if pinned.</param>
internal sealed record CaseSummary(string Server, int Size, IReadOnlyList<CaseResult> Rounds, int? ServerCore, int? ClientCore)
{
    /// <summary>Median round trips per second.</summary>
    public double MessagesPerSecond => Median(Rounds.Select(r => r.MessagesPerSecond)) ?? 0;

    /// <summary>Median MiB/s each way.</summary>
    public double MiBPerSecond => MessagesPerSecond * Size / (1024.0 * 1024.0);

    /// <summary>The slowest and the fastest round.</summary>
    public (double Min, double Max) MessagesPerSecondRange => (Rounds.Min(r => r.MessagesPerSecond), Rounds.Max(r => r.MessagesPerSecond));

    /// <summary>Median server CPU microseconds per round trip.</summary>
    public double? ServerMicrosPerMessage => Median(Rounds.Select(r => r.ServerMicrosPerMessage));

    /// <summary>The lowest and highest server CPU microseconds per round trip, when every round had one.</summary>
    public (double Min, double Max)? ServerMicrosRange =>
        Rounds.All(r => r.ServerMicrosPerMessage is not null)
            ? (Rounds.Min(r => r.ServerMicrosPerMessage!.Value), Rounds.Max(r => r.ServerMicrosPerMessage!.Value))
            : null;

    /// <summary>Median client CPU microseconds per round trip.</summary>
    public double? ClientMicrosPerMessage => Median(Rounds.Select(r => r.ClientMicrosPerMessage));

    /// <summary>Median share of the server's CPU time spent in the kernel.</summary>
    public double? ServerKernelShare => Median(Rounds.Select(r => r.ServerKernelShare));

    /// <summary>How the server's core spent the window: the median of each share.</summary>
    public CoreSplit? ServerCoreSplit => CoreSplit.Median(Rounds.Select(r => r.ServerCore(ServerCore)));

    /// <summary>How the client's core spent the window: the median of each share.</summary>
    public CoreSplit? ClientCoreSplit => CoreSplit.Median(Rounds.Select(r => r.ClientCore(ClientCore)));

    /// <summary>Connection errors, all rounds.</summary>
    public int Errors => Rounds.Sum(r => r.Measured?.Errors ?? 0);

    /// <summary>Reply bytes that differed from what was sent, all rounds.</summary>
    public long MismatchedBytes => Rounds.Sum(r => r.Measured?.MismatchedBytes ?? 0);

    /// <summary>What went wrong in any round, or null.</summary>
    public string? Note => string.Join("; ", Rounds.Select(r => r.Note).OfType<string>().Distinct()) is { Length: > 0 } note ? note : null;

    /// <summary>Whether this case and <paramref name="baseline"/> differ beyond the round-to-round spread.</summary>
    public bool DiffersBeyondSpread(CaseSummary baseline) =>
        Stats.DifferBeyondSpread(Rounds.Select(r => r.MessagesPerSecond).ToArray(), baseline.Rounds.Select(r => r.MessagesPerSecond).ToArray());

    private static double? Median(IEnumerable<double?> values) => Stats.Median(values);

    private static double? Median(IEnumerable<double> values) => Stats.Median(values.Select(v => (double?)v));
}
