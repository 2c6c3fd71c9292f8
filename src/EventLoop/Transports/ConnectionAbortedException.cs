namespace EventLoop;

/// <summary>
/// The connection was aborted locally (<see cref="Connection.Abort"/> or loop shutdown): pending reads and
/// writes on its pipes fail with this. A reset by the peer is an <see cref="IOException"/> instead.
/// </summary>
public sealed class ConnectionAbortedException : OperationCanceledException
{
    /// <summary>Creates the exception.</summary>
    public ConnectionAbortedException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
