using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// Cancellation of the TCP calls that wait on the peer: a backpressured flush, a half-close still sending, and a
/// listen asked for with a cancelled token. A cancelled wait ends with <see cref="OperationCanceledException"/> and
/// leaves the connection working: what was already written still arrives, whole and in order.
/// </summary>
public abstract class TcpCancellationTests : LoopTestBase
{
    // The writer's flush waits once 64 KiB are buffered; the reader stops reading at 64 KiB until the test reads.
    private static readonly TcpOptions Writer = new() { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024 };
    private static readonly TcpOptions NeverPausingWriter = new() { OutputPauseThreshold = 0, OutputResumeThreshold = 0 };
    private static readonly TcpOptions SlowReader = new() { InputPauseThreshold = 64 * 1024, InputResumeThreshold = 32 * 1024 };

    private static async Task<(ConnectionListener Listener, Connection Client, Connection Server)> ConnectPairAsync(
        Loop loop, TcpOptions serverOptions, TcpOptions clientOptions)
    {
        ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, serverOptions);
        Task<Connection> accept = listener.AcceptAsync().AsTask();
        Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint, clientOptions).AsTask().WaitAsync(TestTimeout);
        Connection server = await accept.WaitAsync(TestTimeout);
        return (listener, client, server);
    }

    /// <summary>
    /// Closes both ends gracefully once a test has passed. Not <c>await using</c>: after a failed assertion a graceful
    /// close would wait for megabytes the peer never reads; left open, the loop's shutdown aborts them instead.
    /// </summary>
    private static async Task CloseAsync(Connection client, Connection server)
    {
        await server.DisposeAsync().AsTask().WaitAsync(TestTimeout);
        await client.DisposeAsync().AsTask().WaitAsync(TestTimeout);
    }

    /// <summary>Reads (and consumes) exactly <paramref name="count"/> bytes; returns their SHA-256.</summary>
    private static async Task<byte[]> ReadAndHashAsync(PipeReader reader, long count)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        while (count > 0)
        {
            ReadResult result = await reader.ReadAsync();
            ReadOnlySequence<byte> buffer = result.Buffer.Slice(0, Math.Min(count, result.Buffer.Length));
            foreach (ReadOnlyMemory<byte> segment in buffer)
            {
                hash.AppendData(segment.Span);
            }

            count -= buffer.Length;
            reader.AdvanceTo(buffer.End);
            if (count > 0 && result.IsCompleted)
            {
                throw new EndOfStreamException($"{count} bytes short");
            }
        }

        return hash.GetHashAndReset();
    }

    [Fact]
    public void A_backpressured_flush_is_cancelled_by_its_token_and_the_connection_goes_on()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop, Writer, SlowReader);
            await using (listener)
            {
                // 8 MiB is more than the socket buffers take while the client reads nothing: the flush waits.
                byte[] payload = RandomPayload(8 * 1024 * 1024, seed: 21);
                using var cts = new CancellationTokenSource();
                Task<FlushResult> flush = server.Output.WriteAsync(payload, cts.Token).AsTask();
                Assert.False(flush.IsCompleted, "the flush did not wait: no backpressure");
                cts.Cancel();
                var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => flush.WaitAsync(TestTimeout));
                Assert.Equal(cts.Token, cancelled.CancellationToken);

                // What the cancelled flush had written still goes out, and the writer can go on.
                byte[] tail = RandomPayload(1000, seed: 22);
                Task<FlushResult> next = server.Output.WriteAsync(tail).AsTask();
                Task<byte[]> received = ReadAndHashAsync(client.Input, payload.Length + tail.Length);
                Assert.False((await next.WaitAsync(TestTimeout)).IsCompleted);
                Assert.Equal(SHA256.HashData([.. payload, .. tail]), await received.WaitAsync(TestTimeout));
                await CloseAsync(client, server);
            }
        });
    }

    [Fact]
    public void A_half_close_still_sending_is_cancelled_by_its_token_and_the_data_and_FIN_still_go_out()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop, NeverPausingWriter, SlowReader);
            await using (listener)
            {
                // The flush never waits (no pause threshold), so the send pump still has megabytes of the 8 MiB to send
                // when the half-close starts: ShutdownSendAsync waits for it, and the client reads nothing yet.
                byte[] payload = RandomPayload(8 * 1024 * 1024, seed: 23);
                Assert.False((await server.Output.WriteAsync(payload).AsTask().WaitAsync(TestTimeout)).IsCompleted);
                using var cts = new CancellationTokenSource();
                Task shutdown = server.ShutdownSendAsync(cts.Token).AsTask();
                Assert.False(shutdown.IsCompleted, "the half-close did not have to wait for the send");
                cts.Cancel();
                var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => shutdown.WaitAsync(TestTimeout));
                Assert.Equal(cts.Token, cancelled.CancellationToken);

                // Only the wait was cancelled: every byte, then the end of stream, still reaches the client.
                Assert.Equal(SHA256.HashData(payload), await ReadAndHashAsync(client.Input, payload.Length).WaitAsync(TestTimeout));
                ReadResult end = await client.Input.ReadAsync().AsTask().WaitAsync(TestTimeout);
                Assert.True(end.IsCompleted && end.Buffer.IsEmpty, "the end of stream did not follow the data");
                client.Input.AdvanceTo(end.Buffer.End);

                // The client's side is still open: the server still receives.
                await client.Output.WriteAsync("still open"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                Assert.Equal("still open"u8.ToArray(), await ReadExactlyAsync(server.Input, 10).WaitAsync(TestTimeout));
                await CloseAsync(client, server);
            }
        });
    }

    [Fact]
    public void ListenTcpAsync_with_a_cancelled_token_binds_nothing()
    {
        RunLoop(async loop =>
        {
            // A port just released: the cancelled listen must leave it free.
            EndPoint endpoint;
            await using (ConnectionListener first = await loop.ListenTcpAsync(AnyLoopbackPort))
            {
                endpoint = first.LocalEndPoint;
            }

            int handles = loop.OpenNativeHandleCount;
            using var cts = new CancellationTokenSource();
            cts.Cancel();
            ValueTask<ConnectionListener> listen = loop.ListenTcpAsync(endpoint, null, cts.Token);
            Assert.True(listen.IsCanceled);
            var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await listen);
            Assert.Equal(cts.Token, cancelled.CancellationToken);
            Assert.Equal(handles, loop.OpenNativeHandleCount);

            // Nothing listens there: a connect is refused, and a listen of the same endpoint succeeds.
            SocketException refused = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectTcpAsync(endpoint).AsTask().WaitAsync(TestTimeout));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
            await using ConnectionListener again = await loop.ListenTcpAsync(endpoint);
            Assert.Equal(endpoint, again.LocalEndPoint);
        });
    }
}

public sealed class ManagedTcpCancellationTests : TcpCancellationTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTcpCancellationTests : TcpCancellationTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
