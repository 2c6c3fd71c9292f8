namespace EventLoop;

/// <summary>Options for Unix domain socket listeners and connections on either loop policy.</summary>
public sealed class UnixSocketOptions
{
    /// <summary>The listen backlog, from 1 to <see cref="TcpOptions.MaxBacklog"/>. Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>Bytes the input pipe buffers before the transport stops reading (see <see cref="TcpOptions.InputPauseThreshold"/>). Default 1 MiB.</summary>
    public long InputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Input resume threshold. Default 512 KiB.</summary>
    public long InputResumeThreshold { get; set; } = 512 * 1024;

    /// <summary>Bytes the output pipe buffers before <c>FlushAsync</c> waits (see <see cref="TcpOptions.OutputPauseThreshold"/>). Default 1 MiB.</summary>
    public long OutputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Output resume threshold. Default 512 KiB.</summary>
    public long OutputResumeThreshold { get; set; } = 512 * 1024;

    internal static readonly UnixSocketOptions Default = new();

    /// <summary>
    /// The stream options the shared connection machinery takes, with the TCP-only ones off (validated; the
    /// names in its exceptions are the same as here).
    /// </summary>
    internal TcpOptions ToStreamOptions() => new TcpOptions
    {
        NoDelay = false,
        KeepAlive = false,
        Backlog = Backlog,
        InputPauseThreshold = InputPauseThreshold,
        InputResumeThreshold = InputResumeThreshold,
        OutputPauseThreshold = OutputPauseThreshold,
        OutputResumeThreshold = OutputResumeThreshold,
    }.Validate();
}
