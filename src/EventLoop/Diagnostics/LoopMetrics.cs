using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EventLoop.Diagnostics;

/// <summary>
/// The library's <see cref="Meter"/>, named <c>EventLoop</c> (<c>dotnet-counters monitor --counters EventLoop</c>). Every
/// instrument is measured per running loop, tagged with <c>eventloop.loop</c> (a number) and <c>eventloop.policy</c>.
/// </summary>
/// <remarks>
/// Zero cost when nobody listens: the observable instruments read counters the loop keeps anyway (the ready queue's
/// dequeue count and depth) or keeps with a plain add on its own thread (bytes, connections), only when a listener asks.
/// The two that need measuring cost something only while a listener has enabled them: <c>eventloop.timer.lag</c> (one
/// clock difference per timer fired) and <c>eventloop.callbacks.slow</c> (two clock reads per callback, the loop's debug-mode
/// timing, without naming the callbacks).
/// </remarks>
public static class LoopMetrics
{
    /// <summary>The meter's name: <c>EventLoop</c>.</summary>
    public const string MeterName = "EventLoop";

    private static readonly List<Loop> s_loops = [];
    private static int s_lastId;

    /// <summary>The meter.</summary>
    public static Meter Meter { get; } = new(MeterName);

    /// <summary>How late timers fire, in milliseconds after their due time (the loop's lag behind its clock).</summary>
    internal static readonly Histogram<double> TimerLag = Meter.CreateHistogram<double>(
        "eventloop.timer.lag", unit: "ms", description: "How late timers fire after their due time: the loop's lag.");

    /// <summary>Callbacks that ran longer than the loop's slow-callback threshold (measured only while enabled).</summary>
    internal static readonly ObservableCounter<long> SlowCallbacks = Meter.CreateObservableCounter(
        "eventloop.callbacks.slow", () => Observe(static loop => loop.SlowCallbackCount), unit: "{callback}",
        description: "Callbacks that ran longer than LoopOptions.SlowCallbackThreshold (timed only while this instrument is listened to, or in debug mode).");

    static LoopMetrics()
    {
        Meter.CreateObservableCounter("eventloop.callbacks", () => Observe(static loop => loop.CallbacksRun), unit: "{callback}",
            description: "Callbacks the loop has run (continuations, CallSoon, timers, posts).");
        Meter.CreateObservableGauge("eventloop.ready_queue.depth", () => Observe(static loop => (long)loop.ReadyCount), unit: "{callback}",
            description: "Callbacks waiting in the loop's ready queue.");
        Meter.CreateObservableUpDownCounter("eventloop.connections.open", () => Observe(static loop => (long)loop.OpenConnectionCount), unit: "{connection}",
            description: "TCP connections open on the loop.");
        Meter.CreateObservableCounter("eventloop.bytes.read", () => Observe(static loop => loop.BytesRead), unit: "By",
            description: "Bytes received by the loop's connections.");
        Meter.CreateObservableCounter("eventloop.bytes.written", () => Observe(static loop => loop.BytesWritten), unit: "By",
            description: "Bytes sent by the loop's connections.");
    }

    /// <summary>Whether the loop should time its callbacks for <c>eventloop.callbacks.slow</c>.</summary>
    internal static bool TimesCallbacks => SlowCallbacks.Enabled;

    internal static int NextLoopId() => Interlocked.Increment(ref s_lastId);

    internal static void Register(Loop loop)
    {
        lock (s_loops)
        {
            s_loops.Add(loop);
        }
    }

    internal static void Unregister(Loop loop)
    {
        lock (s_loops)
        {
            s_loops.Remove(loop);
        }
    }

    /// <summary>One measurement per running loop. The values are read off the loop thread: a moment's staleness is fine.</summary>
    private static IEnumerable<Measurement<long>> Observe(Func<Loop, long> read)
    {
        Loop[] loops;
        lock (s_loops)
        {
            loops = [.. s_loops];
        }

        var measurements = new Measurement<long>[loops.Length];
        for (int i = 0; i < loops.Length; i++)
        {
            measurements[i] = new Measurement<long>(read(loops[i]), Tags(loops[i]));
        }

        return measurements;
    }

    private static TagList Tags(Loop loop) => new()
    {
        { "eventloop.loop", loop.MetricsId },
        { "eventloop.policy", loop.PolicyName },
    };

    /// <summary>Records a fired timer's lateness, if a listener wants it. Loop thread.</summary>
    internal static void RecordTimerLag(Loop loop, long lateTimestampTicks)
    {
        TimerLag.Record(lateTimestampTicks * 1000.0 / loop.TimestampFrequency, Tags(loop));
    }
}
