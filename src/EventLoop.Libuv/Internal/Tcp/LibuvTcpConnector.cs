using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports;

namespace EventLoop.Libuv.Internal;

/// <summary>Outgoing TCP connections on libuv (<c>uv_tcp_connect</c>); host names resolve through <see cref="Dns"/>.</summary>
internal sealed class LibuvTcpConnector : ShutdownNode, LibuvLoop.IWatcherOwner
{
    private readonly LibuvLoop _loop;
    private readonly TaskCompletionSource<int> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IntPtr _handle;
    private bool _cancelled;

    private LibuvTcpConnector(LibuvLoop loop) => _loop = loop;

    internal override bool IsResource => true;

    internal static ValueTask<Connection> ConnectAsync(LibuvLoop loop, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        TcpConnect.ConnectAsync(loop, endpoint, options.HappyEyeballsDelay, (Loop: loop, Options: options),
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
            req = LibuvTcp.NewRequest(_loop, Uv.ReqType.Connect);
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

            LibuvTcp.FreeRequest(_loop, ref req);
            LibuvTcp.CloseUnowned(handle);
            Uv.ThrowError(status, $"Connecting to {endpoint}");
        }

        _handle = handle;
        _loop.NoteWatcherStarted(this, handle, writable: true);
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

    bool LibuvLoop.IWatcherOwner.IsOpen(IntPtr handle) => !_cancelled && !_done.Task.IsCompleted;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnConnected(IntPtr req, int status)
    {
        try
        {
            var self = GCHandle.FromIntPtr(Uv.GetData(req));
            var connector = (LibuvTcpConnector)self.Target!;
            self.Free();
            LibuvTcp.FreeRequest(connector._loop, ref req);
            connector._loop.PendingIo--;
            connector._done.TrySetResult(status);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(null, "TCP connect", ex);
        }
    }
}
