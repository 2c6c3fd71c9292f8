using System.Net.Sockets;

namespace EventLoop;

/// <summary>
/// The peer reset the connection (a TCP RST, or a broken pipe) while data was being read or written.
/// Pending and later reads of <see cref="Connection.Input"/> and flushes of <see cref="Connection.Output"/>
/// throw it; the socket error is the <see cref="Exception.InnerException"/>.
/// </summary>
public sealed class ConnectionResetException : IOException
{
    /// <summary>Creates the exception with a message and the socket error that caused it.</summary>
    public ConnectionResetException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    /// <summary>The socket error behind the reset, when there is one.</summary>
    public SocketError SocketError => InnerException is SocketException socket ? socket.SocketErrorCode : SocketError.ConnectionReset;
}

/// <summary>
/// The connection was aborted on this side (<see cref="Connection.Abort"/> without a reason, or the loop shut
/// down): pending and later reads and flushes throw it.
/// </summary>
public sealed class ConnectionAbortedException : IOException
{
    /// <summary>Creates the exception with a message.</summary>
    public ConnectionAbortedException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
