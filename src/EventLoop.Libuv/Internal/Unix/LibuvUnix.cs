using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Managed.Epoll;
using EventLoop.Transports.Unix;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// Unix domain sockets on libuv: <c>uv_pipe_t</c> handles over the TCP listener's accept machinery and the shared
/// stream connection (<see cref="LibuvTcpListener"/>, <see cref="LibuvTcpConnection"/>). A connect to a file path is
/// <c>uv_pipe_connect</c>. The listening socket is made and bound here and handed to libuv with <c>uv_pipe_open</c>,
/// not bound with <c>uv_pipe_bind</c>: a pipe bound by libuv unlinks its path when closed, even if another server
/// has taken the path over since (the listener removes its file only while it is still its own), and libuv before
/// 1.46 cannot name the abstract namespace (it takes a C string), nor tell a missing directory (ENOENT, reported as
/// EACCES) from a refused one. A connect to an abstract name is made here too (an <c>AF_UNIX</c> connect ends at once).
/// </summary>
internal static class LibuvUnix
{
    /// <summary>A new, initialised pipe handle (not for IPC); close it with <c>uv_close</c>.</summary>
    public static IntPtr NewPipeHandle(LibuvLoop loop)
    {
        IntPtr handle = loop.NewHandle(Uv.HandleType.NamedPipe);
        int status = Uv.PipeInit(loop.NativeLoop, handle);
        loop.Adopt(handle);
        if (status < 0)
        {
            LibuvLoop.FreeHandle(handle); // never initialised: nothing for libuv to close
            Uv.ThrowError(status, "uv_pipe_init");
        }

        return handle;
    }

    /// <summary>The peer's address of a connected pipe handle, or null (an unnamed client).</summary>
    public static EndPoint? GetPeer(IntPtr handle)
    {
        int fd = Uv.Fileno(handle);
        return fd < 0 ? null : Linux.GetUnixEndPoint(fd, peer: true);
    }

    /// <summary>The path as the C string <c>uv_pipe_bind</c>/<c>uv_pipe_connect</c> take (a file path, never abstract).</summary>
    private static byte[] CString(UnixSocketPath path)
    {
        byte[] name = new byte[path.Bytes.Length + 1];
        path.Bytes.CopyTo(name, 0);
        return name;
    }

    public static unsafe LibuvTcpListener Listen(LibuvLoop loop, UnixSocketPath path, TcpOptions options)
    {
        IntPtr handle = NewPipeHandle(loop);
        path.RemoveStaleSocketFile();
        int status = OpenOwnSocket(handle, path, connect: false);
        if (status == 0)
        {
            status = Uv.Listen(handle, options.Backlog, LibuvTcpListener.ConnectionCallback);
        }

        if (status < 0)
        {
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, $"Listening on the Unix socket {path}");
        }

        return LibuvTcpListener.ForUnix(loop, handle, options, path);
    }

    public static async ValueTask<Connection> ConnectAsync(LibuvLoop loop, UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken)
    {
        IntPtr handle = NewPipeHandle(loop);
        int status;
        if (path.IsAbstract)
        {
            status = OpenOwnSocket(handle, path, connect: true);
        }
        else
        {
            status = await PipeConnector.ConnectAsync(loop, handle, CString(path), cancellationToken).ConfigureAwait(true);
        }

        if (status < 0)
        {
            LibuvTcp.CloseUnowned(handle);
            if (status == Uv.ECANCELED)
            {
                cancellationToken.ThrowIfCancellationRequested();
                throw new OperationCanceledException("The connect was cancelled because the loop shut down.");
            }

            Uv.ThrowError(status, $"Connecting to the Unix socket {path}");
        }

        var connection = new LibuvTcpConnection(loop, handle, options, null, path.EndPoint, "Unix");
        connection.Start();
        return connection;
    }

    /// <summary>Makes a socket, binds or connects it, and hands it to the pipe handle. Returns a libuv status.</summary>
    private static int OpenOwnSocket(IntPtr handle, UnixSocketPath path, bool connect)
    {
        int fd = Linux.UnixSocket();
        if (fd < 0)
        {
            return fd;
        }

        SocketAddress address = path.EndPoint.Serialize();
        int status = connect ? Linux.Connect(fd, address) : Linux.Bind(fd, address);
        if (status == 0)
        {
            status = Uv.PipeOpen(handle, fd);
        }

        if (status < 0)
        {
            Linux.Close(fd);
        }

        return status; // Linux's negated errno is libuv's status on Unix
    }

    /// <summary>A <c>uv_pipe_connect</c> in flight: cancelled by its token or the loop's shutdown, by closing the handle.</summary>
    private sealed class PipeConnector : ShutdownNode, LibuvLoop.IWatcherOwner
    {
        private readonly LibuvLoop _loop;
        private readonly IntPtr _handle;
        private readonly TaskCompletionSource<int> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _cancelled;

        private PipeConnector(LibuvLoop loop, IntPtr handle)
        {
            _loop = loop;
            _handle = handle;
        }

        internal override bool IsResource => true;

        /// <summary>Connects <paramref name="handle"/>; returns the libuv status (<c>UV_ECANCELED</c> when cancelled; the handle is closing then).</summary>
        public static async ValueTask<int> ConnectAsync(LibuvLoop loop, IntPtr handle, byte[] name, CancellationToken cancellationToken)
        {
            var connector = new PipeConnector(loop, handle);
            connector.Start(name);
            loop.PendingIo++;
            loop.NoteWatcherStarted(connector, handle, writable: true);
            loop.RegisterShutdown(connector);
            int status;
            using (cancellationToken.UnsafeRegister(
                static state =>
                {
                    var c = (PipeConnector)state!;
                    try
                    {
                        c._loop.CallSoonThreadSafe(static c => c.Cancel(), c);
                    }
                    catch (InvalidOperationException)
                    {
                        // The loop closed; its shutdown cancelled the connect.
                    }
                },
                connector))
            {
                status = await connector._done.Task.ConfigureAwait(true);
            }

            loop.UnregisterShutdown(connector);
            return connector._cancelled ? Uv.ECANCELED : status;
        }

        private unsafe void Start(byte[] name)
        {
            IntPtr req = LibuvTcp.NewRequest(_loop, Uv.ReqType.Connect);
            Uv.SetData(req, GCHandle.ToIntPtr(GCHandle.Alloc(this)));
            fixed (byte* native = name)
            {
                Uv.PipeConnect(req, _handle, native, &OnConnected); // libuv copies the name; the result always comes to the callback
            }
        }

        private void Cancel()
        {
            if (_cancelled || _done.Task.IsCompleted)
            {
                return;
            }

            _cancelled = true;
            LibuvTcp.CloseUnowned(_handle); // libuv calls back with UV_ECANCELED
        }

        internal override void OnShutdown() => Cancel();

        bool LibuvLoop.IWatcherOwner.IsOpen(IntPtr handle) => !_cancelled && !_done.Task.IsCompleted;

        [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
        private static void OnConnected(IntPtr req, int status)
        {
            try
            {
                var self = GCHandle.FromIntPtr(Uv.GetData(req));
                var connector = (PipeConnector)self.Target!;
                self.Free();
                LibuvTcp.FreeRequest(connector._loop, ref req);
                connector._loop.PendingIo--;
                connector._done.TrySetResult(status);
            }
            catch (Exception ex)
            {
                LibuvLoop.ReportFromNative(null, "Unix connect", ex);
            }
        }
    }
}
