using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// TCP with a peer outside every loop: a plain blocking .NET <see cref="Socket"/>. Each blocking peer runs as a
/// long-running task (a thread of its own, so it never takes a pool thread the managed loop's socket completions
/// need), with send and receive timeouts so a failure ends it. Echo both ways, half-close both ways, a reset
/// from the peer, and 16 MiB each way with checksums.
/// </summary>
public abstract class PlainSocketPeerTests : LoopTestBase
{
    private static readonly int SocketTimeoutMs = (int)TestTimeout.TotalMilliseconds;

    private static Task<T> Blocking<T>(Func<T> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static Task Blocking(Action work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static Socket Plain(Socket socket)
    {
        socket.ReceiveTimeout = SocketTimeoutMs;
        socket.SendTimeout = SocketTimeoutMs;
        return socket;
    }

    /// <summary>Receives until the peer's end of stream (blocking); returns how many bytes came and their SHA-256.</summary>
    private static (long Length, byte[] Hash) ReceiveToEnd(Socket socket)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[64 * 1024];
        long total = 0;
        int n;
        while ((n = socket.Receive(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }

        return (total, hash.GetHashAndReset());
    }

    /// <summary>Copies from <paramref name="from"/> to <paramref name="to"/> until end of stream, then half-closes <paramref name="to"/>.</summary>
    private static async Task PumpAsync(Connection from, Connection to)
    {
        while (true)
        {
            System.IO.Pipelines.ReadResult result = await from.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                await to.Output.WriteAsync(segment);
            }

            from.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await to.ShutdownSendAsync();
                return;
            }
        }
    }

    [Fact]
    public void A_plain_client_gets_its_random_bytes_echoed_by_a_loop_server()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            byte[] payload = RandomPayload(1024 * 1024, seed: 31);

            // The plain client sends on one thread and reads the echo on another (it must read while it sends).
            Task<byte[]> peer = Blocking(() =>
            {
                using Socket socket = Plain(ConnectPlain(listener.LocalEndPoint));
                Task sending = Blocking(() =>
                {
                    socket.Send(payload);
                    socket.Shutdown(SocketShutdown.Send);
                });
                byte[] echoed = ReceiveExactly(socket, payload.Length);
                Assert.Equal(0, socket.Receive(new byte[1])); // the server's FIN follows the echo
                sending.Wait(TestTimeout);
                return echoed;
            });

            await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            await PumpAsync(server, server).WaitAsync(TestTimeout); // echo until the client's FIN, then FIN
            Assert.Equal(payload, await peer.WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void A_loop_client_gets_its_random_bytes_echoed_by_a_plain_server()
    {
        using Socket plainListener = Plain(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        plainListener.Bind(AnyLoopbackPort);
        plainListener.Listen(1);
        RunLoop(async loop =>
        {
            Task<long> plainServer = Blocking(() =>
            {
                using Socket socket = Plain(plainListener.Accept());
                byte[] buffer = new byte[64 * 1024];
                long echoed = 0;
                int n;
                while ((n = socket.Receive(buffer)) > 0)
                {
                    socket.Send(buffer, n, SocketFlags.None);
                    echoed += n;
                }

                socket.Shutdown(SocketShutdown.Send);
                return echoed;
            });

            await using Connection client = await loop.ConnectTcpAsync(plainListener.LocalEndPoint!).AsTask().WaitAsync(TestTimeout);
            byte[] payload = RandomPayload(1024 * 1024, seed: 32);
            Task<byte[]> reading = ReadToEndAsync(client.Input);
            await client.Output.WriteAsync(payload).AsTask().WaitAsync(TestTimeout);
            await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal(payload, await reading.WaitAsync(TestTimeout));
            Assert.Equal(payload.Length, await plainServer.WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void Half_close_from_a_plain_peer_and_to_it_ends_one_direction_only()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var serverSawEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task<(byte[] Answer, int AfterAnswer)> peer = Blocking(() =>
            {
                using Socket socket = Plain(ConnectPlain(listener.LocalEndPoint));
                socket.Send("question"u8.ToArray());
                socket.Shutdown(SocketShutdown.Send); // FIN: the loop side reads the end of stream...
                serverSawEnd.Task.Wait(TestTimeout);
                byte[] answer = ReceiveExactly(socket, 6); // ...and can still answer over its open half
                return (answer, socket.Receive(new byte[16]));
            });

            await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal("question"u8.ToArray(), await ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
            Assert.True(server.ConnectionClosed.IsCancellationRequested); // receiving ended: the peer's FIN
            serverSawEnd.SetResult();
            await server.Output.WriteAsync("answer"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
            await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout); // our FIN

            var (answer, afterAnswer) = await peer.WaitAsync(TestTimeout);
            Assert.Equal("answer"u8.ToArray(), answer);
            Assert.Equal(0, afterAnswer); // the plain peer sees our end of stream

            // The other way round: the loop half-closes first, the plain peer reads to the end and still sends.
            using Socket plainListener = Plain(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            plainListener.Bind(AnyLoopbackPort);
            plainListener.Listen(1);
            Task<byte[]> plainServer = Blocking(() =>
            {
                using Socket socket = Plain(plainListener.Accept());
                byte[] request = ReceiveExactly(socket, 7);
                Assert.Equal(0, socket.Receive(new byte[16])); // the loop's FIN
                socket.Send("reply"u8.ToArray());
                socket.Shutdown(SocketShutdown.Send);
                return request;
            });
            await using Connection client = await loop.ConnectTcpAsync(plainListener.LocalEndPoint!).AsTask().WaitAsync(TestTimeout);
            await client.Output.WriteAsync("request"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
            await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal("reply"u8.ToArray(), await ReadToEndAsync(client.Input).WaitAsync(TestTimeout));
            Assert.Equal("request"u8.ToArray(), await plainServer.WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void A_plain_peer_that_resets_fails_the_loop_sides_read_with_ConnectionResetException()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var partialRead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task peer = Blocking(() =>
            {
                Socket socket = Plain(ConnectPlain(listener.LocalEndPoint));
                socket.Send("partial"u8.ToArray());
                partialRead.Task.Wait(TestTimeout);
                socket.LingerState = new LingerOption(true, 0); // close with RST
                socket.Close();
            });

            await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal("partial"u8.ToArray(), await ReadExactlyAsync(server.Input, 7).WaitAsync(TestTimeout));
            Task<System.IO.Pipelines.ReadResult> pending = server.Input.ReadAsync().AsTask(); // waiting for more when the reset comes
            partialRead.SetResult();
            await peer.WaitAsync(TestTimeout);

            var reset = await Assert.ThrowsAsync<ConnectionResetException>(() => pending.WaitAsync(TestTimeout));
            Assert.Equal(SocketError.ConnectionReset, reset.SocketError);
            Assert.True(server.ConnectionClosed.IsCancellationRequested);
            await Assert.ThrowsAsync<ConnectionResetException>(() => server.Input.ReadAsync().AsTask().WaitAsync(TestTimeout)); // and later reads
        });
    }

    [Fact]
    public void Sixteen_MiB_each_way_with_a_plain_peer_arrive_with_the_same_checksum()
    {
        const int Size = 16 * 1024 * 1024;
        byte[] down = RandomPayload(Size, seed: 33); // loop to plain
        byte[] up = RandomPayload(Size, seed: 34);   // plain to loop
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<(long Length, byte[] Hash)> peer = Blocking(() =>
            {
                using Socket socket = Plain(ConnectPlain(listener.LocalEndPoint));
                Task sending = Blocking(() =>
                {
                    for (int offset = 0; offset < up.Length; offset += 256 * 1024)
                    {
                        socket.Send(up, offset, Math.Min(256 * 1024, up.Length - offset), SocketFlags.None);
                    }

                    socket.Shutdown(SocketShutdown.Send);
                });
                (long Length, byte[] Hash) received = ReceiveToEnd(socket);
                sending.Wait(TestTimeout);
                return received;
            });

            await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            using var upHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Task<long> receiving = ReadAndHashToEndAsync(server, upHash);
            for (int offset = 0; offset < down.Length; offset += 100_000)
            {
                await server.Output.WriteAsync(down.AsMemory(offset, Math.Min(100_000, down.Length - offset))).AsTask().WaitAsync(TestTimeout);
            }

            await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
            Assert.Equal(Size, await receiving.WaitAsync(TestTimeout));
            Assert.Equal(SHA256.HashData(up), upHash.GetHashAndReset());
            var (length, hash) = await peer.WaitAsync(TestTimeout);
            Assert.Equal(Size, length);
            Assert.Equal(SHA256.HashData(down), hash);
        });

        static async Task<long> ReadAndHashToEndAsync(Connection connection, IncrementalHash hash)
        {
            long total = 0;
            while (true)
            {
                System.IO.Pipelines.ReadResult result = await connection.Input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    hash.AppendData(segment.Span);
                }

                total += result.Buffer.Length;
                connection.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return total;
                }
            }
        }
    }
}

public sealed class ManagedPlainSocketPeerTests : PlainSocketPeerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvPlainSocketPeerTests : PlainSocketPeerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
