using EventLoop.Diagnostics;

namespace EventLoop;

// What the loop counts for its metrics (see LoopMetrics). Written on the loop thread with plain adds; read by the metrics
// callbacks from other threads (a 64-bit read is never torn, and a moment's staleness is fine).
public abstract partial class Loop
{
    private long _bytesRead;
    private long _bytesWritten;
    private int _openConnections;
    private long _slowCallbacks;

    /// <summary>This loop's number in the metrics' <c>eventloop.loop</c> tag.</summary>
    internal int MetricsId { get; } = LoopMetrics.NextLoopId();

    /// <summary>Callbacks run so far (the ready queue's dequeues).</summary>
    internal long CallbacksRun => _ready.Dequeued;

    internal long BytesRead => Volatile.Read(ref _bytesRead);

    internal long BytesWritten => Volatile.Read(ref _bytesWritten);

    internal int OpenConnectionCount => Volatile.Read(ref _openConnections);

    internal long SlowCallbackCount => Volatile.Read(ref _slowCallbacks);

    /// <summary>A transport received <paramref name="count"/> bytes. Loop thread.</summary>
    internal void CountRead(long count) => _bytesRead += count;

    /// <summary>A transport sent <paramref name="count"/> bytes. Loop thread.</summary>
    internal void CountWritten(long count) => _bytesWritten += count;

    /// <summary>A connection opened (+1) or closed (-1) on this loop. Loop thread.</summary>
    internal void CountConnection(int delta) => _openConnections += delta;

    internal void CountSlowCallback() => _slowCallbacks++;
}
