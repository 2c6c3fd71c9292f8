using System.Net;
using System.Net.Sockets;
using EventLoop.Managed;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Managed;

/// <summary>
/// What only the managed loop's own poller (epoll, edge-triggered) has to get right, with plain-socket peers:
/// the end of stream or a reset arriving in the same edge as the last bytes, a descriptor closed while registered
/// and its number reused at once, more descriptors than <c>select</c> could take, and the poll woken by posts and
/// timers. The rest of its behaviour is the whole TCP suite, which runs on it.
/// </summary>
public sealed class EpollPollerTests : LoopTestBase
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();

    private void RunOnEpoll(Func<Loop, Task> main) => RunLoop(loop =>
    {
        Assert.True(((ManagedLoop)loop).UsesEpoll, "the managed loop on Linux polls with its own epoll");
        return main(loop);
    });

    [Fact]
    public void Bytes_and_end_of_stream_in_one_edge_are_both_seen()
    {
        RunOnEpoll(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);

            // Written and half-closed before the server even accepts: the bytes and the FIN wait together, and the
            // registration's first edge reports both.
            using Socket peer = await Task.Run(() =>
            {
                Socket socket = ConnectPlain(listener.LocalEndPoint);
                socket.Send("last words"u8.ToArray());
                socket.Shutdown(SocketShutdown.Send);
                return socket;
            }).WaitAsync(TestTimeout);
            await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal("last words"u8.ToArray(), await ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void A_reset_in_the_same_edge_as_data_fails_the_read_with_ConnectionResetException()
    {
        RunOnEpoll(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Socket peer = await Task.Run(() => ConnectPlain(listener.LocalEndPoint)).WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            await Task.Run(() =>
            {
                peer.Send(RandomPayload(1000, 3));
                peer.LingerState = new LingerOption(true, 0);
                peer.Dispose(); // RST right behind the data
            }).WaitAsync(TestTimeout);
            await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void A_descriptor_closed_while_registered_and_reused_at_once_gets_only_its_own_events()
    {
        RunOnEpoll(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            for (int round = 0; round < 50; round++)
            {
                Task<Connection> accept = listener.AcceptAsync().AsTask();
                using Socket peer = await Task.Run(() => ConnectPlain(listener.LocalEndPoint)).WaitAsync(TestTimeout);
                Connection first = await accept.WaitAsync(TestTimeout);
                Task pendingRead = first.Input.ReadAsync().AsTask(); // registered and waiting
                first.Abort();                                      // its descriptor closes now...
                await pendingRead.ContinueWith(_ => { }).WaitAsync(TestTimeout);

                // ...and the next connection may get the same descriptor number: its bytes must reach it, and only it.
                accept = listener.AcceptAsync().AsTask();
                using Socket nextPeer = await Task.Run(() => ConnectPlain(listener.LocalEndPoint)).WaitAsync(TestTimeout);
                await using Connection next = await accept.WaitAsync(TestTimeout);
                byte[] payload = RandomPayload(100, round);
                await Task.Run(() => nextPeer.Send(payload)).WaitAsync(TestTimeout);
                Assert.Equal(payload, await ReadExactlyAsync(next.Input, payload.Length).WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void Fifteen_hundred_connections_at_once_all_echo()
    {
        RunOnEpoll(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 2048 });
            var servers = new List<Task>();
            Task serve = AcceptAllAsync();

            async Task AcceptAllAsync()
            {
                for (int i = 0; i < 1500; i++)
                {
                    Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
                    servers.Add(EchoOnceAsync(server));
                }
            }

            var clients = new Connection[1500];
            for (int i = 0; i < clients.Length; i++)
            {
                clients[i] = await loop.ConnectTcpAsync(listener.LocalEndPoint).AsTask().WaitAsync(TestTimeout);
            }

            await serve.WaitAsync(TestTimeout); // 3,000 descriptors registered at once, far past select's 1,024
            await Task.WhenAll(clients.Select(async (client, i) =>
            {
                byte[] message = BitConverter.GetBytes(i * 7919);
                await client.Output.WriteAsync(message);
                Assert.Equal(message, await ReadExactlyAsync(client.Input, message.Length));
                await client.DisposeAsync();
            })).WaitAsync(TimeSpan.FromMinutes(1));
            await Task.WhenAll(servers).WaitAsync(TestTimeout);
        });

        static async Task EchoOnceAsync(Connection connection)
        {
            await using (connection)
            {
                byte[] message = await ReadExactlyAsync(connection.Input, 4);
                await connection.Output.WriteAsync(message);
            }
        }
    }

    [Fact]
    public void The_poll_wakes_for_a_post_and_for_a_timer_while_sockets_are_idle()
    {
        RunOnEpoll(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort); // registered, idle

            // A timer due while the loop sits in epoll_wait.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await loop.DelayAsync(TimeSpan.FromMilliseconds(30)).WaitAsync(TestTimeout);
            Assert.True(clock.ElapsedMilliseconds >= 29);

            // A post from another thread while it waits with no timer at all.
            var posted = new TaskCompletionSource<int>();
            _ = Task.Run(() => loop.CallSoonThreadSafe(() => posted.SetResult(Environment.CurrentManagedThreadId)));
            Assert.Equal(Environment.CurrentManagedThreadId, await posted.Task.WaitAsync(TestTimeout));
        });
    }
}
