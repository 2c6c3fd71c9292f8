using System.Net.Sockets;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Managed.Epoll;
using EventLoop.Transports.Pipes;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// Descriptors handed to the libuv loop (<see cref="Loop.OpenPipe"/>, <see cref="Loop.ListenInheritedAsync"/>, and the
/// parent's ends of a child process's pipes, <see cref="OpenChildPipe"/>), opened
/// as libuv's own streams and served by the stream code TCP and Unix sockets share: a pipe, FIFO, terminal or Unix
/// socket is a <c>uv_pipe_t</c> (<c>uv_pipe_open</c>), a TCP socket a <c>uv_tcp_t</c> (<c>uv_tcp_open</c>); a connected
/// one becomes a <see cref="LibuvTcpConnection"/>, a listening one gets <c>uv_listen</c> and a <see cref="LibuvTcpListener"/>.
/// libuv owns the descriptor from the open on, and closes it in <c>uv_close</c>.
/// </summary>
internal static class LibuvPipes
{
    public static Connection Open(LibuvLoop loop, PipeDescriptor pipe, TcpOptions options)
    {
        IntPtr handle = OpenHandle(loop, pipe);
        LibuvTcpConnection connection;
        if (!pipe.IsSocket)
        {
            connection = new LibuvTcpConnection(loop, handle, options, null, null, "Pipe");
            connection.MarkAsPipe(pipe.CanRead);
        }
        else if (pipe.Family == AddressFamily.Unix)
        {
            connection = new LibuvTcpConnection(loop, handle, options, Linux.GetUnixEndPoint(pipe.Fd, peer: false), LibuvUnix.GetPeer(handle), "Unix");
        }
        else
        {
            int status = LibuvTcp.ApplyOptions(handle, options, out string option);
            if (status < 0)
            {
                LibuvTcp.CloseUnowned(handle);
                Uv.ThrowError(status, $"Setting TcpOptions.{option} on a TCP socket's descriptor");
            }

            connection = new LibuvTcpConnection(loop, handle, options, pipe.Family);
        }

        connection.Start();
        return connection;
    }

    /// <summary>
    /// The parent's end of a child process's pipe (a socket pair's end: <see cref="EventLoop.Transports.Processes.SpawnedProcess"/>)
    /// as a <c>uv_pipe_t</c> connection named <paramref name="name"/>. It owns <paramref name="fd"/>: on failure it is closed.
    /// </summary>
    public static Connection OpenChildPipe(LibuvLoop loop, int fd, TcpOptions options, string name)
    {
        IntPtr handle = OpenHandle(loop, fd, tcp: false, static fd => Libc.Close(fd));
        var connection = new LibuvTcpConnection(loop, handle, options, null, null, name);
        connection.Start();
        return connection;
    }

    public static unsafe ConnectionListener Listen(LibuvLoop loop, PipeDescriptor socket, TcpOptions options)
    {
        IntPtr handle = OpenHandle(loop, socket);
        int status = Uv.Listen(handle, options.Backlog, LibuvTcpListener.ConnectionCallback); // listen(2) again: only the backlog changes
        if (status < 0)
        {
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, $"Listening on the inherited {socket.Kind} {socket.Fd}");
        }

        return LibuvTcpListener.ForInherited(loop, handle, options, socket.Family,
            socket.Family == AddressFamily.Unix ? Linux.GetUnixEndPoint(socket.Fd, peer: false) : null);
    }

    /// <summary>A <c>uv_tcp_t</c> or <c>uv_pipe_t</c> that owns the descriptor; on failure the descriptor is closed.</summary>
    private static IntPtr OpenHandle(LibuvLoop loop, PipeDescriptor descriptor) =>
        OpenHandle(loop, descriptor.Fd, descriptor.IsSocket && descriptor.Family != AddressFamily.Unix, _ => descriptor.Close());

    private static IntPtr OpenHandle(LibuvLoop loop, int fd, bool tcp, Action<int> close)
    {
        IntPtr handle;
        try
        {
            handle = tcp ? LibuvTcp.NewTcpHandle(loop) : LibuvUnix.NewPipeHandle(loop);
        }
        catch
        {
            close(fd);
            throw;
        }

        int status = tcp ? Uv.TcpOpen(handle, fd) : Uv.PipeOpen(handle, fd);
        if (status < 0)
        {
            close(fd); // libuv did not take it
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, tcp ? "uv_tcp_open" : "uv_pipe_open");
        }

        return handle;
    }
}
