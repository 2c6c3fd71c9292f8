namespace EventLoop;

/// <summary>Options for TCP listeners and connections on either loop policy.</summary>
public sealed class TcpOptions
{
    /// <summary>Disable Nagle's algorithm (TCP_NODELAY). On by default: an event loop writes whole messages.</summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>Enable TCP keep-alive probes. Off by default.</summary>
    public bool KeepAlive { get; set; }

    /// <summary>Keep-alive idle time before the first probe, when <see cref="KeepAlive"/> is on. Default 60 s.</summary>
    public TimeSpan KeepAliveDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The listen backlog. Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>
    /// Bytes the input pipe buffers before the transport stops reading from the socket (backpressure
    /// towards the peer); reading resumes below <see cref="InputResumeThreshold"/>. Default 1 MiB.
    /// </summary>
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

    internal static readonly TcpOptions Default = new();

    /// <summary>Checks the values before a listener or connection uses them.</summary>
    internal TcpOptions Validate()
    {
        if (Backlog <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Backlog), Backlog, "The backlog must be positive.");
        }

        if (KeepAlive && KeepAliveDelay <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(KeepAliveDelay), KeepAliveDelay, "The keep-alive delay must be positive.");
        }

        CheckThresholds(InputPauseThreshold, InputResumeThreshold, nameof(InputPauseThreshold), nameof(InputResumeThreshold));
        CheckThresholds(OutputPauseThreshold, OutputResumeThreshold, nameof(OutputPauseThreshold), nameof(OutputResumeThreshold));
        return this;
    }

    private static void CheckThresholds(long pause, long resume, string pauseName, string resumeName)
    {
        if (pause < 0)
        {
            throw new ArgumentOutOfRangeException(pauseName, pause, "The pause threshold must not be negative (0 means never pause).");
        }

        if (resume < 0 || (pause > 0 && resume > pause))
        {
            throw new ArgumentOutOfRangeException(resumeName, resume, $"The resume threshold must be between 0 and {pauseName} ({pause}).");
        }
    }
}
