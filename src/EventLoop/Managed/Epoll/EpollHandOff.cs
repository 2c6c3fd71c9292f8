using System.Net.Sockets;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// Connections a <see cref="LoopGroup"/> accepted on another thread (with a .NET <see cref="Socket"/>) and handed to
/// this loop: the socket's descriptor is duplicated (non-blocking), the <see cref="Socket"/> let go (closing only its own
/// descriptor; the connection stays open on the duplicate), and the duplicate registered with this loop's poller as an
/// <see cref="EpollConnection"/>, as libuv's <c>uv_tcp_open</c> does on the libuv loop.
/// </summary>
internal static class EpollHandOff
{
    /// <summary>Loop thread. The socket is disposed whatever happens; on failure nothing of it is left open.</summary>
    public static Connection Adopt(ManagedLoop loop, EpollPoller poller, Socket socket, TcpOptions options)
    {
        AddressFamily family = socket.AddressFamily;
        int fd;
        try
        {
            // No operation was ever started on the socket, so .NET never registered it with its own epoll (a
            // registration would outlive the close below on the duplicate's open file) and disposing it only closes
            // its descriptor: no shutdown, no reset.
            fd = Linux.DuplicateNonBlocking((int)socket.SafeHandle.DangerousGetHandle());
        }
        finally
        {
            socket.Dispose();
        }

        if (fd < 0)
        {
            Linux.Throw(fd, "Duplicating an accepted socket's descriptor");
        }

        loop.OpenSocketCount++;
        int status = Linux.SetNoDelay(fd, options.NoDelay);
        if (status == 0 && options.KeepAlive)
        {
            status = Linux.SetKeepAlive(fd, options.KeepAliveSeconds);
        }

        if (status < 0)
        {
            Linux.Close(fd);
            loop.OpenSocketCount--;
            Linux.Throw(status, "Setting the TcpOptions of an accepted connection");
        }

        var connection = new EpollConnection(loop, poller, fd, options, family);
        connection.Start(); // on failure it closes the descriptor and throws
        return connection;
    }
}
