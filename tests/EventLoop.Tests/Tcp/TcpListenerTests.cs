using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using EventLoop.Libuv.Internal;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>Listeners: more connections than the backlog while nobody accepts, and IPv6.</summary>
public abstract class TcpListenerTests : LoopTestBase
{
    /// <summary>Reads one message, sends it back, closes.</summary>
    private static async Task EchoOnceAsync(Connection connection, int length)
    {
        await using (connection)
        {
            byte[] message = await ReadExactlyAsync(connection.Input, length);
            await connection.Output.WriteAsync(message);
        }
    }

    private static byte[] Message(int client) => Encoding.ASCII.GetBytes($"client {client:D3} says hello");

    /// <summary>
    /// The libuv listener's own queue: connections it took from libuv for <see cref="ConnectionListener.AcceptAsync"/>,
    /// and whether it left one more with libuv (which then stops taking connections from the kernel).
    /// </summary>
    private static (int Queued, bool OneLeftWithLibuv) LibuvListenerState(ConnectionListener listener)
    {
        const BindingFlags Private = BindingFlags.Instance | BindingFlags.NonPublic;
        object queue = typeof(LibuvTcpListener).GetField("_accepted", Private)!.GetValue(listener)!;
        int queued = (int)queue.GetType().GetProperty("Count")!.GetValue(queue)!;
        bool waiting = (bool)typeof(LibuvTcpListener).GetField("_connectionWaiting", Private)!.GetValue(listener)!;
        return (queued, waiting);
    }

    [Fact]
    public void More_connections_than_the_backlog_while_nobody_accepts_are_all_accepted_and_served()
    {
        const int Backlog = 8;
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = Backlog });
            bool libuv = listener is LibuvTcpListener;

            // As many as arrive without the kernel dropping a handshake (which the client would retry only a second
            // later): the kernel's accept queue holds Backlog + 1; the libuv listener also takes a backlog's worth
            // for itself and leaves one more with libuv before it stops taking connections.
            int clients = libuv ? 2 * Backlog : Backlog + 1;
            var connections = new Connection[clients];
            for (int i = 0; i < clients; i++)
            {
                connections[i] = await loop.ConnectTcpAsync(listener.LocalEndPoint).AsTask().WaitAsync(TestTimeout);
                await connections[i].Output.WriteAsync(Message(i)).AsTask().WaitAsync(TestTimeout);
            }

            if (libuv)
            {
                // The path under test: a backlog's worth queued, one more left with libuv, the rest in the kernel.
                using var deadline = new CancellationTokenSource(TestTimeout);
                while (LibuvListenerState(listener) != (Backlog, true))
                {
                    deadline.Token.ThrowIfCancellationRequested();
                    await Task.Yield(); // a loop turn: the listener's connection callbacks run in its poll
                }
            }

            // Now somebody accepts: every connection comes out, none lost, and each is served its own reply.
            var handlers = new List<Task>();
            for (int i = 0; i < clients; i++)
            {
                Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
                handlers.Add(EchoOnceAsync(server, Message(0).Length));
            }

            for (int i = 0; i < clients; i++)
            {
                Assert.Equal(Message(i), await ReadExactlyAsync(connections[i].Input, Message(i).Length).WaitAsync(TestTimeout));
                Assert.Empty(await ReadToEndAsync(connections[i].Input).WaitAsync(TestTimeout));
                await connections[i].DisposeAsync();
            }

            await Task.WhenAll(handlers).WaitAsync(TestTimeout);

            // Nothing else was waiting to be accepted.
            using var cts = new CancellationTokenSource();
            ValueTask<Connection> extra = listener.AcceptAsync(cts.Token);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => extra.AsTask().WaitAsync(TestTimeout));
        });
    }

    /// <summary>Whether this machine has an IPv6 loopback a plain socket can listen on; if not, the error it gave.</summary>
    private static bool HasIPv6Loopback(out SocketException? error)
    {
        error = null;
        if (!Socket.OSSupportsIPv6)
        {
            error = new SocketException((int)SocketError.AddressFamilyNotSupported);
            return false;
        }

        try
        {
            using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
            probe.Listen(1);
            return true;
        }
        catch (SocketException ex)
        {
            error = ex;
            return false;
        }
    }

    [Fact]
    public void Listen_connect_and_echo_over_IPv6_loopback()
    {
        var ipv6Loopback = new IPEndPoint(IPAddress.IPv6Loopback, 0);
        if (!HasIPv6Loopback(out SocketException? unavailable))
        {
            // No IPv6 loopback here: the loop must say so with the documented SocketException, not pretend.
            RunLoop(async loop =>
            {
                var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.ListenTcpAsync(ipv6Loopback));
                Assert.Equal(unavailable!.SocketErrorCode, error.SocketErrorCode);
            });
            return;
        }

        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(ipv6Loopback);
            var local = (IPEndPoint)listener.LocalEndPoint;
            Assert.Equal(AddressFamily.InterNetworkV6, local.AddressFamily);
            Assert.Equal(IPAddress.IPv6Loopback, local.Address);
            Assert.NotEqual(0, local.Port);

            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(local).AsTask().WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
            Assert.Equal(server.LocalEndPoint, client.RemoteEndPoint);
            Assert.Equal(IPAddress.IPv6Loopback, ((IPEndPoint)client.LocalEndPoint!).Address);

            // Random bytes each way, compared whole.
            byte[] up = RandomPayload(256 * 1024, seed: 61);
            byte[] down = RandomPayload(256 * 1024, seed: 62);
            Task<byte[]> serverReads = ReadExactlyAsync(server.Input, up.Length);
            Task<byte[]> clientReads = ReadExactlyAsync(client.Input, down.Length);
            await client.Output.WriteAsync(up).AsTask().WaitAsync(TestTimeout);
            await server.Output.WriteAsync(down).AsTask().WaitAsync(TestTimeout);
            Assert.Equal(up, await serverReads.WaitAsync(TestTimeout));
            Assert.Equal(down, await clientReads.WaitAsync(TestTimeout));

            // And a plain IPv6 socket reaches the same listener.
            Task<Connection> acceptPlain = listener.AcceptAsync().AsTask();
            using var plain = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            await plain.ConnectAsync(local).WaitAsync(TestTimeout);
            await using Connection fromPlain = await acceptPlain.WaitAsync(TestTimeout);
            Assert.Equal(plain.LocalEndPoint, fromPlain.RemoteEndPoint);
        });
    }

    [Fact]
    public void ReusePort_lets_two_listeners_share_a_port_and_both_accept()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // SO_REUSEPORT with the kernel's load balancing is Linux's (TcpOptions.ReusePort says so)
        }

        RunLoop(async loop =>
        {
            var reuse = new TcpOptions { ReusePort = true };
            ConnectionListener first = await loop.ListenTcpAsync(AnyLoopbackPort, reuse);
            var port = (IPEndPoint)first.LocalEndPoint;

            // Without the option on the second socket the port is taken, as for any listener.
            SocketException taken = await Assert.ThrowsAsync<SocketException>(() => loop.ListenTcpAsync(port).AsTask());
            Assert.Equal(SocketError.AddressAlreadyInUse, taken.SocketErrorCode);

            ConnectionListener second = await loop.ListenTcpAsync(port, reuse);
            Assert.Equal(port, second.LocalEndPoint);

            // The kernel spreads connections by a hash of their addresses: connect until each listener has had one.
            // One accept pending on each listener at a time; each connection is accepted by one of them and echoed.
            int[] served = new int[2];
            var clients = new List<Connection>();
            Task<Connection>[] accepts = [first.AcceptAsync().AsTask(), second.AcceptAsync().AsTask()];
            while (served[0] == 0 || served[1] == 0)
            {
                Assert.True(clients.Count < 200, $"200 connections all went to one listener ({served[0]} / {served[1]})");
                byte[] message = Message(clients.Count);
                Connection client = await loop.ConnectTcpAsync(port).AsTask().WaitAsync(TestTimeout);
                clients.Add(client);
                await client.Output.WriteAsync(message).AsTask().WaitAsync(TestTimeout);
                Task<Connection> accepted = await Task.WhenAny(accepts).WaitAsync(TestTimeout);
                int which = accepted == accepts[0] ? 0 : 1;
                served[which]++;
                accepts[which] = (which == 0 ? first : second).AcceptAsync().AsTask();
                await EchoOnceAsync(await accepted, message.Length);
                Assert.Equal(message, await ReadExactlyAsync(client.Input, message.Length).WaitAsync(TestTimeout));
            }

            foreach (Connection client in clients)
            {
                await client.DisposeAsync();
            }

            await first.DisposeAsync();
            await second.DisposeAsync();
            foreach (Task<Connection> pending in accepts)
            {
                await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.WaitAsync(TestTimeout)); // the dispose ends it
            }
        });
    }
}

public sealed class ManagedTcpListenerTests : TcpListenerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTcpListenerTests : TcpListenerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
