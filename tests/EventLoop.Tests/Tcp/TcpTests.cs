using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace EventLoop.Tests.Tcp;

public abstract class TcpTests : LoopTestBase
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);

    /// <summary>Serves an echo on every accepted connection until the listener is disposed.</summary>
    private static async Task ServeEchoAsync(ConnectionListener listener)
    {
        var connections = new List<Task>();
        await foreach (Connection connection in listener)
        {
            connections.Add(EchoAsync(connection));
        }

        await Task.WhenAll(connections);
    }

    private static async Task EchoAsync(Connection connection)
    {
        await using (connection)
        {
            try
            {
                await connection.Input.CopyToAsync(connection.Output);
            }
            catch (IOException)
            {
                // A client that resets is not the server's failure.
            }
        }
    }

    private static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count)
    {
        ReadResult result = await reader.ReadAtLeastAsync(count);
        if (result.Buffer.Length < count)
        {
            throw new EndOfStreamException($"wanted {count} bytes, got {result.Buffer.Length}");
        }

        byte[] bytes = result.Buffer.Slice(0, count).ToArray();
        reader.AdvanceTo(result.Buffer.GetPosition(count));
        return bytes;
    }

    [Fact]
    public void Small_messages_echo_and_endpoints_are_reported()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task server = ServeEchoAsync(listener);
            await using (Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint))
            {
                Assert.Equal(listener.LocalEndPoint, client.RemoteEndPoint);
                for (int i = 0; i < 100; i++)
                {
                    byte[] message = Encoding.UTF8.GetBytes($"hello {i}");
                    await client.Output.WriteAsync(message);
                    Assert.Equal(message, await ReadExactlyAsync(client.Input, message.Length));
                }
            }

            await listener.DisposeAsync();
            await server;
        });
    }

    [Fact]
    public void A_16_MiB_payload_echoes_intact()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task server = ServeEchoAsync(listener);
            byte[] payload = new byte[16 * 1024 * 1024];
            new Random(7).NextBytes(payload);
            await using (Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint))
            {
                Task send = Send();
                byte[] echoed = await ReadExactlyAsync(client.Input, payload.Length);
                await send;
                Assert.Equal(SHA256.HashData(payload), SHA256.HashData(echoed));

                async Task Send()
                {
                    for (int offset = 0; offset < payload.Length; offset += 64 * 1024)
                    {
                        await client.Output.WriteAsync(payload.AsMemory(offset, 64 * 1024));
                    }
                }
            }

            await listener.DisposeAsync();
            await server;
        });
    }

    [Fact]
    public void A_thousand_concurrent_connections_each_get_their_own_replies()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 1024 });
            Task server = ServeEchoAsync(listener);
            var clients = Enumerable.Range(0, 1000).Select(async i =>
            {
                await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
                for (int round = 0; round < 3; round++)
                {
                    byte[] message = Encoding.UTF8.GetBytes($"client {i} round {round};");
                    await client.Output.WriteAsync(message);
                    Assert.Equal(message, await ReadExactlyAsync(client.Input, message.Length));
                }
            }).ToList();
            await Task.WhenAll(clients);
            await listener.DisposeAsync();
            await server;
        });
    }

    [Fact]
    public void A_storm_of_short_lived_connections_never_crosses_replies()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 1024 });
            Task server = ServeEchoAsync(listener);
            var gate = new AsyncSemaphore(200);
            int crossed = 0;
            var storm = Enumerable.Range(0, 10_000).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
                    byte[] message = Encoding.UTF8.GetBytes($"<{i}:{Guid.NewGuid()}>");
                    await client.Output.WriteAsync(message);
                    byte[] reply = await ReadExactlyAsync(client.Input, message.Length);
                    if (!message.AsSpan().SequenceEqual(reply))
                    {
                        crossed++;
                    }
                }
                finally
                {
                    gate.Release();
                }
            }).ToList();
            await Task.WhenAll(storm);
            Assert.Equal(0, crossed);
            await listener.DisposeAsync();
            await server;
        });
    }

    [Fact]
    public void Half_close_lets_the_peer_see_end_of_stream_and_still_answer()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task server = Server();
            await using (Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint))
            {
                await client.Output.WriteAsync(Encoding.UTF8.GetBytes("question"));
                await client.ShutdownSendAsync();
                ReadResult answer;
                do
                {
                    answer = await client.Input.ReadAsync();
                    client.Input.AdvanceTo(answer.Buffer.Start, answer.Buffer.End);
                }
                while (!answer.IsCompleted);
                Assert.Equal("heard 8 bytes", Encoding.UTF8.GetString(answer.Buffer.ToArray()));
            }

            await server;

            async Task Server()
            {
                await using Connection connection = await listener.AcceptAsync();
                long heard = 0;
                while (true)
                {
                    ReadResult read = await connection.Input.ReadAsync();
                    heard += read.Buffer.Length;
                    connection.Input.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted)
                    {
                        break; // the client's FIN
                    }
                }

                await connection.Output.WriteAsync(Encoding.UTF8.GetBytes($"heard {heard} bytes"));
            }
        });
    }

    [Fact]
    public void A_peer_reset_surfaces_as_an_IOException_on_the_pipe_and_other_connections_go_on()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await raw.ConnectAsync(listener.LocalEndPoint);
            await using Connection victim = await listener.AcceptAsync();
            await using Connection bystander = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            Task echo = EchoAsync(await listener.AcceptAsync());

            Task<Exception?> victimSide = ReadUntilFailure(victim);
            await raw.SendAsync(new byte[] { 1, 2, 3 });
            raw.LingerState = new LingerOption(true, 0);
            raw.Dispose(); // close with RST

            Exception? error = await victimSide;
            Assert.IsAssignableFrom<IOException>(error);

            await bystander.Output.WriteAsync(new byte[] { 42 });
            Assert.Equal([42], await ReadExactlyAsync(bystander.Input, 1));
            await bystander.DisposeAsync();
            await echo;

            async Task<Exception?> ReadUntilFailure(Connection connection)
            {
                try
                {
                    while (true)
                    {
                        ReadResult read = await connection.Input.ReadAsync();
                        connection.Input.AdvanceTo(read.Buffer.End);
                        if (read.IsCompleted)
                        {
                            // The RST may be seen as a close once the data was read; writing then fails.
                            for (int i = 0; i < 100; i++)
                            {
                                await connection.Output.WriteAsync(new byte[1024]);
                                await loop.DelayAsync(TimeSpan.FromMilliseconds(5));
                            }

                            return null;
                        }
                    }
                }
                catch (Exception ex)
                {
                    return ex;
                }
            }
        });
    }

    [Fact]
    public void Connecting_to_a_closed_port_is_refused()
    {
        RunLoop(async loop =>
        {
            EndPoint unused;
            using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                probe.Bind(AnyLoopbackPort);
                unused = probe.LocalEndPoint!; // bound, never listening: nothing accepts there
            }

            var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectTcpAsync(unused));
            Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
        });
    }

    [Fact]
    public void Binding_an_address_in_use_fails_with_AddressAlreadyInUse()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener first = await loop.ListenTcpAsync(AnyLoopbackPort);
            var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.ListenTcpAsync(first.LocalEndPoint));
            Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);
        });
    }

    [Fact]
    public void A_slow_reader_makes_the_writers_flush_wait_and_buffers_stay_bounded()
    {
        RunLoop(async loop =>
        {
            var options = new TcpOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024, InputPauseThreshold = 64 * 1024, InputResumeThreshold = 32 * 1024 };
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            await using Connection writer = await loop.ConnectTcpAsync(listener.LocalEndPoint, options);
            await using Connection slowReader = await listener.AcceptAsync();

            // Nobody reads: the kernel buffers fill, then the pipes, then FlushAsync must wait.
            long written = 0;
            byte[] chunk = new byte[16 * 1024];
            ValueTask<FlushResult> flush = default;
            for (int i = 0; i < 10_000; i++)
            {
                flush = writer.Output.WriteAsync(chunk);
                written += chunk.Length;
                if (!flush.IsCompleted)
                {
                    break;
                }

                await flush;
                await loop.DelayAsync(TimeSpan.Zero); // let the pumps run
            }

            Assert.False(flush.IsCompleted, $"FlushAsync never waited after {written} bytes");
            Assert.True(written < 64 * 1024 * 1024, $"{written} bytes were buffered before FlushAsync waited");

            // Reading releases the writer.
            long read = 0;
            while (!flush.IsCompleted)
            {
                ReadResult result = await slowReader.Input.ReadAsync();
                read += result.Buffer.Length;
                slowReader.Input.AdvanceTo(result.Buffer.End);
            }

            await flush;
            Assert.True(read > 0);
        });
    }

    [Fact]
    public void Disposing_the_listener_leaves_live_connections_working()
    {
        RunLoop(async loop =>
        {
            ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task server = ServeEchoAsync(listener);
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await client.Output.WriteAsync(new byte[] { 1 });
            Assert.Equal([1], await ReadExactlyAsync(client.Input, 1));
            await listener.DisposeAsync();
            await Assert.ThrowsAsync<ObjectDisposedException>(async () => await listener.AcceptAsync());
            await client.Output.WriteAsync(new byte[] { 2 });
            Assert.Equal([2], await ReadExactlyAsync(client.Input, 1));
            await client.DisposeAsync();
            await server;
        });
    }

    [Fact]
    public void Accept_and_read_can_be_cancelled_by_token()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(20), loop.TimeProvider))
            {
                await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await listener.AcceptAsync(cts.Token));
            }

            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await listener.AcceptAsync();
            using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(20), loop.TimeProvider))
            {
                await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await server.Input.ReadAsync(cts.Token));
            }

            // The connection still works after a cancelled read.
            await client.Output.WriteAsync(new byte[] { 9 });
            Assert.Equal([9], await ReadExactlyAsync(server.Input, 1));
        });
    }

    [Fact]
    public void One_small_write_reaches_the_peer_without_further_loop_activity()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await raw.ConnectAsync(listener.LocalEndPoint);
            await using Connection server = await listener.AcceptAsync();
            await server.Output.WriteAsync(new byte[] { 7 });

            // Block the loop thread on purpose: the byte must already be on its way.
            var buffer = new byte[1];
            raw.ReceiveTimeout = 5000;
            Assert.Equal(1, raw.Receive(buffer));
            Assert.Equal(7, buffer[0]);
        });
    }

    [Fact]
    public void A_flooding_peer_that_disconnects_leaves_nothing_buffered()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await raw.ConnectAsync(listener.LocalEndPoint);
            Connection server = await listener.AcceptAsync();
            Task<long> drain = Drain();
            var flood = new byte[1024 * 1024];
            for (int i = 0; i < 8; i++)
            {
                await raw.SendAsync(flood);
            }

            raw.Dispose();
            long drained = await drain;

            async Task<long> Drain()
            {
                long total = 0;
                while (true)
                {
                    ReadResult read = await server.Input.ReadAsync();
                    total += read.Buffer.Length;
                    server.Input.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted)
                    {
                        return total;
                    }
                }
            }

            Assert.Equal(8L * 1024 * 1024, drained);
            await server.DisposeAsync();
            Assert.True(server.ConnectionClosed.IsCancellationRequested);
        });
    }
}

public sealed class ManagedTcpTests : TcpTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTcpTests : TcpTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
