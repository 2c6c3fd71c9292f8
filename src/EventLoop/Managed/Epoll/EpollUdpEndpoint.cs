using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

using EventLoop.Transports.Udp;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// A UDP endpoint of the managed loop's own poller: a non-blocking datagram socket registered edge-triggered with the
/// loop's epoll. A receive calls <c>recvfrom</c> straight into a pooled buffer; when the socket is empty (EAGAIN) it
/// waits for the next readable edge (every arriving datagram, or an ICMP error, brings one). A send calls
/// <c>sendto</c> at once; only when the socket's send buffer is full does it wait for the writable edge.
/// </summary>
internal sealed class EpollUdpEndpoint : DatagramEndpoint, IEpollHandler
{
    private const int AddressRoom = 28; // sockaddr_in6

    private readonly EpollPoller _poller;
    private int _fd;
    private long _token;
    private TaskCompletionSource? _writable; // a send waits for room (rare: UDP sends seldom find the buffer full)

    private EpollUdpEndpoint(ManagedLoop loop, EpollPoller poller, int fd, DatagramOptions options, AddressFamily family)
        : base(loop, options, family)
    {
        _poller = poller;
        _fd = fd;
    }

    internal override int Descriptor => _fd;

    internal static EpollUdpEndpoint Open(ManagedLoop loop, EpollPoller poller, IPEndPoint local, IPEndPoint? remote, DatagramOptions options)
    {
        AddressFamily family = local.AddressFamily;
        int fd = Linux.DatagramSocket(family);
        if (fd < 0)
        {
            Linux.Throw(fd, "socket(SOCK_DGRAM)");
        }

        loop.OpenSocketCount++;
        var endpoint = new EpollUdpEndpoint(loop, poller, fd, options, family);
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
        bool v6 = Family == AddressFamily.InterNetworkV6;
        Check(options.ReuseAddress ? Linux.SetIntOption(_fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoReuseAddr, 1) : 0, "SO_REUSEADDR");
        Check(options.Broadcast ? Linux.SetIntOption(_fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoBroadcast, 1) : 0, "SO_BROADCAST");
        Check(options.ReceiveBufferSize > 0 ? Linux.SetIntOption(_fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoRcvBuf, options.ReceiveBufferSize) : 0, "SO_RCVBUF");
        Check(options.SendBufferSize > 0 ? Linux.SetIntOption(_fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoSndBuf, options.SendBufferSize) : 0, "SO_SNDBUF");
        if (options.MulticastTimeToLive is { } ttl)
        {
            Check(v6 ? Linux.SetIntOption(_fd, UdpSocketOptions.IpProtoIpv6, UdpSocketOptions.Ipv6MulticastHops, ttl)
                     : Linux.SetIntOption(_fd, UdpSocketOptions.IpProtoIp, UdpSocketOptions.IpMulticastTtl, ttl), "the multicast TTL");
        }

        if (options.MulticastLoopback is { } loopback)
        {
            Check(v6 ? Linux.SetIntOption(_fd, UdpSocketOptions.IpProtoIpv6, UdpSocketOptions.Ipv6MulticastLoop, loopback ? 1 : 0)
                     : Linux.SetIntOption(_fd, UdpSocketOptions.IpProtoIp, UdpSocketOptions.IpMulticastLoop, loopback ? 1 : 0), "multicast loopback");
        }

        if (options.MulticastInterface is { } multicastInterface)
        {
            Span<byte> address = stackalloc byte[4];
            Check(v6 ? Linux.SetIntOption(_fd, UdpSocketOptions.IpProtoIpv6, UdpSocketOptions.Ipv6MulticastIf, (int)multicastInterface.ScopeId)
                     : multicastInterface.TryWriteBytes(address, out _) ? Linux.SetOption(_fd, UdpSocketOptions.IpProtoIp, UdpSocketOptions.IpMulticastIf, address) : -22, "the multicast interface");
        }

        int status = Linux.Bind(_fd, local.Serialize());
        if (status < 0)
        {
            throw Linux.CreateException(status, $"Binding a UDP socket to {local}");
        }

        if (remote is not null)
        {
            status = Linux.Connect(_fd, remote.Serialize());
            if (status < 0)
            {
                throw Linux.CreateException(status, $"Connecting a UDP socket to {remote}");
            }

            RemoteEndPoint = Linux.GetEndPoint(_fd, Family, peer: true) ?? remote;
        }

        LocalEndPoint = Linux.GetEndPoint(_fd, Family, peer: false) ?? local;
        long token = _poller.Add(_fd, Linux.EpollIn | Linux.EpollOut | Linux.EpollEt, this);
        if (token < 0)
        {
            throw Linux.CreateException((int)token, "epoll_ctl");
        }

        _token = token;
    }

    private static void Check(int status, string option)
    {
        if (status < 0)
        {
            throw Linux.CreateException(status, $"Setting {option} on a UDP socket");
        }
    }

    public void OnEvents(uint events)
    {
        if (IsDisposed)
        {
            return;
        }

        if ((events & (Linux.EpollIn | Linux.EpollErr)) != 0)
        {
            OnReceiveReady();
        }

        if ((events & (Linux.EpollOut | Linux.EpollErr)) != 0 && _writable is { } writable)
        {
            _writable = null;
            writable.TrySetResult();
        }
    }

    private protected override unsafe bool TryReceiveCore(out Datagram datagram, out Exception? error)
    {
        DatagramBuffer buffer = RentBuffer();
        byte* address = stackalloc byte[AddressRoom];
        while (true)
        {
            int addressLength = AddressRoom;
            nint received;
            fixed (byte* data = buffer.Array)
            {
                received = Linux.ReceiveFrom(_fd, data, buffer.Array.Length, Linux.MsgTrunc, address, &addressLength);
            }

            if (received >= 0)
            {
                if (received > Options.MaxDatagramSize)
                {
                    ReturnBuffer(buffer);
                    datagram = default;
                    error = DatagramTooLong();
                    return true;
                }

                datagram = MakeDatagram(buffer, (int)received, new ReadOnlySpan<byte>(address, Math.Min(addressLength, AddressRoom)));
                error = null;
                return true;
            }

            if (received == -Linux.EINTR)
            {
                continue;
            }

            ReturnBuffer(buffer);
            datagram = default;
            if (received == -Linux.EAGAIN)
            {
                error = null;
                return false;
            }

            error = Linux.CreateException((int)received, "Receiving a datagram");
            return true;
        }
    }

    private protected override ValueTask SendCoreAsync(ReadOnlyMemory<byte> datagram, SocketAddress? address, CancellationToken cancellationToken)
    {
        if (_writable is null)
        {
            nint status = TrySend(datagram.Span, address);
            if (status >= 0)
            {
                return default;
            }

            if (status != -Linux.EAGAIN)
            {
                return ValueTask.FromException(Linux.CreateException((int)status, "Sending a datagram"));
            }
        }

        return SendWhenWritableAsync(datagram, address, cancellationToken);
    }

    private unsafe nint TrySend(ReadOnlySpan<byte> datagram, SocketAddress? address)
    {
        while (true)
        {
            nint status;
            fixed (byte* data = datagram)
            {
                if (address is null)
                {
                    status = Linux.SendTo(_fd, data, datagram.Length, null, 0);
                }
                else
                {
                    fixed (byte* native = address.Buffer.Span)
                    {
                        status = Linux.SendTo(_fd, data, datagram.Length, native, address.Size);
                    }
                }
            }

            if (status != -Linux.EINTR)
            {
                return status;
            }
        }
    }

    /// <summary>The send buffer is full (or sends already wait): wait for room, in order, then send.</summary>
    private async ValueTask SendWhenWritableAsync(ReadOnlyMemory<byte> datagram, SocketAddress? address, CancellationToken cancellationToken)
    {
        while (true)
        {
            _writable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await _writable.Task.WaitAsync(cancellationToken).ConfigureAwait(true);
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            nint status = TrySend(datagram.Span, address);
            if (status >= 0)
            {
                return;
            }

            if (status != -Linux.EAGAIN)
            {
                throw Linux.CreateException((int)status, "Sending a datagram");
            }
        }
    }

    private protected override void SetMembershipCore(IPAddress group, IPAddress? localAddress, bool join)
    {
        bool v6 = Family == AddressFamily.InterNetworkV6;
        Span<byte> request = stackalloc byte[20];
        int length = UdpSocketOptions.WriteMembership(request, group, localAddress);
        int name = v6 ? (join ? UdpSocketOptions.Ipv6AddMembership : UdpSocketOptions.Ipv6DropMembership)
                      : (join ? UdpSocketOptions.IpAddMembership : UdpSocketOptions.IpDropMembership);
        int status = Linux.SetOption(_fd, v6 ? UdpSocketOptions.IpProtoIpv6 : UdpSocketOptions.IpProtoIp, name, request[..length]);
        if (status < 0)
        {
            throw Linux.CreateException(status, $"{(join ? "Joining" : "Leaving")} the multicast group {group}");
        }
    }

    private protected override void CloseCore()
    {
        if (_fd < 0)
        {
            return;
        }

        if (_token != 0)
        {
            _poller.Remove(_token, _fd);
            _token = 0;
        }

        Linux.Close(_fd);
        _fd = -1;
        ((ManagedLoop)_loop).OpenSocketCount--;
        if (_writable is { } writable)
        {
            _writable = null;
            writable.TrySetResult(); // the waiting send sees the endpoint disposed
        }
    }

    public override string ToString() => $"UDP (managed epoll) {LocalEndPoint}{(RemoteEndPoint is null ? "" : $" -> {RemoteEndPoint}")}";
}
