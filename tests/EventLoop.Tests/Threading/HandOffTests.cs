using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EventLoop.Tests.Threading;

/// <summary>
/// A socket accepted off the loop and handed to it (a <see cref="LoopGroup"/>'s hand-off): the loop makes a connection
/// of it that carries bytes both ways; on libuv and on the managed loop's own poller the .NET socket is let go (its
/// descriptor closed, the connection living on the loop's duplicate), on the managed loop's socket transport the
/// connection owns it.
/// </summary>
public abstract class HandOffTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout;

    [Fact]
    public async Task An_adopted_socket_becomes_a_connection_of_the_loop_and_closes_with_it()
    {
        LoopThread loopThread = LoopThread.Start(CreatePolicy(), CreateOptions());
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using Socket peer = TestPipes.ConnectPlain(listener.LocalEndPoint!);
        Socket accepted = await listener.AcceptAsync().WaitAsync(Timeout);

        Connection connection = await loopThread.RunAsync(() => loopThread.Loop.AdoptAcceptedTcpSocket(accepted, new TcpOptions())).WaitAsync(Timeout);
        if (loopThread.Loop is not EventLoop.Managed.ManagedLoop { UsesEpoll: false })
        {
            Assert.True(accepted.SafeHandle.IsClosed, "the .NET socket was not let go: its descriptor leaks");
        }

        Assert.Equal(peer.LocalEndPoint, connection.RemoteEndPoint);
        peer.Send(Encoding.ASCII.GetBytes("ping"));
        string received = await loopThread.RunAsync(async () =>
        {
            byte[] bytes = await TestPipes.ReadExactlyAsync(connection.Input, 4);
            await connection.Output.WriteAsync(Encoding.ASCII.GetBytes("pong"));
            await connection.DisposeAsync();
            return Encoding.ASCII.GetString(bytes);
        }).WaitAsync(Timeout);
        Assert.Equal("ping", received);
        Assert.Equal("pong", Encoding.ASCII.GetString(TestPipes.ReceiveExactly(peer, 4)));
        Assert.Equal(0, peer.Receive(new byte[1])); // closed gracefully: the FIN came, nothing else holds the connection
        await loopThread.DisposeAsync().AsTask().WaitAsync(Timeout);
        AssertClosedCleanly(loopThread.Loop);
    }
}

public sealed class ManagedHandOffTests : HandOffTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsHandOffTests : HandOffTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}

public sealed class LibuvHandOffTests : HandOffTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
