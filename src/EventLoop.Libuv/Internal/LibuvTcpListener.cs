using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports;

namespace EventLoop.Libuv.Internal;

/// <summary>Small helpers shared by the libuv TCP types: addresses, requests, options.</summary>
internal static unsafe class LibuvTcp
{
    /// <summary>Room for any socket address (sockaddr_storage is 128 bytes).</summary>
    private const int MaxAddressSize = 128;

    /// <summary>The local or peer address of a TCP handle, or null if it has none (not connected).</summary>
    public static IPEndPoint? GetEndPoint(IntPtr handle, AddressFamily family, bool peer)
    {
        byte* buffer = stackalloc byte[MaxAddressSize];
        int length = MaxAddressSize;
        int status = peer ? Uv.TcpGetPeerName(handle, buffer, &length) : Uv.TcpGetSockName(handle, buffer, &length);
        if (status < 0 || length <= 0)
        {
            return null;
        }

        var address = new SocketAddress(family, length);
        new ReadOnlySpan<byte>(buffer, length).CopyTo(address.Buffer.Span);
        try
        {
            return (IPEndPoint)new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0).Create(address);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    public static IntPtr NewRequest(Uv.ReqType type) => (IntPtr)NativeMemory.AllocZeroed(Uv.ReqSize(type));

    public static void FreeRequest(ref IntPtr req)
    {
        if (req != IntPtr.Zero)
        {
            NativeMemory.Free((void*)req);
            req = IntPtr.Zero;
        }
    }

    /// <summary>A new, initialised TCP handle on <paramref name="loop"/>; close it with <c>uv_close</c>.</summary>
    public static IntPtr NewTcpHandle(LibuvLoop loop)
    {
        IntPtr handle = loop.NewHandle(Uv.HandleType.Tcp);
        int status = Uv.TcpInit(loop.NativeLoop, handle);
        loop.Adopt(handle);
        if (status < 0)
        {
            LibuvLoop.FreeHandle(handle); // never initialised: nothing for libuv to close
            Uv.ThrowError(status, "uv_tcp_init");
        }

        return handle;
    }

    /// <summary>Closes a handle nobody owns yet (failed listen or connect); its memory is freed in the callback.</summary>
    public static void CloseUnowned(IntPtr handle)
    {
        if (!Uv.IsClosing(handle))
        {
            Uv.Close(handle, &LibuvLoop.OnClosed);
        }
    }

    /// <summary>Applies the socket options; returns a libuv status and, on failure, the option that failed.</summary>
    public static int ApplyOptions(IntPtr handle, TcpOptions options, out string option)
    {
        option = nameof(TcpOptions.NoDelay);
        int status = Uv.TcpNoDelay(handle, options.NoDelay);
        if (status == 0 && options.KeepAlive)
        {
            option = nameof(TcpOptions.KeepAliveDelay);
            status = Uv.TcpKeepAlive(handle, true, options.KeepAliveSeconds);
        }

        return status;
    }

    public static IPEndPoint RequireIPEndPoint(EndPoint endpoint, string parameterName) =>
        endpoint as IPEndPoint ?? throw new ArgumentException(
            $"Listening needs an IPEndPoint (an IP address and a port); got {endpoint.GetType().Name} '{endpoint}'.", parameterName);
}

/// <summary>
/// A TCP listener on a libuv stream. Connections are accepted as they arrive and queued for
/// <see cref="AcceptAsync"/>, up to <see cref="TcpOptions.Backlog"/> of them; beyond that the listener stops
/// taking connections from the kernel until the application accepts, so the backlog still bounds the queue.
/// </summary>
internal sealed class LibuvTcpListener : ConnectionListener
{
    private readonly LibuvLoop _loop;
    private readonly TcpOptions _options;
    private readonly IPEndPoint _localEndPoint;
    private readonly AddressFamily _family;
    private readonly ResourceNode _node;
    private readonly Queue<LibuvTcpConnection> _accepted = new();
    private readonly Queue<TaskCompletionSource<Connection>> _waiters = new();
    private IntPtr _handle;
    private bool _disposed;
    private bool _connectionWaiting;
    private bool _acceptErrorReported;

    private unsafe LibuvTcpListener(LibuvLoop loop, IntPtr handle, TcpOptions options, AddressFamily family)
    {
        _loop = loop;
        _handle = handle;
        _options = options;
        _family = family;
        _localEndPoint = LibuvTcp.GetEndPoint(handle, family, peer: false) ?? new IPEndPoint(IPAddress.None, 0);
        LibuvLoop.Header(handle)->Owner = GCHandle.ToIntPtr(GCHandle.Alloc(this));
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
    }

    public override EndPoint LocalEndPoint => _localEndPoint;

    internal static unsafe LibuvTcpListener Listen(LibuvLoop loop, EndPoint endpoint, TcpOptions options)
    {
        IPEndPoint ip = LibuvTcp.RequireIPEndPoint(endpoint, nameof(endpoint));
        IntPtr handle = LibuvTcp.NewTcpHandle(loop);
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

        return new LibuvTcpListener(loop, handle, options, ip.AddressFamily);
    }

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

    /// <summary>Takes the connection libuv was asked to hold, if any (which also makes it listen again).</summary>
    private LibuvTcpConnection? TakeWaitingConnection()
    {
        if (!_connectionWaiting)
        {
            return null;
        }

        _connectionWaiting = false;
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

    public override string ToString() => $"TCP listener (libuv) on {_localEndPoint}";

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

/// <summary>Outgoing TCP connections on libuv (<c>uv_tcp_connect</c>); host names resolve through <see cref="Dns"/>.</summary>
internal sealed class LibuvTcpConnector : ShutdownNode
{
    private readonly LibuvLoop _loop;
    private readonly TaskCompletionSource<int> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IntPtr _handle;
    private bool _cancelled;

    private LibuvTcpConnector(LibuvLoop loop) => _loop = loop;

    internal override bool IsResource => true;

    internal static ValueTask<Connection> ConnectAsync(LibuvLoop loop, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        TcpConnect.ConnectAsync(endpoint, (Loop: loop, Options: options),
            static (state, ip, token) => ConnectOneAsync(state.Loop, ip, state.Options, token), cancellationToken);

    private static async ValueTask<Connection> ConnectOneAsync(LibuvLoop loop, IPEndPoint endpoint, TcpOptions options, CancellationToken cancellationToken)
    {
        var connector = new LibuvTcpConnector(loop);
        IntPtr handle = connector.Start(endpoint, options);
        int status;
        loop.PendingIo++;
        loop.RegisterShutdown(connector);
        using (cancellationToken.UnsafeRegister(
            static state =>
            {
                var c = (LibuvTcpConnector)state!;
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
        if (connector._cancelled)
        {
            if (status == 0)
            {
                LibuvTcp.CloseUnowned(handle);
            }

            cancellationToken.ThrowIfCancellationRequested();
            throw new OperationCanceledException("The connect was cancelled because the loop shut down.");
        }

        if (status < 0)
        {
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, $"Connecting to {endpoint}");
        }

        var connection = new LibuvTcpConnection(loop, handle, options, endpoint.AddressFamily);
        connection.Start();
        return connection;
    }

    /// <summary>Opens the handle and starts <c>uv_tcp_connect</c>; throws (with everything released) if it cannot start.</summary>
    private unsafe IntPtr Start(IPEndPoint endpoint, TcpOptions options)
    {
        IntPtr handle = LibuvTcp.NewTcpHandle(_loop);
        int status = LibuvTcp.ApplyOptions(handle, options, out _);
        IntPtr req = IntPtr.Zero;
        GCHandle self = default;
        if (status == 0)
        {
            req = LibuvTcp.NewRequest(Uv.ReqType.Connect);
            self = GCHandle.Alloc(this);
            Uv.SetData(req, GCHandle.ToIntPtr(self));
            SocketAddress address = endpoint.Serialize();
            fixed (byte* native = address.Buffer.Span)
            {
                status = Uv.TcpConnect(req, handle, native, &OnConnected);
            }
        }

        if (status < 0)
        {
            if (self.IsAllocated)
            {
                self.Free();
            }

            LibuvTcp.FreeRequest(ref req);
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, $"Connecting to {endpoint}");
        }

        _handle = handle;
        return handle;
    }

    /// <summary>Cancels a pending connect: closing the handle makes libuv call back with ECANCELED.</summary>
    private unsafe void Cancel()
    {
        if (_cancelled || _done.Task.IsCompleted)
        {
            return;
        }

        _cancelled = true;
        LibuvTcp.CloseUnowned(_handle);
    }

    internal override void OnShutdown() => Cancel();

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnConnected(IntPtr req, int status)
    {
        try
        {
            var self = GCHandle.FromIntPtr(Uv.GetData(req));
            var connector = (LibuvTcpConnector)self.Target!;
            self.Free();
            NativeMemory.Free((void*)req);
            connector._loop.PendingIo--;
            connector._done.TrySetResult(status);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(null, "TCP connect", ex);
        }
    }
}
