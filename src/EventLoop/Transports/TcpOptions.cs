namespace EventLoop;

/// <summary>Options for TCP listeners and connections on either loop policy.</summary>
public sealed class TcpOptions
{
    /// <summary>Disable Nagle's algorithm (TCP_NODELAY). On by default: an event loop writes whole messages.</summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>Enable TCP keep-alive probes. Off by default.</summary>
    public bool KeepAlive { get; set; }

    /// <summary>
    /// Keep-alive idle time before the first probe, when <see cref="KeepAlive"/> is on: whole seconds from 1 s to
    /// <see cref="MaxKeepAliveDelay"/> (Linux's limit for <c>TCP_KEEPIDLE</c>); a fraction is rounded down. Default 60 s.
    /// </summary>
    public TimeSpan KeepAliveDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The longest <see cref="KeepAliveDelay"/>: 32,767 s, the largest <c>TCP_KEEPIDLE</c> Linux accepts.</summary>
    public static TimeSpan MaxKeepAliveDelay { get; } = TimeSpan.FromSeconds(32_767);

    /// <summary>The listen backlog, from 1 to <see cref="MaxBacklog"/> (the kernel caps it at <c>somaxconn</c>). Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>The largest <see cref="Backlog"/> accepted: 65,535.</summary>
    public const int MaxBacklog = 65_535;

    /// <summary>
    /// For listeners: set <c>SO_REUSEPORT</c> before binding, so several listeners (one per loop of a
    /// <see cref="LoopGroup"/>, or in several processes of the same user) can listen on the same address and port, and
    /// the kernel spreads incoming connections across them (by a hash of each connection's addresses). Every socket
    /// bound to the port must set it. Linux only; off by default; connects ignore it.
    /// </summary>
    /// <remarks>
    /// Any process of the same user can then bind the port too and take a share of its connections. To share a port
    /// picked by the system, bind the first listener to port 0 and the others to the port it got.
    /// </remarks>
    public bool ReusePort { get; set; }

    /// <summary>The keep-alive delay in the whole seconds the socket option takes (validated).</summary>
    internal uint KeepAliveSeconds => (uint)Math.Max(1, (int)KeepAliveDelay.TotalSeconds);

    /// <summary>
    /// Bytes the input pipe buffers before the transport stops reading from the socket (backpressure
    /// towards the peer); reading resumes below <see cref="InputResumeThreshold"/>. Default 1 MiB.
    /// </summary>
    /// <remarks>
    /// As everywhere in System.IO.Pipelines, the threshold counts bytes the application has not yet
    /// <em>examined</em>: <c>AdvanceTo(consumed, examined)</c> with <c>examined</c> past what was consumed tells the
    /// pipe the application is waiting for more to complete a message, and the pipe keeps filling. Pass
    /// <c>AdvanceTo(consumed)</c> (examined = consumed) when reading slowly, and bound the largest message your
    /// protocol accepts yourself, as Kestrel does with its request size limits.
    /// </remarks>
    public long InputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Input resume threshold. Default 512 KiB.</summary>
    public long InputResumeThreshold { get; set; } = 512 * 1024;

    /// <summary>
    /// Bytes the output pipe buffers before the application's <c>FlushAsync</c> waits (backpressure towards
    /// the writer); it resumes below <see cref="OutputResumeThreshold"/>. Default 1 MiB.
    /// </summary>
    public long OutputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Output resume threshold. Default 512 KiB.</summary>
    public long OutputResumeThreshold { get; set; } = 512 * 1024;

    /// <summary>
    /// Happy eyeballs (RFC 8305, asyncio's <c>happy_eyeballs_delay</c>) for a connect to a <see cref="System.Net.DnsEndPoint"/>
    /// whose name resolves to both IPv6 and IPv4 addresses: the addresses are tried with the families interleaved, the next
    /// attempt starting when the previous one fails or after this delay, whichever comes first; the first to connect wins
    /// and the others are cancelled and closed. Null tries one address after the other, each to its end. Default 250 ms
    /// (RFC 8305's recommendation); from 0 to 1 hour. Listeners and <see cref="System.Net.IPEndPoint"/>s ignore it.
    /// </summary>
    public TimeSpan? HappyEyeballsDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    internal static readonly TcpOptions Default = new();

    /// <summary>A copy, for a caller that changes an option without touching the caller's object.</summary>
    internal TcpOptions Clone() => (TcpOptions)MemberwiseClone();

    /// <summary>Checks the values before a listener or connection uses them.</summary>
    internal TcpOptions Validate()
    {
        if (Backlog is <= 0 or > MaxBacklog)
        {
            throw new ArgumentOutOfRangeException(nameof(Backlog), Backlog, $"TcpOptions.Backlog must be between 1 and {MaxBacklog}.");
        }

        // Checked even with KeepAlive off, so a bad value fails where it was set, not when keep-alive is turned on.
        if (KeepAliveDelay < TimeSpan.FromSeconds(1) || KeepAliveDelay > MaxKeepAliveDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(KeepAliveDelay), KeepAliveDelay,
                $"TcpOptions.KeepAliveDelay must be between 1 second and {MaxKeepAliveDelay.TotalSeconds:F0} seconds (Linux's TCP_KEEPIDLE limit).");
        }

        if (HappyEyeballsDelay is { } delay && (delay < TimeSpan.Zero || delay > TimeSpan.FromHours(1)))
        {
            throw new ArgumentOutOfRangeException(nameof(HappyEyeballsDelay), delay, "TcpOptions.HappyEyeballsDelay must be between 0 and 1 hour, or null.");
        }

        if (ReusePort && !OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("TcpOptions.ReusePort (SO_REUSEPORT with the kernel's load balancing) is supported on Linux only.");
        }

        CheckThresholds(InputPauseThreshold, InputResumeThreshold, nameof(InputPauseThreshold), nameof(InputResumeThreshold));
        CheckThresholds(OutputPauseThreshold, OutputResumeThreshold, nameof(OutputPauseThreshold), nameof(OutputResumeThreshold));
        return this;
    }

    private static void CheckThresholds(long pause, long resume, string pauseName, string resumeName)
    {
        if (pause < 0)
        {
            throw new ArgumentOutOfRangeException(pauseName, pause, $"TcpOptions.{pauseName} must not be negative (0 means never pause).");
        }

        if (resume < 0 || (pause > 0 && resume > pause))
        {
            throw new ArgumentOutOfRangeException(resumeName, resume, $"TcpOptions.{resumeName} must be between 0 and {pauseName} ({pause}).");
        }
    }
}
