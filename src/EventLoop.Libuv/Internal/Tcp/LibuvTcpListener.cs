using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports;
using EventLoop.Transports.Unix;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// A TCP listener on a libuv stream, and a Unix domain socket listener (a <c>uv_pipe_t</c>, made by
/// <see cref="LibuvUnix"/>): both accept the same way. Connections are accepted as they arrive and queued for
/// <see cref="AcceptAsync"/>, up to <see cref="TcpOptions.Backlog"/> of them; beyond that the listener stops
/// taking connections from the kernel until the application accepts, so the backlog still bounds the queue.
/// </summary>
internal sealed class LibuvTcpListener : ConnectionListener, LibuvLoop.IWatcherOwner
{
    private readonly LibuvLoop _loop;
    private readonly TcpOptions _options;
    private readonly EndPoint _localEndPoint;
    private readonly UnixSocketPath? _unixPath; // null for TCP
    private readonly UnixSocketPath.FileIdentity? _boundFile;
    private readonly AddressFamily _family;
    private readonly ResourceNode _node;
    private readonly Queue<LibuvTcpConnection> _accepted = new();
    private readonly Queue<TaskCompletionSource<Connection>> _waiters = new();
    private IntPtr _handle;
    private bool _disposed;
    private bool _connectionWaiting;
    private bool _acceptErrorReported;

    private unsafe LibuvTcpListener(LibuvLoop loop, IntPtr handle, TcpOptions options, AddressFamily family, UnixSocketPath? unixPath = null, EndPoint? localEndPoint = null)
    {
        _loop = loop;
        _handle = handle;
        _options = options;
        _family = family;
        _unixPath = unixPath;
        _boundFile = unixPath?.IdentifyBoundFile();
        _localEndPoint = unixPath is not null
            ? unixPath.EndPoint
            : localEndPoint ?? LibuvTcp.GetEndPoint(handle, family, peer: false) ?? new IPEndPoint(IPAddress.None, 0);
        LibuvLoop.Header(handle)->Owner = GCHandle.ToIntPtr(GCHandle.Alloc(this));
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
    }

    public override EndPoint LocalEndPoint => _localEndPoint;

    internal static unsafe LibuvTcpListener Listen(LibuvLoop loop, EndPoint endpoint, TcpOptions options)
    {
        IPEndPoint ip = LibuvTcp.RequireIPEndPoint(endpoint, nameof(endpoint));
        IntPtr handle = options.ReusePort ? LibuvTcp.NewReusePortTcpHandle(loop, ip.AddressFamily) : LibuvTcp.NewTcpHandle(loop);
        int status;
        SocketAddress address = ip.Serialize();
        fixed (byte* native = address.Buffer.Span)
        {
            status = Uv.TcpBind(handle, native, 0);
        }

        if (status == 0)
        {
            status = Uv.Listen(handle, options.Backlog, &OnConnection);
        }

        if (status < 0)
        {
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, $"Listening on {ip}");
        }

        var listener = new LibuvTcpListener(loop, handle, options, ip.AddressFamily);
        loop.NoteWatcherStarted(listener, handle, writable: false);
        return listener;
    }

    /// <summary>Wraps a bound pipe handle on which <c>uv_listen</c> succeeded (see <see cref="LibuvUnix"/>).</summary>
    internal static LibuvTcpListener ForUnix(LibuvLoop loop, IntPtr handle, TcpOptions options, UnixSocketPath path)
    {
        var listener = new LibuvTcpListener(loop, handle, options, AddressFamily.Unix, path);
        loop.NoteWatcherStarted(listener, handle, writable: false);
        return listener;
    }

    /// <summary>
    /// Wraps a listening handle over a socket made elsewhere (<see cref="LibuvPipes"/>: <see cref="Loop.ListenInheritedAsync"/>),
    /// on which <c>uv_listen</c> succeeded; a Unix socket's file is left alone (whoever bound it owns it).
    /// </summary>
    internal static LibuvTcpListener ForInherited(LibuvLoop loop, IntPtr handle, TcpOptions options, AddressFamily family, EndPoint? unixEndPoint)
    {
        var listener = new LibuvTcpListener(loop, handle, options, family, localEndPoint: unixEndPoint);
        loop.NoteWatcherStarted(listener, handle, writable: false);
        return listener;
    }

    /// <summary>The <c>uv_listen</c> connection callback, for <see cref="LibuvUnix"/>.</summary>
    internal static unsafe delegate* unmanaged[Cdecl]<IntPtr, int, void> ConnectionCallback => &OnConnection;

    public override ValueTask<Connection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Connection>(cancellationToken);
        }

        if (_accepted.TryDequeue(out LibuvTcpConnection? ready))
        {
            if (TakeWaitingConnection() is { } next)
            {
                _accepted.Enqueue(next);
            }

            return new ValueTask<Connection>(ready);
        }

        if (TakeWaitingConnection() is { } waiting)
        {
            return new ValueTask<Connection>(waiting);
        }

        return WaitForConnectionAsync(cancellationToken);
    }

    private async ValueTask<Connection> WaitForConnectionAsync(CancellationToken cancellationToken)
    {
        // Waits cancelled earlier stay queued until a connection skips them; drop those at the head, so a
        // caller that accepts with a timeout, again and again, does not grow the queue.
        while (_waiters.TryPeek(out TaskCompletionSource<Connection>? stale) && stale.Task.IsCompleted)
        {
            _waiters.Dequeue();
        }

        var waiter = new TaskCompletionSource<Connection>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiters.Enqueue(waiter);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static (state, token) => ((TaskCompletionSource<Connection>)state!).TrySetCanceled(token), waiter);
        return await waiter.Task.ConfigureAwait(true);
    }

    private void OnConnection(int status)
    {
        if (status < 0)
        {
            // libuv keeps listening (on EMFILE it even drops the excess connection to stay responsive): report
            // the first error of an episode, not one per refused connection.
            if (!_acceptErrorReported)
            {
                _acceptErrorReported = true;
                _loop.ReportException(
                    $"Accepting on {_localEndPoint} failed ({Uv.ErrorName(status)}); the listener keeps accepting. " +
                    "Further accept errors are not reported until an accept succeeds.", Uv.CreateException(status, "accept"), this);
            }

            return;
        }

        if (_waiters.Count == 0 && _accepted.Count >= _options.Backlog)
        {
            // Nobody is accepting and a backlog's worth is queued here already: leave this connection with
            // libuv, which stops listening until we take it, so the kernel's backlog applies again.
            _connectionWaiting = true;
            return;
        }

        if (TakeConnection() is not { } connection)
        {
            return;
        }

        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            if (waiter.TrySetResult(connection))
            {
                return;
            }
        }

        _accepted.Enqueue(connection);
    }

    /// <summary>Accepts the connection libuv holds (<c>uv_accept</c>) and starts it; null if the peer is already gone.</summary>
    private LibuvTcpConnection? TakeConnection()
    {
        if (_family == AddressFamily.Unix) // bound here or inherited
        {
            return TakeUnixConnection();
        }

        IntPtr client = LibuvTcp.NewTcpHandle(_loop);
        int status = Uv.Accept(_handle, client);
        if (status < 0)
        {
            LibuvTcp.CloseUnowned(client);
            return null; // the peer is gone already: nothing to hand out
        }

        status = LibuvTcp.ApplyOptions(client, _options, out string option);
        if (status < 0)
        {
            // Never a silent close: say which option the accepted connection refused.
            LibuvTcp.CloseUnowned(client);
            _loop.ReportException(
                $"An accepted connection on {_localEndPoint} refused TcpOptions.{option}; it was closed.",
                Uv.CreateException(status, $"Setting {option} on an accepted connection"), this);
            return null;
        }

        _acceptErrorReported = false;
        var connection = new LibuvTcpConnection(_loop, client, _options, _family);
        connection.Start();
        return connection;
    }

    /// <summary>Accepts a Unix domain socket connection into a new pipe handle (no options to apply).</summary>
    private LibuvTcpConnection? TakeUnixConnection()
    {
        IntPtr client = LibuvUnix.NewPipeHandle(_loop);
        if (Uv.Accept(_handle, client) < 0)
        {
            LibuvTcp.CloseUnowned(client);
            return null;
        }

        _acceptErrorReported = false;
        var connection = new LibuvTcpConnection(_loop, client, _options, _localEndPoint, LibuvUnix.GetPeer(client), "Unix");
        connection.Start();
        return connection;
    }

    /// <summary>Takes the connection libuv was asked to hold, if any (which also makes it listen again).</summary>
    private LibuvTcpConnection? TakeWaitingConnection()
    {
        if (!_connectionWaiting)
        {
            return null;
        }

        _connectionWaiting = false;
        _loop.NoteWatcherStarted(this, _handle, writable: false); // uv_accept makes libuv watch the listener again
        return TakeConnection();
    }

    /// <summary>Stops listening. Safe from any thread: off the loop thread it hops to the loop, where the handle lives.</summary>
    public override unsafe ValueTask DisposeAsync()
    {
        if (!_loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(_loop, this, static l => l.DisposeAsync());
        }

        if (_disposed)
        {
            return default;
        }

        _disposed = true;
        _loop.UnregisterShutdown(_node);
        Uv.Close(_handle, &OnListenerClosed);
        _handle = IntPtr.Zero;
        _unixPath?.RemoveBoundFile(_boundFile); // closed at once in uv_close: the descriptor is gone, only the file is left
        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            waiter.TrySetException(new ObjectDisposedException(ToString()));
        }

        // Connections that arrived but were never accepted are nobody's: close them.
        while (_accepted.TryDequeue(out LibuvTcpConnection? connection))
        {
            connection.Abort(new ConnectionAbortedException("The listener was disposed before the connection was accepted."));
        }

        return default;
    }

    public override string ToString() => _family != AddressFamily.Unix ? $"TCP listener (libuv) on {_localEndPoint}" : $"Unix listener (libuv) on {_unixPath?.ToString() ?? _localEndPoint.ToString()}";

    bool LibuvLoop.IWatcherOwner.IsOpen(IntPtr handle) => !_disposed && _handle == handle;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnConnection(IntPtr server, int status)
    {
        LibuvTcpListener? listener = null;
        try
        {
            listener = LibuvLoop.OwnerOf(server) as LibuvTcpListener;
            listener?.OnConnection(status);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(listener?._loop, "TCP connection", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnListenerClosed(IntPtr handle) => LibuvLoop.FreeHandle(handle);

    private sealed class ResourceNode(LibuvTcpListener owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync();
    }
}
