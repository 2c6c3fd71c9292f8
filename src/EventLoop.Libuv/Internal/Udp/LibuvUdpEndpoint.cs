using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// A UDP endpoint on a libuv <c>uv_udp_t</c>. Receiving starts with the first receive and goes on while datagrams are
/// taken: libuv's alloc callback lends a buffer from the endpoint's pool, its receive callback queues the datagram
/// (or error: an ICMP port-unreachable on a connected handle comes as <c>nread</c> &lt; 0) and completes a waiting
/// receive inline, on the loop thread. When <see cref="MaxQueued"/> datagrams wait untaken, receiving stops
/// (<c>uv_udp_recv_stop</c>) and the kernel's buffer holds the rest, until a receive takes them. Sends try
/// <c>uv_udp_try_send</c> first; only when the socket is full does a send queue a <c>uv_udp_send</c> request.
/// </summary>
internal sealed unsafe class LibuvUdpEndpoint : DatagramEndpoint, LibuvLoop.IWatcherOwner
{
    private const int MaxQueued = 64;
    private const int AddressRoom = 28;

    private readonly LibuvLoop _libuv;
    private readonly Queue<(DatagramBuffer? Buffer, int Length, IPEndPoint? From, Exception? Error)> _queue = new();
    private readonly byte[] _address = new byte[AddressRoom];
    private IntPtr _handle;
    private bool _receiving;
    private DatagramBuffer? _lent; // the buffer libuv holds between its alloc and receive callbacks

    private LibuvUdpEndpoint(LibuvLoop loop, IntPtr handle, DatagramOptions options, AddressFamily family)
        : base(loop, options, family)
    {
        _libuv = loop;
        _handle = handle;
        LibuvLoop.Header(handle)->Owner = GCHandle.ToIntPtr(GCHandle.Alloc(this));
    }

    internal override int Descriptor => _handle == IntPtr.Zero ? -1 : Uv.Fileno(_handle);

    internal static LibuvUdpEndpoint Open(LibuvLoop loop, IPEndPoint local, IPEndPoint? remote, DatagramOptions options)
    {
        IntPtr handle = loop.NewHandle(Uv.HandleType.Udp);
        int status = Uv.UdpInitEx(loop.NativeLoop, handle, local.AddressFamily == AddressFamily.InterNetworkV6 ? Libc.AfInet6 : Libc.AfInet);
        loop.Adopt(handle);
        if (status < 0)
        {
            LibuvLoop.FreeHandle(handle); // never initialised: nothing for libuv to close
            Uv.ThrowError(status, "uv_udp_init_ex");
        }

        var endpoint = new LibuvUdpEndpoint(loop, handle, options, local.AddressFamily);
        try
        {
            endpoint.Setup(local, remote);
            return endpoint;
        }
        catch
        {
            _ = endpoint.DisposeAsync();
            throw;
        }
    }

    private void Setup(IPEndPoint local, IPEndPoint? remote)
    {
        DatagramOptions options = Options;
        SocketAddress address = local.Serialize();
        fixed (byte* native = address.Buffer.Span)
        {
            Check(Uv.UdpBind(_handle, native, options.ReuseAddress ? Uv.UdpReuseAddr : 0), $"Binding a UDP socket to {local}");
        }

        if (options.Broadcast)
        {
            Check(Uv.UdpSetBroadcast(_handle, true), "Setting SO_BROADCAST");
        }

        if (options.ReceiveBufferSize > 0)
        {
            Check(Uv.SetReceiveBufferSize(_handle, options.ReceiveBufferSize), "Setting SO_RCVBUF");
        }

        if (options.SendBufferSize > 0)
        {
            Check(Uv.SetSendBufferSize(_handle, options.SendBufferSize), "Setting SO_SNDBUF");
        }

        if (options.MulticastTimeToLive is { } ttl)
        {
            Check(Uv.UdpSetMulticastTtl(_handle, ttl), "Setting the multicast TTL");
        }

        if (options.MulticastLoopback is { } loopback)
        {
            Check(Uv.UdpSetMulticastLoop(_handle, loopback), "Setting multicast loopback");
        }

        if (options.MulticastInterface is { } multicastInterface)
        {
            byte* text = stackalloc byte[64];
            WriteText(multicastInterface, text);
            Check(Uv.UdpSetMulticastInterface(_handle, text), "Setting the multicast interface");
        }

        if (remote is not null)
        {
            SocketAddress peer = remote.Serialize();
            fixed (byte* native = peer.Buffer.Span)
            {
                Check(Uv.UdpConnect(_handle, native), $"Connecting a UDP socket to {remote}");
            }

            RemoteEndPoint = GetEndPoint(peer: true) ?? remote;
        }

        LocalEndPoint = GetEndPoint(peer: false) ?? local;
    }

    private static void Check(int status, string operation)
    {
        if (status < 0)
        {
            Uv.ThrowError(status, operation);
        }
    }

    private IPEndPoint? GetEndPoint(bool peer)
    {
        byte* buffer = stackalloc byte[128];
        int length = 128;
        int status = peer ? Uv.UdpGetPeerName(_handle, buffer, &length) : Uv.UdpGetSockName(_handle, buffer, &length);
        if (status < 0 || length <= 0)
        {
            return null;
        }

        var address = new SocketAddress(Family, length);
        new ReadOnlySpan<byte>(buffer, length).CopyTo(address.Buffer.Span);
        return (IPEndPoint)new IPEndPoint(Family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0).Create(address);
    }

    // ------------------------------------------------------------------ receiving

    private protected override bool TryReceiveCore(out Datagram datagram, out Exception? error)
    {
        if (_queue.TryDequeue(out var entry))
        {
            datagram = entry.Buffer is null ? default : new Datagram(entry.Buffer, entry.Length, entry.From!);
            error = entry.Error;
            if (!_receiving && _queue.Count <= MaxQueued / 2)
            {
                StartReceiving(); // room again: take what waits in the kernel
            }

            return true;
        }

        datagram = default;
        error = null;
        StartReceiving();
        return false;
    }

    private protected override void OnReceiveWaiting() => StartReceiving();

    private void StartReceiving()
    {
        if (_receiving || IsDisposed)
        {
            return;
        }

        int status = Uv.UdpRecvStart(_handle, &OnAlloc, &OnReceive);
        if (status < 0)
        {
            _queue.Enqueue((null, 0, null, Uv.CreateException(status, "uv_udp_recv_start")));
            return;
        }

        _receiving = true;
        _libuv.NoteWatcherStarted(this, _handle, writable: false);
    }

    private void StopReceiving()
    {
        if (_receiving)
        {
            _receiving = false;
            Uv.UdpRecvStop(_handle);
        }
    }

    private void OnAlloc(Uv.Buf* buf)
    {
        DatagramBuffer buffer = _lent ?? RentBuffer();
        _lent = buffer;
        buf->Base = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer.Array)); // pinned (POH)
        buf->Length = (nuint)buffer.Array.Length;
    }

    private void OnReceive(nint nread, byte* address, uint flags)
    {
        DatagramBuffer? buffer = _lent;
        _lent = null;
        if (nread == 0 && address == null)
        {
            // Nothing (more) to read: libuv returns the buffer.
            if (buffer is not null)
            {
                ReturnBuffer(buffer);
            }

            return;
        }

        if (nread < 0)
        {
            if (buffer is not null)
            {
                ReturnBuffer(buffer);
            }

            _queue.Enqueue((null, 0, null, Uv.CreateException((int)nread, "Receiving a datagram")));
        }
        else if ((flags & Uv.UdpPartial) != 0 || nread > Options.MaxDatagramSize || buffer is null)
        {
            if (buffer is not null)
            {
                ReturnBuffer(buffer);
            }

            _queue.Enqueue((null, 0, null, DatagramTooLong()));
        }
        else
        {
            int length = Family == AddressFamily.InterNetworkV6 && address != null && *(ushort*)address == 10 ? 28 : 16;
            Datagram datagram = MakeDatagram(buffer, (int)nread, address == null ? default : new ReadOnlySpan<byte>(address, length));
            _queue.Enqueue((buffer, (int)nread, datagram.RemoteEndPoint, null));
        }

        if (_queue.Count >= MaxQueued)
        {
            StopReceiving(); // nobody takes them: leave the rest in the kernel's buffer
        }

        OnReceiveReady();
    }

    // ------------------------------------------------------------------ sending

    private protected override ValueTask SendCoreAsync(ReadOnlyMemory<byte> datagram, SocketAddress? address, CancellationToken cancellationToken)
    {
        int status;
        fixed (byte* data = datagram.Span)
        {
            var buf = new Uv.Buf { Base = data, Length = (nuint)datagram.Length };
            if (address is null)
            {
                status = Uv.UdpTrySend(_handle, &buf, 1, null);
            }
            else
            {
                fixed (byte* native = address.Buffer.Span)
                {
                    status = Uv.UdpTrySend(_handle, &buf, 1, native);
                }
            }
        }

        if (status >= 0)
        {
            return default;
        }

        if (status != Uv.EAGAIN)
        {
            return ValueTask.FromException(Uv.CreateException(status, "Sending a datagram"));
        }

        return new ValueTask(SendRequest.Start(this, datagram, address));
    }

    /// <summary>A queued <c>uv_udp_send</c>: the datagram stays pinned until libuv's callback (after a close, with a cancel status).</summary>
    private sealed class SendRequest
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly LibuvUdpEndpoint _owner;
        private MemoryHandle _pin;
        private IntPtr _req;

        private SendRequest(LibuvUdpEndpoint owner) => _owner = owner;

        public static Task Start(LibuvUdpEndpoint owner, ReadOnlyMemory<byte> datagram, SocketAddress? address)
        {
            var request = new SendRequest(owner);
            request._pin = datagram.Pin();
            request._req = LibuvTcp.NewRequest(owner._libuv, Uv.ReqType.UdpSend);
            GCHandle self = GCHandle.Alloc(request);
            *(IntPtr*)request._req = GCHandle.ToIntPtr(self); // uv_req_t's data field
            var buf = new Uv.Buf { Base = (byte*)request._pin.Pointer, Length = (nuint)datagram.Length };
            int status;
            if (address is null)
            {
                status = Uv.UdpSend(request._req, owner._handle, &buf, 1, null, &OnSent);
            }
            else
            {
                fixed (byte* native = address.Buffer.Span)
                {
                    status = Uv.UdpSend(request._req, owner._handle, &buf, 1, native, &OnSent); // libuv copies the address
                }
            }

            if (status < 0)
            {
                self.Free();
                request.Finish(status);
            }

            return request._done.Task;
        }

        private void Finish(int status)
        {
            _pin.Dispose();
            LibuvTcp.FreeRequest(_owner._libuv, ref _req);
            if (status >= 0)
            {
                _done.TrySetResult();
            }
            else if (status == Uv.ECANCELED)
            {
                _done.TrySetException(new ObjectDisposedException(_owner.ToString(), "The datagram endpoint was disposed before the datagram was sent."));
            }
            else
            {
                _done.TrySetException(Uv.CreateException(status, "Sending a datagram"));
            }
        }

        [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
        private static void OnSent(IntPtr req, int status)
        {
            SendRequest? request = null;
            try
            {
                var self = GCHandle.FromIntPtr(*(IntPtr*)req);
                request = (SendRequest)self.Target!;
                self.Free();
                request.Finish(status);
            }
            catch (Exception ex)
            {
                LibuvLoop.ReportFromNative(request?._owner._libuv, "UDP send", ex);
            }
        }
    }

    // ------------------------------------------------------------------ multicast and closing

    private protected override void SetMembershipCore(IPAddress group, IPAddress? localAddress, bool join)
    {
        byte* groupText = stackalloc byte[64];
        byte* interfaceText = stackalloc byte[64];
        WriteText(group, groupText);
        if (localAddress is not null)
        {
            WriteText(localAddress, interfaceText);
        }

        int status = Uv.UdpSetMembership(_handle, groupText, localAddress is null ? null : interfaceText, join);
        if (status < 0)
        {
            Uv.ThrowError(status, $"{(join ? "Joining" : "Leaving")} the multicast group {group}");
        }
    }

    private static void WriteText(IPAddress address, byte* destination)
    {
        string text = address.ToString();
        int length = System.Text.Encoding.ASCII.GetBytes(text, new Span<byte>(destination, 63));
        destination[length] = 0;
    }

    private protected override void CloseCore()
    {
        if (_handle == IntPtr.Zero)
        {
            return;
        }

        _receiving = false;
        Uv.Close(_handle, &LibuvLoop.OnClosed); // frees the handle and the owner's GCHandle; queued sends are cancelled first
        _handle = IntPtr.Zero;
        _lent = null;
        _queue.Clear();
    }

    bool LibuvLoop.IWatcherOwner.IsOpen(IntPtr handle) => _handle == handle && !IsDisposed;

    public override string ToString() => $"UDP (libuv) {LocalEndPoint}{(RemoteEndPoint is null ? "" : $" -> {RemoteEndPoint}")}";

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnAlloc(IntPtr handle, nuint suggestedSize, Uv.Buf* buf)
    {
        LibuvUdpEndpoint? endpoint = null;
        try
        {
            endpoint = LibuvLoop.OwnerOf(handle) as LibuvUdpEndpoint;
            if (endpoint is null)
            {
                buf->Base = null; // libuv reports ENOBUFS, which nobody is left to see
                buf->Length = 0;
                return;
            }

            endpoint.OnAlloc(buf);
        }
        catch (Exception ex)
        {
            buf->Base = null;
            buf->Length = 0;
            LibuvLoop.ReportFromNative(endpoint?._loop, "UDP alloc", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnReceive(IntPtr handle, nint nread, Uv.Buf* buf, byte* address, uint flags)
    {
        LibuvUdpEndpoint? endpoint = null;
        try
        {
            endpoint = LibuvLoop.OwnerOf(handle) as LibuvUdpEndpoint;
            endpoint?.OnReceive(nread, address, flags);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(endpoint?._loop, "UDP receive", ex);
        }
    }
}
