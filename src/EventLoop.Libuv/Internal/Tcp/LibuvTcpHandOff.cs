using System.Net.Sockets;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// Connections a <see cref="LoopGroup"/> accepted on another thread (with a .NET <see cref="Socket"/>) and handed to
/// this loop: the socket's descriptor is duplicated, the <see cref="Socket"/> let go (closing only its own descriptor,
/// the connection stays open on the duplicate), and the duplicate opened as this loop's own stream (<c>uv_tcp_open</c>).
/// </summary>
internal static class LibuvTcpHandOff
{
    /// <summary>Loop thread. The socket is disposed whatever happens; on failure nothing of it is left open.</summary>
    public static Connection Adopt(LibuvLoop loop, Socket socket, TcpOptions options)
    {
        AddressFamily family = socket.AddressFamily;
        int fd;
        try
        {
            fd = Libc.Duplicate((int)socket.Handle);
        }
        finally
        {
            socket.Dispose(); // no operation was ever started on it: this only closes its descriptor
        }

        if (fd < 0)
        {
            Uv.ThrowError(fd, "Duplicating an accepted socket's descriptor");
        }

        IntPtr handle;
        try
        {
            handle = LibuvTcp.NewTcpHandle(loop);
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }

        int status = Uv.TcpOpen(handle, fd);
        if (status < 0)
        {
            Libc.Close(fd); // libuv did not take it
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, "uv_tcp_open");
        }

        status = LibuvTcp.ApplyOptions(handle, options, out string option);
        if (status < 0)
        {
            LibuvTcp.CloseUnowned(handle); // closes the descriptor too: libuv owns it now
            Uv.ThrowError(status, $"Setting TcpOptions.{option} on an accepted connection");
        }

        var connection = new LibuvTcpConnection(loop, handle, options, family);
        connection.Start();
        return connection;
    }
}
