using System.Net;
using System.Net.Sockets;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Resolver;

/// <summary>
/// DNS on the loop (uvloop's test_dns): getaddrinfo and getnameinfo resolve without blocking the loop and complete
/// on the loop thread; names that do not resolve, families that do not match and bad arguments fail with the right
/// exception; a cancelled lookup ends cancelled at once and one left running at the loop's close is cleaned up
/// (the leak check counts libuv's requests). Names come from /etc/hosts (localhost), so no network is needed.
/// </summary>
public abstract class DnsTests : LoopTestBase
{
    [Fact]
    public void Localhost_resolves_to_the_loopback_address_with_the_port_and_completes_on_the_loop_thread()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            IPEndPoint[] endpoints = await loop.GetAddrInfoAsync("localhost", 8080).WaitAsync(TestTimeout);
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            Assert.Contains(new IPEndPoint(IPAddress.Loopback, 8080), endpoints);
            Assert.All(endpoints, e => Assert.Equal(8080, e.Port));

            IPEndPoint[] v4 = await loop.GetAddrInfoAsync("localhost", family: AddressFamily.InterNetwork).WaitAsync(TestTimeout);
            Assert.Equal(new[] { new IPEndPoint(IPAddress.Loopback, 0) }, v4);
        });
    }

    [Fact]
    public void Address_literals_resolve_to_themselves_in_their_family()
    {
        RunLoop(async loop =>
        {
            Assert.Equal(new[] { new IPEndPoint(IPAddress.Parse("10.1.2.3"), 443) }, await loop.GetAddrInfoAsync("10.1.2.3", 443).WaitAsync(TestTimeout));
            Assert.Equal(new[] { new IPEndPoint(IPAddress.IPv6Loopback, 1) }, await loop.GetAddrInfoAsync("::1", 1, AddressFamily.InterNetworkV6).WaitAsync(TestTimeout));
            var mismatch = await Assert.ThrowsAsync<SocketException>(() => loop.GetAddrInfoAsync("10.1.2.3", 0, AddressFamily.InterNetworkV6).WaitAsync(TestTimeout));
            Assert.Equal(SocketError.HostNotFound, mismatch.SocketErrorCode);
        });
    }

    [Fact]
    public void A_name_that_does_not_resolve_fails_with_host_not_found()
    {
        RunLoop(async loop =>
        {
            var error = await Assert.ThrowsAsync<SocketException>(() => loop.GetAddrInfoAsync("no-such-host.invalid", 80).WaitAsync(TestTimeout));
            Assert.Equal(SocketError.HostNotFound, error.SocketErrorCode);
        });
    }

    [Fact]
    public void The_loopback_address_is_named_localhost_and_an_address_without_a_name_fails()
    {
        RunLoop(async loop =>
        {
            Assert.Equal("localhost", await loop.GetNameInfoAsync(IPAddress.Loopback).WaitAsync(TestTimeout));
            var error = await Assert.ThrowsAsync<SocketException>(() => loop.GetNameInfoAsync(IPAddress.Parse("192.0.2.1")).WaitAsync(TestTimeout));
            Assert.Equal(SocketError.HostNotFound, error.SocketErrorCode);
        });
    }

    [Fact]
    public void Bad_arguments_are_refused_at_once()
    {
        RunLoop(async loop =>
        {
            Assert.Throws<ArgumentNullException>(() => { _ = loop.GetAddrInfoAsync(null!); });
            Assert.Throws<ArgumentException>(() => { _ = loop.GetAddrInfoAsync(""); });
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.GetAddrInfoAsync("localhost", 65536); });
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.GetAddrInfoAsync("localhost", -1); });
            Assert.Contains("Unix", Assert.Throws<ArgumentException>(() => { _ = loop.GetAddrInfoAsync("localhost", 0, AddressFamily.Unix); }).Message);
            Assert.Throws<ArgumentNullException>(() => { _ = loop.GetNameInfoAsync(null!); });
            await Task.Run(() => Assert.Throws<InvalidOperationException>(() => { _ = loop.GetAddrInfoAsync("localhost"); }));
        });
    }

    [Fact]
    public void A_cancelled_token_and_a_lookup_cancelled_in_flight_end_cancelled_and_the_loop_resolves_again()
    {
        RunLoop(async loop =>
        {
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            Assert.True(loop.GetAddrInfoAsync("localhost", 0, AddressFamily.Unspecified, cancelled.Token).IsCanceled);
            Assert.True(loop.GetNameInfoAsync(IPAddress.Loopback, cancelled.Token).IsCanceled);

            for (int i = 0; i < 20; i++)
            {
                using var cts = new CancellationTokenSource();
                Task<IPEndPoint[]> lookup = loop.GetAddrInfoAsync("localhost", 0, AddressFamily.Unspecified, cts.Token);
                Task<string> reverse = loop.GetNameInfoAsync(IPAddress.Loopback, cts.Token);
                cts.Cancel(); // before the loop turns: the lookups cannot have called back yet
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => lookup.WaitAsync(TestTimeout));
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reverse.WaitAsync(TestTimeout));
            }

            Assert.NotEmpty(await loop.GetAddrInfoAsync("localhost").WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void Lookups_left_running_when_main_ends_are_cancelled_by_the_shutdown_and_leave_nothing_open()
    {
        var lookups = new List<Task>();
        RunLoop(loop =>
        {
            for (int i = 0; i < 16; i++)
            {
                lookups.Add(loop.GetAddrInfoAsync("localhost"));
                lookups.Add(loop.GetNameInfoAsync(IPAddress.Loopback));
            }

            return Task.CompletedTask;
        });

        Assert.All(lookups, t => Assert.True(t.IsCompleted, "a lookup outlived its loop"));
    }

    [Fact]
    public void ConnectTcpAsync_with_a_DnsEndPoint_still_resolves_and_connects()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            int port = ((IPEndPoint)listener.LocalEndPoint).Port;
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(new DnsEndPoint("localhost", port)).AsTask().WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            Assert.Equal(IPAddress.Loopback, ((IPEndPoint)client.RemoteEndPoint!).Address);
        });
    }
}

public sealed class ManagedDnsTests : DnsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvDnsTests : DnsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
