using System.Net;
using System.Net.Sockets;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// Happy eyeballs for a <see cref="DnsEndPoint"/> whose name resolves to both families (asyncio's
/// <c>happy_eyeballs_delay</c>, RFC 8305): the families interleaved, the next attempt started when one fails (not after
/// the delay), the first connection wins and the others are closed. The name "dual.test" resolves, through the loop's
/// test resolver, to ::1 and 127.0.0.1 in the order a test gives (no real name resolves to both everywhere).
/// </summary>
public abstract class HappyEyeballsTests : LoopTestBase
{
    private static void ResolveDual(Loop loop, params IPAddress[] addresses) =>
        loop.HostResolverForTests = (host, family, token) =>
            Task.FromResult(host == "dual.test" ? addresses : throw new SocketException((int)SocketError.HostNotFound));

    /// <summary>A delay no test waits for: an attempt that waited for it would hang the test (a failure at TestTimeout).</summary>
    private static readonly TcpOptions WaitForever = new() { HappyEyeballsDelay = TimeSpan.FromHours(1) };

    [Fact]
    public void A_refused_ipv6_attempt_starts_the_ipv4_one_at_once() => RunLoop(async loop =>
    {
        await using ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)listener.LocalEndPoint).Port;
        ResolveDual(loop, IPAddress.IPv6Loopback, IPAddress.Loopback); // nothing listens on [::1]:port
        Task<Connection> accepted = listener.AcceptAsync().AsTask();
        await using Connection client = await loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), WaitForever).AsTask().WaitAsync(TestTimeout);
        Assert.Equal(IPAddress.Loopback, ((IPEndPoint)client.RemoteEndPoint!).Address);
        await using Connection server = await accepted.WaitAsync(TestTimeout);
    });

    [Fact]
    public void A_refused_ipv4_attempt_starts_the_ipv6_one_at_once() => RunLoop(async loop =>
    {
        await using ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        int port = ((IPEndPoint)listener.LocalEndPoint).Port;
        ResolveDual(loop, IPAddress.Loopback, IPAddress.IPv6Loopback);
        Task<Connection> accepted = listener.AcceptAsync().AsTask();
        await using Connection client = await loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), WaitForever).AsTask().WaitAsync(TestTimeout);
        Assert.Equal(IPAddress.IPv6Loopback, ((IPEndPoint)client.RemoteEndPoint!).Address);
        await using Connection server = await accepted.WaitAsync(TestTimeout);
    });

    [Fact]
    public void With_no_delay_every_family_races_and_the_losers_are_closed() => RunLoop(async loop =>
    {
        // Listeners on both families, on the same port: both attempts may connect; one wins, the other is closed.
        (ConnectionListener v4, ConnectionListener v6) = await ListenOnBothFamiliesAsync(loop);
        int port = ((IPEndPoint)v4.LocalEndPoint).Port;
        await using (v4)
        await using (v6)
        {
            ResolveDual(loop, IPAddress.IPv6Loopback, IPAddress.Loopback);
            await using Connection client = await loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), new TcpOptions { HappyEyeballsDelay = TimeSpan.Zero })
                .AsTask().WaitAsync(TestTimeout);
            await client.Output.WriteAsync("winner"u8.ToArray());

            // The winner's server side reads "winner"; a loser's (if the kernel completed it) reads the end of stream.
            ConnectionListener winnerListener = ((IPEndPoint)client.RemoteEndPoint!).AddressFamily == AddressFamily.InterNetworkV6 ? v6 : v4;
            await using Connection served = await winnerListener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal("winner"u8.ToArray(), await ReadExactlyAsync(served.Input, 6).WaitAsync(TestTimeout));
        }
    });

    /// <summary>Listeners on 127.0.0.1 and ::1 on one port (a port free on both: tried again if ::1's was taken).</summary>
    private static async Task<(ConnectionListener V4, ConnectionListener V6)> ListenOnBothFamiliesAsync(Loop loop)
    {
        for (int attempt = 0; ; attempt++)
        {
            ConnectionListener v4 = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0));
            try
            {
                return (v4, await loop.ListenTcpAsync(new IPEndPoint(IPAddress.IPv6Loopback, ((IPEndPoint)v4.LocalEndPoint).Port)));
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse && attempt < 20)
            {
                await v4.DisposeAsync();
            }
        }
    }

    [Fact]
    public void Without_happy_eyeballs_the_addresses_are_tried_in_order() => RunLoop(async loop =>
    {
        await using ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)listener.LocalEndPoint).Port;
        ResolveDual(loop, IPAddress.IPv6Loopback, IPAddress.Loopback);
        Task<Connection> accepted = listener.AcceptAsync().AsTask();
        await using Connection client = await loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), new TcpOptions { HappyEyeballsDelay = null })
            .AsTask().WaitAsync(TestTimeout);
        Assert.Equal(IPAddress.Loopback, ((IPEndPoint)client.RemoteEndPoint!).Address);
        await using Connection server = await accepted.WaitAsync(TestTimeout);
    });

    [Fact]
    public void When_every_attempt_fails_the_last_failure_is_reported() => RunLoop(async loop =>
    {
        int port;
        await using (ConnectionListener probe = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0)))
        {
            port = ((IPEndPoint)probe.LocalEndPoint).Port; // then closed: nobody listens on either family
        }

        ResolveDual(loop, IPAddress.IPv6Loopback, IPAddress.Loopback);
        var error = await Assert.ThrowsAsync<SocketException>(() => loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), WaitForever).AsTask().WaitAsync(TestTimeout));
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), WaitForever, cancelled.Token).AsTask());
        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.ConnectTcpAsync(new DnsEndPoint("dual.test", port), new TcpOptions { HappyEyeballsDelay = TimeSpan.FromSeconds(-1) }); });
    });

    [Fact]
    public void The_families_alternate_from_the_first_address() =>
        Assert.Equal(
            new[] { "::1", "127.0.0.1", "::2", "127.0.0.2", "127.0.0.3" },
            Transports.TcpConnect.Interleave([IPAddress.Parse("::1"), IPAddress.Parse("::2"), IPAddress.Parse("127.0.0.1"), IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.3")])
                .Select(a => a.ToString()));
}

public sealed class ManagedHappyEyeballsTests : HappyEyeballsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsHappyEyeballsTests : HappyEyeballsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}

public sealed class LibuvHappyEyeballsTests : HappyEyeballsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
