using System.Net;
using System.Net.Sockets;
using EventLoop.Managed.Epoll;
using EventLoop.Transports.Udp;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Udp;

/// <summary>
/// UDP endpoints (uvloop's test_udp): send to and receive from over IPv4 and IPv6, 10,000 datagrams with their payloads
/// checked, connected endpoints and ICMP port-unreachable, the error paths (port in use, oversize, disposed, off the loop
/// thread), the socket options, multicast over the host's own route, cancellation, and the leak check at the end.
/// </summary>
public abstract class UdpTests : LoopTestBase
{
    /// <summary>False where a waiting receive allocates (the managed loop's sockets I/O: its .NET socket operation).</summary>
    protected virtual bool ReceiveAllocatesNothing => true;

    private static IPEndPoint Loopback(AddressFamily family) =>
        new(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, 0);

    private static byte[] Payload(int index)
    {
        var payload = new byte[4 + (index * 37 % 1400)];
        BitConverter.TryWriteBytes(payload, index);
        for (int i = 4; i < payload.Length; i++)
        {
            payload[i] = (byte)(index + i);
        }

        return payload;
    }

    [Theory]
    [InlineData(AddressFamily.InterNetwork)]
    [InlineData(AddressFamily.InterNetworkV6)]
    public void Datagrams_go_both_ways_and_say_who_sent_them(AddressFamily family) => RunLoop(async loop =>
    {
        await using DatagramEndpoint server = await loop.OpenDatagramEndpointAsync(Loopback(family));
        await using DatagramEndpoint client = await loop.OpenDatagramEndpointAsync(Loopback(family));
        Assert.NotEqual(0, server.LocalEndPoint.Port);
        Assert.Equal(family, server.LocalEndPoint.AddressFamily);
        Assert.Null(server.RemoteEndPoint);

        await client.SendToAsync("ping"u8.ToArray(), server.LocalEndPoint);
        using (Datagram request = await server.ReceiveAsync().AsTask().WaitAsync(TestTimeout))
        {
            Assert.Equal("ping"u8.ToArray(), request.Data.ToArray());
            Assert.Equal(client.LocalEndPoint, request.RemoteEndPoint);
            await server.SendToAsync("pong"u8.ToArray(), request.RemoteEndPoint);
        }

        using Datagram reply = await client.ReceiveAsync().AsTask().WaitAsync(TestTimeout);
        Assert.Equal("pong"u8.ToArray(), reply.Data.ToArray());
        Assert.Equal(server.LocalEndPoint, reply.RemoteEndPoint);

        // An empty datagram is a datagram.
        await client.SendToAsync(ReadOnlyMemory<byte>.Empty, server.LocalEndPoint);
        using Datagram empty = await server.ReceiveAsync().AsTask().WaitAsync(TestTimeout);
        Assert.Equal(0, empty.Data.Length);
    });

    [Theory]
    [InlineData(AddressFamily.InterNetwork)]
    [InlineData(AddressFamily.InterNetworkV6)]
    public void Ten_thousand_datagrams_arrive_with_their_payloads(AddressFamily family) => RunLoop(async loop =>
    {
        // Sent in windows the receiver drains before the next (loopback drops only what overflows the receive buffer).
        const int Count = 10_000;
        const int Window = 64;
        await using DatagramEndpoint receiver = await loop.OpenDatagramEndpointAsync(Loopback(family));
        await using DatagramEndpoint sender = await loop.OpenDatagramEndpointAsync(Loopback(family));
        var seen = new bool[Count];
        IPEndPoint? firstSender = null;
        int received = 0;
        for (int start = 0; start < Count; start += Window)
        {
            int end = Math.Min(Count, start + Window);
            for (int i = start; i < end; i++)
            {
                await sender.SendToAsync(Payload(i), receiver.LocalEndPoint);
            }

            for (int i = start; i < end; i++)
            {
                using Datagram datagram = await receiver.ReceiveAsync().AsTask().WaitAsync(TestTimeout);
                int index = BitConverter.ToInt32(datagram.Data.Span);
                Assert.InRange(index, start, end - 1);
                Assert.False(seen[index], $"datagram {index} arrived twice");
                seen[index] = true;
                Assert.True(datagram.Data.Span.SequenceEqual(Payload(index)), $"datagram {index} arrived changed");
                Assert.Same(firstSender ??= datagram.RemoteEndPoint, datagram.RemoteEndPoint); // one sender, one instance
                received++;
            }
        }

        Assert.Equal(Count, received);
    });

    [Fact]
    public void ReceiveAll_enumerates_datagrams_until_the_endpoint_is_disposed() => RunLoop(async loop =>
    {
        DatagramEndpoint receiver = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        await using DatagramEndpoint sender = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        for (int i = 0; i < 10; i++)
        {
            await sender.SendToAsync(Payload(i), receiver.LocalEndPoint);
        }

        var indexes = new List<int>();
        Task enumerate = EnumerateAsync();
        async Task EnumerateAsync()
        {
            await foreach (Datagram datagram in receiver.ReceiveAllAsync())
            {
                indexes.Add(BitConverter.ToInt32(datagram.Data.Span));
                if (indexes.Count == 10)
                {
                    await receiver.DisposeAsync(); // ends the enumeration
                }
            }
        }

        await enumerate.WaitAsync(TestTimeout);
        Assert.Equal(Enumerable.Range(0, 10), indexes.Order());
    });

    [Fact]
    public void A_connected_endpoint_sends_to_and_hears_only_its_peer() => RunLoop(async loop =>
    {
        await using DatagramEndpoint server = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        await using DatagramEndpoint client = await loop.OpenDatagramEndpointAsync(null, server.LocalEndPoint);
        await using DatagramEndpoint stranger = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        Assert.Equal(server.LocalEndPoint, client.RemoteEndPoint);

        await client.SendAsync("hello"u8.ToArray());
        using (Datagram hello = await server.ReceiveAsync().AsTask().WaitAsync(TestTimeout))
        {
            Assert.Equal("hello"u8.ToArray(), hello.Data.ToArray());
            Assert.Equal(client.LocalEndPoint.Port, hello.RemoteEndPoint.Port);
            await stranger.SendToAsync("noise"u8.ToArray(), hello.RemoteEndPoint); // the kernel drops it: not from the peer
            await server.SendToAsync("welcome"u8.ToArray(), hello.RemoteEndPoint);
        }

        using (Datagram welcome = await client.ReceiveAsync().AsTask().WaitAsync(TestTimeout))
        {
            Assert.Equal("welcome"u8.ToArray(), welcome.Data.ToArray());
        }

        await client.SendToAsync("again"u8.ToArray(), server.LocalEndPoint); // its own peer's address is fine
        using (Datagram again = await server.ReceiveAsync().AsTask().WaitAsync(TestTimeout))
        {
            Assert.Equal("again"u8.ToArray(), again.Data.ToArray());
        }

        Assert.Throws<InvalidOperationException>(() => { _ = client.SendToAsync(new byte[1], stranger.LocalEndPoint); });
        Assert.Throws<InvalidOperationException>(() => { _ = server.SendAsync(new byte[1]); });
    });

    [Fact]
    public void An_icmp_port_unreachable_surfaces_as_connection_refused_on_a_connected_endpoint() => RunLoop(async loop =>
    {
        IPEndPoint nobody;
        await using (DatagramEndpoint probe = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork)))
        {
            nobody = probe.LocalEndPoint; // bound, then closed: nobody listens there now
        }

        await using DatagramEndpoint client = await loop.OpenDatagramEndpointAsync(null, nobody);
        await client.SendAsync("anyone?"u8.ToArray());
        var error = await Assert.ThrowsAsync<SocketException>(() => client.ReceiveAsync().AsTask().WaitAsync(TestTimeout));
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);

        // The error was reported once; the endpoint goes on.
        await client.SendAsync("still here"u8.ToArray());
        error = await Assert.ThrowsAsync<SocketException>(() => client.ReceiveAsync().AsTask().WaitAsync(TestTimeout));
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
    });

    [Fact]
    public void A_port_in_use_is_address_already_in_use_unless_both_reuse_it() => RunLoop(async loop =>
    {
        await using DatagramEndpoint first = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.OpenDatagramEndpointAsync(first.LocalEndPoint));
        Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);

        var reuse = new DatagramOptions { ReuseAddress = true };
        await using DatagramEndpoint shared = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork), options: reuse);
        await using DatagramEndpoint again = await loop.OpenDatagramEndpointAsync(shared.LocalEndPoint, options: reuse);
        Assert.Equal(shared.LocalEndPoint, again.LocalEndPoint);
        Assert.Equal(1, Linux.GetIntOption(again.Descriptor, UdpSocketOptions.SolSocket, UdpSocketOptions.SoReuseAddr));
    });

    [Fact]
    public void The_socket_options_are_set() => RunLoop(async loop =>
    {
        var options = new DatagramOptions { Broadcast = true, ReceiveBufferSize = 300_000, SendBufferSize = 200_000, MulticastTimeToLive = 7, MulticastLoopback = false };
        await using DatagramEndpoint endpoint = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork), options: options);
        int fd = endpoint.Descriptor;
        Assert.Equal(1, Linux.GetIntOption(fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoBroadcast));
        Assert.True(Linux.GetIntOption(fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoRcvBuf) >= 300_000);
        Assert.True(Linux.GetIntOption(fd, UdpSocketOptions.SolSocket, UdpSocketOptions.SoSndBuf) >= 200_000);
        Assert.Equal(7, Linux.GetIntOption(fd, UdpSocketOptions.IpProtoIp, UdpSocketOptions.IpMulticastTtl));
        Assert.Equal(0, Linux.GetIntOption(fd, UdpSocketOptions.IpProtoIp, UdpSocketOptions.IpMulticastLoop));

        await using DatagramEndpoint v6 = await loop.OpenDatagramEndpointAsync(
            Loopback(AddressFamily.InterNetworkV6), options: new DatagramOptions { MulticastTimeToLive = 3, MulticastLoopback = false });
        Assert.Equal(3, Linux.GetIntOption(v6.Descriptor, UdpSocketOptions.IpProtoIpv6, UdpSocketOptions.Ipv6MulticastHops));
        Assert.Equal(0, Linux.GetIntOption(v6.Descriptor, UdpSocketOptions.IpProtoIpv6, UdpSocketOptions.Ipv6MulticastLoop));

        await using DatagramEndpoint plain = await loop.OpenDatagramEndpointAsync(new IPEndPoint(IPAddress.Any, 0));
        Assert.Equal(0, Linux.GetIntOption(plain.Descriptor, UdpSocketOptions.SolSocket, UdpSocketOptions.SoBroadcast));
        var refused = await Assert.ThrowsAsync<SocketException>(async () => await plain.SendToAsync(new byte[1], new IPEndPoint(IPAddress.Broadcast, 9)));
        Assert.Equal(SocketError.AccessDenied, refused.SocketErrorCode); // a broadcast without SO_BROADCAST

        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork), options: new DatagramOptions { MaxDatagramSize = 0 }); });
        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork), options: new DatagramOptions { MulticastTimeToLive = 256 }); });
        Assert.Throws<ArgumentException>(() => { _ = loop.OpenDatagramEndpointAsync(null, null); });
        Assert.Throws<ArgumentException>(() => { _ = loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork), new IPEndPoint(IPAddress.IPv6Loopback, 9)); });
    });

    [Fact]
    public void A_multicast_member_receives_what_is_sent_to_its_group() => RunLoop(async loop =>
    {
        // On the loopback interface (joined there, sent from there): no multicast route needed, nothing leaves the host.
        var group = IPAddress.Parse("239.255.42.99");
        await using DatagramEndpoint member = await loop.OpenDatagramEndpointAsync(new IPEndPoint(IPAddress.Any, 0));
        member.JoinMulticastGroup(group, IPAddress.Loopback);
        await using DatagramEndpoint sender = await loop.OpenDatagramEndpointAsync(
            new IPEndPoint(IPAddress.Any, 0), options: new DatagramOptions { MulticastLoopback = true, MulticastInterface = IPAddress.Loopback });
        Assert.Equal(0x0100007F, Linux.GetIntOption(sender.Descriptor, UdpSocketOptions.IpProtoIp, UdpSocketOptions.IpMulticastIf)); // 127.0.0.1
        await sender.SendToAsync("to the group"u8.ToArray(), new IPEndPoint(group, member.LocalEndPoint.Port));
        using (Datagram datagram = await member.ReceiveAsync().AsTask().WaitAsync(TestTimeout))
        {
            Assert.Equal("to the group"u8.ToArray(), datagram.Data.ToArray());
            Assert.Equal(sender.LocalEndPoint.Port, datagram.RemoteEndPoint.Port);
        }

        member.LeaveMulticastGroup(group, IPAddress.Loopback);
        var notMember = Assert.Throws<SocketException>(() => member.LeaveMulticastGroup(group, IPAddress.Loopback));
        Assert.Equal(SocketError.AddressNotAvailable, notMember.SocketErrorCode);
        Assert.Throws<ArgumentException>(() => member.JoinMulticastGroup(IPAddress.Loopback));
        Assert.Throws<ArgumentException>(() => member.JoinMulticastGroup(IPAddress.Parse("ff02::1")));
    });

    [Fact]
    public void Oversize_datagrams_are_message_size_errors_both_ways() => RunLoop(async loop =>
    {
        await using DatagramEndpoint receiver = await loop.OpenDatagramEndpointAsync(
            Loopback(AddressFamily.InterNetwork), options: new DatagramOptions { MaxDatagramSize = 16 });
        await using DatagramEndpoint sender = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        var tooLong = await Assert.ThrowsAsync<SocketException>(async () => await sender.SendToAsync(new byte[70_000], receiver.LocalEndPoint));
        Assert.Equal(SocketError.MessageSize, tooLong.SocketErrorCode);

        await sender.SendToAsync(new byte[100], receiver.LocalEndPoint);
        await sender.SendToAsync(Payload(1)[..16], receiver.LocalEndPoint);
        var cut = await Assert.ThrowsAsync<SocketException>(() => receiver.ReceiveAsync().AsTask().WaitAsync(TestTimeout));
        Assert.Equal(SocketError.MessageSize, cut.SocketErrorCode);
        using Datagram next = await receiver.ReceiveAsync().AsTask().WaitAsync(TestTimeout);
        Assert.Equal(Payload(1)[..16], next.Data.ToArray());
    });

    [Fact]
    public void A_cancelled_receive_leaves_the_next_datagram_for_the_next_receive() => RunLoop(async loop =>
    {
        await using DatagramEndpoint receiver = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        await using DatagramEndpoint sender = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));

        using (var cts = new CancellationTokenSource())
        {
            ValueTask<Datagram> waiting = receiver.ReceiveAsync(cts.Token);
            Assert.False(waiting.IsCompleted);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.AsTask().WaitAsync(TestTimeout));
        }

        using (var cts = new CancellationTokenSource())
        {
            ValueTask<Datagram> waiting = receiver.ReceiveAsync(cts.Token);
            await Task.Run(cts.Cancel); // from another thread
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.AsTask().WaitAsync(TestTimeout));
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receiver.ReceiveAsync(new CancellationToken(true)).AsTask());

        await sender.SendToAsync("after"u8.ToArray(), receiver.LocalEndPoint);
        using Datagram datagram = await receiver.ReceiveAsync().AsTask().WaitAsync(TestTimeout);
        Assert.Equal("after"u8.ToArray(), datagram.Data.ToArray());
    });

    [Fact]
    public void Disposing_fails_a_pending_receive_and_every_later_call() => RunLoop(async loop =>
    {
        DatagramEndpoint endpoint = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        ValueTask<Datagram> waiting = endpoint.ReceiveAsync();
        Assert.Throws<InvalidOperationException>(() => { _ = endpoint.ReceiveAsync(); }); // one receive at a time
        await endpoint.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.AsTask().WaitAsync(TestTimeout));
        await endpoint.DisposeAsync(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => { _ = endpoint.ReceiveAsync(); });
        Assert.Throws<ObjectDisposedException>(() => { _ = endpoint.SendToAsync(new byte[1], new IPEndPoint(IPAddress.Loopback, 9)); });
        Assert.Throws<ObjectDisposedException>(() => endpoint.JoinMulticastGroup(IPAddress.Parse("239.1.1.1")));
    });

    [Fact]
    public void Off_the_loop_thread_only_dispose_is_allowed() => RunLoop(async loop =>
    {
        DatagramEndpoint endpoint = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        ValueTask<Datagram> waiting = endpoint.ReceiveAsync();
        await Task.Run(() =>
        {
            Assert.Throws<InvalidOperationException>(() => { _ = endpoint.SendToAsync(new byte[1], endpoint.LocalEndPoint); });
            Assert.Throws<InvalidOperationException>(() => { _ = loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork)); });
            Assert.Throws<InvalidOperationException>(() => endpoint.JoinMulticastGroup(IPAddress.Parse("239.1.1.1")));
        }).WaitAsync(TestTimeout);
        await Task.Run(async () => await endpoint.DisposeAsync()).WaitAsync(TestTimeout);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.AsTask().WaitAsync(TestTimeout));
    });

    [Fact]
    public void The_loop_closes_an_endpoint_left_open() => RunLoop(async loop =>
    {
        DatagramEndpoint endpoint = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        DatagramEndpoint sender = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetworkV6));
        await sender.SendToAsync(new byte[10], new IPEndPoint(IPAddress.IPv6Loopback, 9)); // nobody there
        _ = endpoint.ReceiveAsync().AsTask(); // waits: the loop's shutdown closes the endpoint and fails it
    });

    [Fact]
    public void A_warm_echo_allocates_nothing_per_datagram() => RunLoop(async loop =>
    {
        await using DatagramEndpoint server = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        await using DatagramEndpoint client = await loop.OpenDatagramEndpointAsync(Loopback(AddressFamily.InterNetwork));
        byte[] payload = Payload(3);
        IPEndPoint serverAddress = server.LocalEndPoint;

        async Task RoundTripsAsync(int count)
        {
            for (int i = 0; i < count; i++)
            {
                await client.SendToAsync(payload, serverAddress);
                using (Datagram request = await server.ReceiveAsync())
                {
                    await server.SendToAsync(request.Data, request.RemoteEndPoint);
                }

                using Datagram reply = await client.ReceiveAsync();
            }
        }

        await RoundTripsAsync(200).WaitAsync(TestTimeout); // warm: buffers pooled, addresses cached, code tiered
        long before = GC.GetAllocatedBytesForCurrentThread();
        await RoundTripsAsync(1000);
        long perDatagram = (GC.GetAllocatedBytesForCurrentThread() - before) / 2000;
        if (ReceiveAllocatesNothing)
        {
            Assert.True(perDatagram < 8, $"{perDatagram} bytes allocated per datagram");
        }
    });
}

public sealed class ManagedUdpTests : UdpTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsUdpTests : UdpTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();

    protected override bool ReceiveAllocatesNothing => false;
}

public sealed class LibuvUdpTests : UdpTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
