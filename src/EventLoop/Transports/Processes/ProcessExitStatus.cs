namespace EventLoop;

/// <summary>How a child process ended: its exit code, or the signal that killed it.</summary>
public readonly struct ProcessExitStatus : IEquatable<ProcessExitStatus>
{
    private readonly int _exitCode;
    private readonly int _signal;

    /// <summary>A status: the exit code the child passed to <c>exit</c>, or the signal that ended it (then <paramref name="exitCode"/> is ignored).</summary>
    /// <param name="exitCode">The exit code, 0 to 255.</param>
    /// <param name="terminatingSignal">The signal number that killed the child, or 0 when it exited.</param>
    public ProcessExitStatus(int exitCode, int terminatingSignal)
    {
        _signal = terminatingSignal;
        _exitCode = terminatingSignal != 0 ? 128 + terminatingSignal : exitCode;
    }

    /// <summary>
    /// The exit code; for a child killed by a signal, 128 plus the signal number, as shells and .NET's
    /// <see cref="System.Diagnostics.Process.ExitCode"/> report it (137 for SIGKILL). See <see cref="TerminatingSignal"/>
    /// to tell the two apart.
    /// </summary>
    public int ExitCode => _exitCode;

    /// <summary>The signal that killed the child (9 for SIGKILL, 15 for SIGTERM), or null when it exited by itself.</summary>
    public int? TerminatingSignal => _signal != 0 ? _signal : null;

    /// <summary>True when the child exited with code 0.</summary>
    public bool Succeeded => _signal == 0 && _exitCode == 0;

    /// <summary>asyncio's <c>returncode</c>: the exit code, or minus the signal number for a child killed by a signal.</summary>
    public int ReturnCode => _signal != 0 ? -_signal : _exitCode;

    /// <inheritdoc/>
    public bool Equals(ProcessExitStatus other) => _exitCode == other._exitCode && _signal == other._signal;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ProcessExitStatus other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_exitCode, _signal);

    /// <summary>"exit code 3" or "killed by signal 9".</summary>
    public override string ToString() => _signal != 0 ? $"killed by signal {_signal}" : $"exit code {_exitCode}";

    /// <summary>Equal statuses.</summary>
    public static bool operator ==(ProcessExitStatus left, ProcessExitStatus right) => left.Equals(right);

    /// <summary>Different statuses.</summary>
    public static bool operator !=(ProcessExitStatus left, ProcessExitStatus right) => !left.Equals(right);
}
