namespace EventLoop.AspNetCore;

/// <summary>Options of the EventLoop Kestrel transport (<see cref="Microsoft.AspNetCore.Hosting.EventLoopWebHostBuilderExtensions.UseEventLoop"/>).</summary>
public sealed class EventLoopTransportOptions
{
    /// <summary>
    /// Whether Kestrel runs on the Generic Host's loop group when the app registered one (<c>services.AddEventLoop()</c>):
    /// true (the default) for one set of loops, configured by <c>AddEventLoop</c> and started and stopped with the host;
    /// <see cref="Policy"/>, <see cref="LoopCount"/> and <see cref="LoopOptions"/> are then ignored. False for a group of
    /// the transport's own even then. Without <c>AddEventLoop</c> the transport always starts its own.
    /// </summary>
    public bool UseHostedGroup { get; set; } = true;

    /// <summary>The loop policy of the transport's loops (<c>new ManagedLoopPolicy()</c> or <c>new LibuvLoopPolicy()</c>); null for <see cref="EventLoopPolicy.Current"/>.</summary>
    public LoopPolicy? Policy { get; set; }

    /// <summary>How many loops (threads) serve connections; null for one per processor. Each connection lives on one loop.</summary>
    public int? LoopCount { get; set; }

    /// <summary>
    /// Where Kestrel parses requests and runs the application: on the thread pool (the default, as Kestrel's Sockets
    /// transport) or on the connection's loop thread. See <see cref="EventLoopApplicationScheduling"/>.
    /// </summary>
    public EventLoopApplicationScheduling ApplicationScheduling { get; set; } = EventLoopApplicationScheduling.ThreadPool;

    /// <summary>Socket options and the loop-side pipe thresholds of every connection.</summary>
    public TcpOptions Tcp { get; set; } = new();

    /// <summary>
    /// Bytes received and not yet read by Kestrel before the transport stops reading from the connection (backpressure). Default
    /// 1 MiB, as Kestrel's Sockets transport; 0 for no limit.
    /// </summary>
    public long MaxReadBufferSize { get; set; } = 1024 * 1024;

    /// <summary>Bytes Kestrel may write ahead of the socket before its flushes wait. Default 64 KiB, as Kestrel's Sockets transport; 0 for no limit.</summary>
    public long MaxWriteBufferSize { get; set; } = 64 * 1024;

    /// <summary>The loops' options (debug mode, exception handler, log); null for defaults that report to the host's <c>ILogger</c>.</summary>
    public LoopOptions? LoopOptions { get; set; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Tcp, "EventLoopTransportOptions.Tcp");
        if (LoopCount is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(LoopCount), LoopCount, "EventLoopTransportOptions.LoopCount must be at least 1 (or null for one loop per processor).");
        }

        if (MaxReadBufferSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxReadBufferSize), MaxReadBufferSize, "EventLoopTransportOptions.MaxReadBufferSize must not be negative (0 means no limit).");
        }

        if (MaxWriteBufferSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxWriteBufferSize), MaxWriteBufferSize, "EventLoopTransportOptions.MaxWriteBufferSize must not be negative (0 means no limit).");
        }

        if (!Enum.IsDefined(ApplicationScheduling))
        {
            throw new ArgumentOutOfRangeException(nameof(ApplicationScheduling), ApplicationScheduling, "EventLoopTransportOptions.ApplicationScheduling must be ThreadPool or Loop.");
        }
    }
}

/// <summary>Where Kestrel's request processing and the application's code run on the EventLoop transport.</summary>
/// <remarks>
/// Kestrel reads a connection's input and writes its output through pipes whose <c>PipeScheduler</c>s the transport
/// chooses (Kestrel's libuv transport offered the same choice as <c>ApplicationSchedulingMode</c>). Either way the socket
/// is read and written only on the connection's loop thread.
/// </remarks>
public enum EventLoopApplicationScheduling
{
    /// <summary>
    /// Kestrel resumes on the thread pool when bytes arrive, as on its Sockets transport: a handler that blocks or computes
    /// does not hold up the other connections of its loop. The default.
    /// </summary>
    ThreadPool,

    /// <summary>
    /// Kestrel resumes inline on the connection's loop thread when bytes arrive, and the application's awaits come back
    /// to the loop (its <c>SynchronizationContext</c> is the loop's): no thread hop per request. Every handler must then be
    /// non-blocking: a slow one stalls every connection of its loop.
    /// </summary>
    Loop,
}
