namespace EventLoop;

/// <summary>How <see cref="Loop.StartProcess"/> starts a child: its environment, working directory and standard streams.</summary>
public sealed class LoopProcessOptions
{
    /// <summary>The child's working directory; null (the default) for this process's.</summary>
    public string? WorkingDirectory { get; set; }

    /// <summary>
    /// Environment variables to set in the child, over this process's (<see cref="System.Environment"/>'s, unless
    /// <see cref="InheritEnvironment"/> is false); a null value removes the variable.
    /// </summary>
    public IDictionary<string, string?> Environment { get; } = new Dictionary<string, string?>(StringComparer.Ordinal);

    /// <summary>Whether the child starts with this process's environment (the default) or only <see cref="Environment"/>.</summary>
    public bool InheritEnvironment { get; set; } = true;

    /// <summary>The child's standard input. Default <see cref="ProcessStdio.Inherit"/>.</summary>
    public ProcessStdio StandardInput { get; set; }

    /// <summary>The child's standard output. Default <see cref="ProcessStdio.Inherit"/>.</summary>
    public ProcessStdio StandardOutput { get; set; }

    /// <summary>The child's standard error. Default <see cref="ProcessStdio.Inherit"/>.</summary>
    public ProcessStdio StandardError { get; set; }

    /// <summary>
    /// Bytes a pipe from the child (standard output or error) buffers before the loop stops reading it, so a child that
    /// writes faster than the application reads blocks in its <c>write</c> (backpressure). Default 1 MiB.
    /// </summary>
    public long PipePauseThreshold { get; set; } = 1024 * 1024;

    internal static readonly LoopProcessOptions Default = new();
}
