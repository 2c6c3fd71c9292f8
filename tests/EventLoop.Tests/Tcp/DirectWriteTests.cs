using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using EventLoop.Transports;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// <see cref="PipeWriter.WriteAsync"/> on a connection's output sends the caller's buffer straight to the socket when
/// nothing is queued before it (the libuv loop and the managed loop's epoll; the portable socket transport always goes
/// through the pipe). What must hold either way: bytes arrive in the order they were written, whether they were written
/// and not yet flushed, are still being sent from the pipe, or the socket took only part of a buffer; a write from
/// another thread goes through the pipe; a completed writer refuses writes as the pipe's does.
/// </summary>
public abstract class DirectWriteTests : LoopTestBase
{
    /// <summary>Whether this transport has the direct path (the portable socket transport does not).</summary>
    protected virtual bool WritesDirectly => true;

    private static long DirectWrites(Connection connection) => ((LoopConnection)connection).DirectWriteCount;

    [Fact]
    public void WriteAsync_with_nothing_queued_sends_the_buffer_itself_and_completes_at_once()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                byte[] payload = RandomPayload(1024, seed: 1);
                ValueTask<FlushResult> write = server.Output.WriteAsync(payload);
                Assert.True(write.IsCompletedSuccessfully, "a 1 KiB write to an idle connection did not complete at once");
                Assert.False((await write).IsCompleted);
                Assert.Equal(WritesDirectly ? 1 : 0, DirectWrites(server));

                Assert.Equal(payload, await ReadExactlyAsync(client.Input, payload.Length).WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void Bytes_written_and_not_yet_flushed_go_out_before_a_later_WriteAsync()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                // Written through GetSpan/Advance and not flushed: the pipe holds them, the send pump is idle.
                server.Output.Write("first,"u8);
                await server.Output.WriteAsync(Encoding.ASCII.GetBytes("second,"));
                await server.Output.WriteAsync(Encoding.ASCII.GetBytes("third"));
                Assert.Equal(WritesDirectly ? 1 : 0, DirectWrites(server)); // only "third" found nothing queued

                byte[] received = await ReadExactlyAsync(client.Input, "first,second,third".Length).WaitAsync(TestTimeout);
                Assert.Equal("first,second,third", Encoding.ASCII.GetString(received));
            }
        });
    }

    [Fact]
    public void A_write_while_the_rest_of_an_earlier_buffer_waits_in_the_pipe_queues_behind_it()
    {
        RunLoop(async loop =>
        {
            // A plain blocking socket as the peer, so the test frees room in the server's socket without the loop
            // running: the rest of the first buffer is then still in the pipe (the pump waits for the writable event)
            // while the socket could take more. The next write must queue behind that rest, not go to the socket.
            var serverOptions = new TcpOptions { OutputPauseThreshold = 32 * 1024 * 1024, OutputResumeThreshold = 16 * 1024 * 1024 };
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, serverOptions);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            using System.Net.Sockets.Socket peer = ConnectPlain(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(TestTimeout);

            byte[] first = RandomPayload(8 * 1024 * 1024, seed: 2);
            byte[] second = RandomPayload(4096, seed: 3);
            ValueTask<FlushResult> firstWrite = server.Output.WriteAsync(first);
            Assert.True(firstWrite.IsCompletedSuccessfully, "the flush waited although the pause threshold is 32 MiB");

            // Synchronously, on the loop thread: the loop cannot run the server's writable event meanwhile.
            byte[] head = ReceiveExactly(peer, 1024 * 1024);
            await server.Output.WriteAsync(second);

            byte[] rest = await Task.Run(() => ReceiveExactly(peer, first.Length - head.Length + second.Length)).WaitAsync(TestTimeout);
            byte[] received = [.. head, .. rest];
            Assert.True(first.AsSpan().SequenceEqual(received.AsSpan(0, first.Length)), "the first buffer arrived damaged or overtaken");
            Assert.True(second.AsSpan().SequenceEqual(received.AsSpan(first.Length)), "the second buffer arrived damaged");
            if (WritesDirectly)
            {
                Assert.Equal(1, DirectWrites(server)); // the first buffer's head only
            }
        });
    }

    [Fact]
    public void WriteAsync_from_another_thread_goes_through_the_pipe_in_order()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                byte[] payload = RandomPayload(200_000, seed: 3);
                await Task.Run(async () =>
                {
                    for (int offset = 0; offset < payload.Length; offset += 10_000)
                    {
                        await server.Output.WriteAsync(payload.AsMemory(offset, 10_000));
                    }
                }).WaitAsync(TestTimeout);

                Assert.Equal(0, DirectWrites(server)); // never off the loop thread
                Assert.Equal(payload, await ReadExactlyAsync(client.Input, payload.Length).WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void CancelPendingFlush_with_no_flush_pending_cancels_the_next_WriteAsync_as_the_pipe_does()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                server.Output.CancelPendingFlush();
                FlushResult cancelled = await server.Output.WriteAsync(Encoding.ASCII.GetBytes("one,"));
                Assert.True(cancelled.IsCanceled, "the cancellation requested before the write was lost");
                FlushResult next = await server.Output.WriteAsync(Encoding.ASCII.GetBytes("two"));
                Assert.False(next.IsCanceled);

                // The cancelled flush still wrote its bytes; the flush after it sends them, in order.
                Assert.Equal("one,two", Encoding.ASCII.GetString(await ReadExactlyAsync(client.Input, "one,two".Length).WaitAsync(TestTimeout)));
            }
        });
    }

    [Fact]
    public void WriteAsync_after_the_writer_completed_throws_as_the_pipe_does()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                await server.Output.CompleteAsync();
                await Assert.ThrowsAsync<InvalidOperationException>(async () => await server.Output.WriteAsync(new byte[] { 1 }));
                Assert.Empty(await ReadToEndAsync(client.Input).WaitAsync(TestTimeout)); // FIN, and nothing before it
                Assert.Equal(0, DirectWrites(server));
            }
        });
    }
}

public sealed class ManagedDirectWriteTests : DirectWriteTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvDirectWriteTests : DirectWriteTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedSocketsDirectWriteTests : DirectWriteTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();

    protected override bool WritesDirectly => false;
}
