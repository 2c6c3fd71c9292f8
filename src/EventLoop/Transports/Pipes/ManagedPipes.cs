using System.Net.Sockets;
using EventLoop.Managed;
using EventLoop.Managed.Epoll;
using EventLoop.Transports.Sockets;

namespace EventLoop.Transports.Pipes;

/// <summary>
/// Descriptors handed to the managed loop (<see cref="Loop.OpenPipe"/>, <see cref="Loop.ListenInheritedAsync"/>), over
/// the transports it already has. With its own poller: the descriptor joins the epoll set as any socket of
/// <see cref="EpollConnection"/> or <see cref="EpollListener"/> does (a pipe is read with <c>read</c>, not <c>recv</c>).
/// With <c>EVENTLOOP_MANAGED_IO=sockets</c>: a <see cref="Socket"/> over the descriptor, which .NET's socket engine
/// polls and reads with <c>read</c>/<c>write</c> when it is not a socket (as <c>System.IO.Pipes</c> does on Unix).
/// </summary>
internal static class ManagedPipes
{
    public static Connection Open(ManagedLoop loop, EpollPoller? poller, PipeDescriptor pipe, TcpOptions options)
    {
        if (poller is null)
        {
            Socket socket = Adopt(loop, pipe);
            return SocketConnection.Open(loop, socket, options, remoteEndPoint: null, pipeCanRead: pipe.IsSocket ? null : pipe.CanRead);
        }

        int fd = pipe.Fd;
        loop.OpenSocketCount++;
        EpollConnection connection;
        try
        {
            if (!pipe.IsSocket)
            {
                connection = new EpollConnection(loop, poller, fd, options, null, null, "Pipe");
                connection.MarkAsPipe(pipe.CanRead);
            }
            else if (pipe.Family == AddressFamily.Unix)
            {
                connection = new EpollConnection(loop, poller, fd, options, Linux.GetUnixEndPoint(fd, peer: false), Linux.GetUnixEndPoint(fd, peer: true), "Unix");
            }
            else
            {
                int status = Linux.SetNoDelay(fd, options.NoDelay);
                if (status < 0)
                {
                    Linux.Throw(status, "setsockopt(TCP_NODELAY)");
                }

                connection = new EpollConnection(loop, poller, fd, options, pipe.Family);
            }
        }
        catch
        {
            Linux.Close(fd);
            loop.OpenSocketCount--;
            throw;
        }

        connection.Start(); // closes the descriptor if it fails
        return connection;
    }

    public static ConnectionListener Listen(ManagedLoop loop, EpollPoller? poller, PipeDescriptor listening, TcpOptions options)
    {
        Socket socket = Adopt(loop, listening);
        return poller is null
            ? SocketListener.ListenInherited(loop, socket, options)
            : EpollListener.ListenInherited(loop, poller, socket, options);
    }

    /// <summary>A <see cref="Socket"/> that owns the descriptor, counted in <see cref="Loop.OpenSocketCount"/>.</summary>
    private static Socket Adopt(Loop loop, PipeDescriptor descriptor)
    {
        var handle = new SafeSocketHandle(descriptor.Fd, ownsHandle: true);
        Socket socket;
        try
        {
            socket = new Socket(handle);
        }
        catch
        {
            handle.Dispose(); // closes the descriptor
            throw;
        }

        loop.OpenSocketCount++;
        return socket;
    }
}
