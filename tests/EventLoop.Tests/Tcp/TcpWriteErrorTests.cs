using System.Buffers;
using System.IO.Pipelines;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// Send-side failures other than a full socket: writing to a connection whose peer has reset, a large write
/// still in flight (libuv: a queued <c>uv_write</c>, not <c>uv_try_write</c>; managed: a pending send) when the
/// peer resets, and half-closing a connection the peer reset (libuv's <c>uv_shutdown</c> meets ENOTCONN). The
/// writer's flush fails with <see cref="ConnectionResetException"/>; nothing reaches the loop's exception handler,
/// and every handle and request is freed.
/// </summary>
public abstract class TcpWriteErrorTests : LoopTestBase
{
    private static Task WhenCancelled(CancellationToken token)
    {
        var completion = new TaskCompletionSource();
        token.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), completion);
        return completion.Task;
    }

    /// <summary>
    /// Writes and flushes a byte at a time, giving the loop a turn between flushes, until a flush throws. The
    /// write that meets the reset fails in the send pump, which may run after the flush that fed it returned:
    /// the documented failure is on that flush if it is still pending, else on the next one.
    /// </summary>
    private static async Task WriteUntilItFailsAsync(PipeWriter output)
    {
        byte[] one = [42];
        for (int i = 0; i < 1_000_000; i++)
        {
            FlushResult flush = await output.WriteAsync(one);
            Assert.False(flush.IsCompleted, "the output completed without an error");
            await Task.Yield();
        }
    }

    [Fact]
    public void Writing_to_a_connection_whose_peer_reset_fails_the_flush_with_ConnectionResetException()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (server)
            {
                client.Abort(); // RST
                await client.DisposeAsync();

                // The server's read side has seen the reset...
                var readError = await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
                await WhenCancelled(server.ConnectionClosed).WaitAsync(TestTimeout);

                // ...and writing now fails the same way: uv_try_write / send meet EPIPE or ECONNRESET.
                await Assert.ThrowsAsync<ConnectionResetException>(() => WriteUntilItFailsAsync(server.Output).WaitAsync(TestTimeout));

                // Later flushes keep failing with it.
                await Assert.ThrowsAsync<ConnectionResetException>(async () => await server.Output.WriteAsync(new byte[] { 1 }).AsTask().WaitAsync(TestTimeout));
                Assert.NotNull(readError.InnerException);
            }
        });
    }

    [Fact]
    public void A_large_write_in_flight_when_the_peer_resets_fails_that_flush_with_ConnectionResetException()
    {
        RunLoop(async loop =>
        {
            // The server's flush waits once 64 KiB are buffered; the client reads at most 16 KiB and then stops.
            var serverOptions = new TcpOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024 };
            var clientOptions = new TcpOptions { InputPauseThreshold = 16 * 1024, InputResumeThreshold = 8 * 1024 };
            var (listener, client, server) = await ConnectPairAsync(loop, serverOptions, clientOptions);
            await using (listener)
            {
                // Far more than the kernel's socket buffers hold: the socket takes what it can at once, and the rest
                // goes out as a queued write (libuv's uv_write, a pending send on the managed loop). The flush waits
                // for it: a pending flush means that write is in flight, since the send pump ran inline in this call.
                byte[] payload = RandomPayload(8 * 1024 * 1024, seed: 11);
                Task<FlushResult> flush = server.Output.WriteAsync(payload).AsTask();
                Assert.False(flush.IsCompleted, "8 MiB went out at once: the write never had to wait");

                client.Abort(); // the peer resets with everything unread
                await client.DisposeAsync();

                await Assert.ThrowsAsync<ConnectionResetException>(() => flush.WaitAsync(TestTimeout));
                await Assert.ThrowsAsync<ConnectionResetException>(async () => await server.Output.WriteAsync(new byte[] { 1 }).AsTask().WaitAsync(TestTimeout));

                // The send met the reset first and took the socket's error; the read side then finds only an end of
                // stream, which must still say reset, not look like the peer's clean close. (Not on the portable
                // socket transport: its receive completes on another thread and may find that end of stream before
                // the failed send is reported back to the loop; it is not Linux's default.)
                if (loop is not EventLoop.Managed.ManagedLoop { UsesEpoll: false })
                {
                    await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
                }

                // Disposed only now: had the flush not failed, a graceful close would wait for the unsent megabytes
                // (the loop's shutdown aborts a connection left open instead).
                await server.DisposeAsync().AsTask().WaitAsync(TestTimeout);
            }
        });
    }

    [Fact]
    public void A_write_that_meets_the_reset_first_leaves_the_read_side_reporting_the_reset()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (server)
            {
                client.Abort(); // the RST reaches the server's socket at once (loopback), before the loop looks at it

                // No await in between: the write runs inline in this call, meets the reset and takes the socket's
                // error, so when the loop then reads it finds only an end of stream.
                // (The flush that fed the failing send completes first; the failure is on the next one, as above.)
                ValueTask<FlushResult> write = server.Output.WriteAsync(RandomPayload(1000, seed: 13));
                Assert.True(write.IsCompleted, "the send pump runs inline in the flush");
                await Assert.ThrowsAsync<ConnectionResetException>(async () =>
                {
                    await write;
                    await server.Output.WriteAsync(new byte[] { 1 });
                });
                if (loop is not EventLoop.Managed.ManagedLoop { UsesEpoll: false }) // see the in-flight test
                {
                    await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
                }

                await client.DisposeAsync();
            }
        });
    }

    [Fact]
    public void ShutdownSendAsync_reports_that_what_was_written_could_not_be_sent()
    {
        RunLoop(async loop =>
        {
            var serverOptions = new TcpOptions { OutputPauseThreshold = 0 }; // never pause: the shutdown waits for the send
            var clientOptions = new TcpOptions { InputPauseThreshold = 16 * 1024, InputResumeThreshold = 8 * 1024 };
            var (listener, client, server) = await ConnectPairAsync(loop, serverOptions, clientOptions);
            await using (listener)
            await using (server)
            {
                server.Output.Write(RandomPayload(8 * 1024 * 1024, seed: 12)); // buffered, not yet flushed
                Task shutdown = server.ShutdownSendAsync().AsTask();           // sends it, then the FIN
                client.Abort();                                                // the peer resets with it unread
                await client.DisposeAsync();

                // A clean completion would tell the caller everything went out before the FIN.
                await Assert.ThrowsAsync<ConnectionResetException>(() => shutdown.WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void Half_closing_a_connection_whose_peer_reset_completes_and_frees_everything()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            {
                client.Abort();
                await client.DisposeAsync();
                await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(server.Input).WaitAsync(TestTimeout));

                // The send side is still open here, but the socket is not connected any more: the shutdown (FIN)
                // meets ENOTCONN. Nothing is left to half-close, so it completes; the writer is done.
                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                Assert.Throws<InvalidOperationException>(() => server.Output.GetMemory()); // completed by the shutdown
                await server.DisposeAsync().AsTask().WaitAsync(TestTimeout);
                Assert.Equal(0, loop.OpenNativeRequestCount); // the shutdown request was freed with the handle
            }
        });
    }
}

public sealed class ManagedTcpWriteErrorTests : TcpWriteErrorTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTcpWriteErrorTests : TcpWriteErrorTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedSocketsTcpWriteErrorTests : TcpWriteErrorTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}
