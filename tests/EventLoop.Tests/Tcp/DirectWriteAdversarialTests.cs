using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using EventLoop.Transports;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// Trying to break the direct write path (<see cref="PipeWriter.WriteAsync"/> on a connection's output sending the
/// caller's buffer itself), with the portable socket transport, which has no such path, as the reference: random mixes
/// of WriteAsync, GetSpan/Advance, FlushAsync and empty writes against a peer that reads slowly, with the caller
/// reusing its buffer as soon as WriteAsync returns; writes from a read continuation (an echo) and from a
/// ConnectionClosed callback; CancelPendingFlush from another thread racing the writes; writes after the writer
/// completed (with an error or not), after ShutdownSendAsync, Abort, DisposeAsync or a peer reset; a child process's
/// standard input, also after the child exited (EPIPE); TLS over the connection.
/// </summary>
public abstract class DirectWriteAdversarialTests : LoopTestBase
{
    private static long DirectWrites(Connection connection) => ((LoopConnection)connection).DirectWriteCount;

    /// <summary>Reads to the end in chunks of random size, yielding the loop at random between them; returns the SHA-256.</summary>
    private static async Task<(byte[] Hash, long Length)> SlowHashToEndAsync(PipeReader reader, int seed)
    {
        var random = new Random(seed);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long length = 0;
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            ReadOnlySequence<byte> buffer = result.Buffer;
            long take = Math.Min(buffer.Length, random.Next(1, 96 * 1024));
            foreach (ReadOnlyMemory<byte> segment in buffer.Slice(0, take))
            {
                hash.AppendData(segment.Span);
            }

            length += take;
            reader.AdvanceTo(buffer.GetPosition(take), buffer.End);
            if (result.IsCompleted && take == buffer.Length)
            {
                return (hash.GetHashAndReset(), length);
            }

            for (int i = random.Next(0, 4) == 0 ? random.Next(1, 20) : 0; i > 0; i--)
            {
                await Task.Yield(); // a pause: the writer runs meanwhile, the socket fills
            }
        }
    }

    [Fact]
    public void A_random_mix_of_writes_flushes_and_empty_writes_to_a_slow_reader_arrives_intact_with_the_buffer_reused_at_once()
    {
        RunLoop(async loop =>
        {
            // Small thresholds: the pipe's backpressure is met often, and the pump is busy and idle in turn.
            var options = new TcpOptions { OutputPauseThreshold = 256 * 1024, OutputResumeThreshold = 64 * 1024 };
            var (listener, client, server) = await ConnectPairAsync(loop, options);
            await using (listener)
            await using (client)
            await using (server)
            {
                Task<(byte[] Hash, long Length)> received = SlowHashToEndAsync(client.Input, seed: 7);
                var random = new Random(11);
                using var sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                byte[] scratch = new byte[1024 * 1024];
                long total = 0;
                for (int i = 0; i < 600; i++)
                {
                    int size = random.Next(0, 5) switch
                    {
                        0 => 0,
                        1 => random.Next(1, 64),
                        2 => random.Next(64, 16 * 1024),
                        3 => random.Next(16 * 1024, 256 * 1024),
                        _ => random.Next(256 * 1024, scratch.Length),
                    };
                    random.NextBytes(scratch.AsSpan(0, size));
                    sent.AppendData(scratch, 0, size);
                    total += size;
                    switch (random.Next(0, 4))
                    {
                        case 0:
                            // Written and not flushed: the next WriteAsync must queue behind it.
                            Span<byte> span = server.Output.GetSpan(Math.Max(size, 1));
                            int chunk = Math.Min(size, span.Length);
                            scratch.AsSpan(0, chunk).CopyTo(span);
                            server.Output.Advance(chunk);
                            if (chunk < size)
                            {
                                server.Output.Write(scratch.AsSpan(chunk, size - chunk));
                            }

                            if (random.Next(0, 2) == 0)
                            {
                                Assert.False((await server.Output.FlushAsync().AsTask().WaitAsync(TestTimeout)).IsCompleted);
                            }

                            break;
                        default:
                            ValueTask<FlushResult> write = server.Output.WriteAsync(scratch.AsMemory(0, size));
                            scratch.AsSpan(0, size).Fill(0xEE); // the caller's buffer is its own again once WriteAsync returns
                            FlushResult result = await write.AsTask().WaitAsync(TestTimeout);
                            Assert.False(result.IsCompleted || result.IsCanceled);
                            break;
                    }
                }

                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                var (hash, length) = await received.WaitAsync(TestTimeout);
                Assert.Equal(total, length);
                Assert.Equal(sent.GetHashAndReset(), hash);
                Assert.Equal(total, loop.BytesWritten); // each byte counted once, whether sent directly, by the pump, or split
            }
        });
    }

    [Fact]
    public void An_echo_that_writes_from_its_read_continuation_returns_random_sized_writes_intact()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                await AssertEchoedIntactAsync(client, server, count: 300, random => random.Next(1, 200 * 1024), payloadSeed: 0, readerSeed: 5, sizeSeed: 3);
            }
        });
    }

    /// <summary>
    /// The server echoes (<see cref="EchoWithWriteAsync"/>) while the client writes <paramref name="count"/> random payloads
    /// of the sizes <paramref name="size"/> draws, half-closes, and reads the echo slowly: every byte back, in order (SHA-256).
    /// </summary>
    private static async Task AssertEchoedIntactAsync(Connection client, Connection server, int count, Func<Random, int> size, int payloadSeed, int readerSeed, int sizeSeed)
    {
        Task echo = EchoWithWriteAsync(server);
        Task<(byte[] Hash, long Length)> received = SlowHashToEndAsync(client.Input, seed: readerSeed);
        var random = new Random(sizeSeed);
        using var sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            byte[] chunk = RandomPayload(size(random), seed: payloadSeed + i);
            sent.AppendData(chunk);
            total += chunk.Length;
            await client.Output.WriteAsync(chunk).AsTask().WaitAsync(TestTimeout);
        }

        await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
        await echo.WaitAsync(TestTimeout);
        var (hash, length) = await received.WaitAsync(TestTimeout);
        Assert.Equal(total, length);
        Assert.Equal(sent.GetHashAndReset(), hash);
    }

    /// <summary>Echoes each segment with its own WriteAsync (inline in the transport's receive), then half-closes.</summary>
    private static async Task EchoWithWriteAsync(Connection connection)
    {
        while (true)
        {
            ReadResult result = await connection.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                FlushResult flush = await connection.Output.WriteAsync(segment);
                Assert.False(flush.IsCompleted || flush.IsCanceled);
            }

            connection.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await connection.ShutdownSendAsync();
    }

    [Fact]
    public void A_write_from_a_ConnectionClosed_callback_reaches_the_peer_after_what_was_written_before()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                server.Output.Write("queued,"u8); // not flushed: the callback's write must go after it
                bool wrote = false;
                using CancellationTokenRegistration registration = server.ConnectionClosed.Register(() =>
                {
                    ValueTask<FlushResult> write = server.Output.WriteAsync(Encoding.ASCII.GetBytes("bye"));
                    wrote = write.IsCompletedSuccessfully;
                });

                await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout); // the server's input ends: ConnectionClosed
                Assert.Empty(await ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
                Assert.True(wrote, "the write from the callback did not complete at once");
                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                Assert.Equal("queued,bye", Encoding.ASCII.GetString(await ReadToEndAsync(client.Input).WaitAsync(TestTimeout)));
            }
        });
    }

    [Fact]
    public void CancelPendingFlush_from_another_thread_is_never_lost_by_a_direct_write_racing_it()
    {
        // CancelPendingFlush is thread-safe on a pipe: once it returned, the next WriteAsync that starts reports
        // IsCanceled (unless an earlier one already did). Another thread cancels, over and over, while the loop
        // writes small buffers as fast as it can (direct writes, most of them); each cancellation must show.
        const int Cancellations = 10_000;
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                Task<(byte[] Hash, long Length)> drain = SlowHashToEndAsync(client.Input, seed: 1);
                using var observed = new SemaphoreSlim(0);
                int issued = 0;
                using var stop = new CancellationTokenSource();
                var canceller = new Thread(() =>
                {
                    for (int i = 0; i < Cancellations; i++)
                    {
                        server.Output.CancelPendingFlush();
                        Volatile.Write(ref issued, i + 1);
                        try
                        {
                            if (!observed.Wait(TestTimeout, stop.Token))
                            {
                                return;
                            }
                        }
                        catch (OperationCanceledException)
                        {
                            return; // the loop's side failed
                        }
                    }
                });
                canceller.Start();
                int seen = 0;
                byte[] one = [42];
                long writes = 0;
                try
                {
                    while (seen < Cancellations)
                    {
                        // Cancellations that returned and were not yet reported (below 0 when one was reported before its
                        // CancelPendingFlush had returned).
                        int pending = Volatile.Read(ref issued) - seen;
                        FlushResult result = await server.Output.WriteAsync(one).AsTask().WaitAsync(TestTimeout);
                        writes++;
                        if (result.IsCanceled)
                        {
                            seen++;
                            observed.Release();
                        }
                        else
                        {
                            Assert.True(pending <= 0, $"cancellation {seen + 1} returned before write {writes} started, which did not report it");
                        }

                        if (writes % 256 == 0)
                        {
                            await Task.Yield(); // the reader runs
                        }
                    }
                }
                finally
                {
                    stop.Cancel();
                    canceller.Join();
                }

                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                Assert.Equal(writes, (await drain.WaitAsync(TestTimeout)).Length);
            }
        });
    }

    [Fact]
    public void WriteAsync_after_the_writer_completed_with_an_error_throws_as_the_pipe_does_and_sends_nothing()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                await server.Output.WriteAsync("before"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                Assert.Equal("before", Encoding.ASCII.GetString(await ReadExactlyAsync(client.Input, 6).WaitAsync(TestTimeout)));
                long direct = DirectWrites(server);

                await server.Output.CompleteAsync(new InvalidDataException("the application failed"));
                await Assert.ThrowsAsync<InvalidOperationException>(async () => await server.Output.WriteAsync("after"u8.ToArray()));
                Assert.Equal(direct, DirectWrites(server)); // "after" never went to the socket

                await server.DisposeAsync().AsTask().WaitAsync(TestTimeout);
                byte[] rest = [];
                try
                {
                    rest = await ReadToEndAsync(client.Input).WaitAsync(TestTimeout);
                }
                catch (ConnectionResetException)
                {
                    // A close after a failed send may reset; either way nothing more was sent.
                }

                Assert.Empty(rest);
            }
        });
    }

    public enum Ending
    {
        Abort,
        Dispose,
        Complete,
        PeerReset,
    }

    [Theory]
    [InlineData(Ending.Abort, "TimeoutException", "TimeoutException")]
    [InlineData(Ending.Dispose, "InvalidOperationException", "InvalidOperationException")]
    [InlineData(Ending.Complete, "InvalidOperationException", "InvalidOperationException")]
    [InlineData(Ending.PeerReset, "sent", "ConnectionResetException")] // the first write meets the reset in the pump, after it returned
    public void After_the_connection_ended_WriteAsync_fails_as_the_portable_transports_does(Ending ending, string first, string later)
    {
        // The expectations are what the portable socket transport (no direct path) does.
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                await server.Output.WriteAsync(new byte[] { 1 }).AsTask().WaitAsync(TestTimeout); // the pump has run once, and is idle
                Task disposing = Task.CompletedTask;
                switch (ending)
                {
                    case Ending.Abort:
                        server.Abort(new TimeoutException("the application's reason"));
                        break;
                    case Ending.Dispose:
                        disposing = server.DisposeAsync().AsTask();
                        break;
                    case Ending.Complete:
                        server.Output.Complete();
                        break;
                    case Ending.PeerReset:
                        client.Abort();
                        await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
                        break;
                }

                var outcomes = new List<string>();
                foreach (int size in new[] { 100_000, 1, 3_000_000 })
                {
                    try
                    {
                        FlushResult result = await server.Output.WriteAsync(new byte[size]).AsTask().WaitAsync(TestTimeout);
                        Assert.False(result.IsCompleted || result.IsCanceled);
                        outcomes.Add("sent");
                    }
                    catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
                    {
                        outcomes.Add(ex.GetType().Name);
                    }
                }

                Assert.Equal([first, later, later], outcomes);
                await disposing.WaitAsync(TestTimeout);
            }
        });
    }

    [Fact]
    public void WriteAsync_after_ShutdownSendAsync_throws_and_the_peer_sees_exactly_what_came_before_the_FIN()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                byte[] payload = RandomPayload(3 * 1024 * 1024 + 17, seed: 9);
                ValueTask<FlushResult> write = server.Output.WriteAsync(payload); // partly direct, the rest in the pipe
                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                Assert.False((await write.AsTask().WaitAsync(TestTimeout)).IsCanceled);
                await Assert.ThrowsAsync<InvalidOperationException>(async () => await server.Output.WriteAsync(new byte[] { 1, 2, 3 }));
                await Assert.ThrowsAsync<InvalidOperationException>(async () => await server.Output.WriteAsync(ReadOnlyMemory<byte>.Empty));
                Assert.Equal(payload, await ReadToEndAsync(client.Input).WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void WriteAsync_with_a_cancelled_token_behaves_as_the_pipe_and_the_stream_stays_in_order()
    {
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                using var cancelled = new CancellationTokenSource();
                cancelled.Cancel();
                bool threw = false;
                try
                {
                    await server.Output.WriteAsync("one,"u8.ToArray(), cancelled.Token);
                }
                catch (OperationCanceledException)
                {
                    threw = true;
                }

                await server.Output.WriteAsync("two"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                string received = Encoding.ASCII.GetString(await ReadToEndAsync(client.Input).WaitAsync(TestTimeout));

                // The reference: a plain pipe given the same two writes. Whatever it does with the cancelled one, the
                // connection's writer does too.
                var (pipeThrew, pipeText) = await PipeReferenceAsync();
                Assert.Equal(pipeThrew, threw);
                Assert.Equal(pipeText, received);
            }
        });
    }

    private static async Task<(bool Threw, string Text)> PipeReferenceAsync()
    {
        var pipe = new Pipe();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        bool threw = false;
        try
        {
            await pipe.Writer.WriteAsync("one,"u8.ToArray(), cancelled.Token);
        }
        catch (OperationCanceledException)
        {
            threw = true;
        }

        await pipe.Writer.WriteAsync("two"u8.ToArray());
        await pipe.Writer.CompleteAsync();
        return (threw, Encoding.ASCII.GetString(await ReadToEndAsync(pipe.Reader)));
    }

    [Fact]
    public void A_child_processes_standard_input_takes_a_mix_of_large_and_small_writes_in_order()
    {
        RunLoop(async loop =>
        {
            await using LoopProcess cat = loop.StartProcess("cat", null, new LoopProcessOptions
            {
                StandardInput = ProcessStdio.Pipe,
                StandardOutput = ProcessStdio.Pipe,
                StandardError = ProcessStdio.Inherit,
            });
            Task<(byte[] Hash, long Length)> received = SlowHashToEndAsync(cat.StandardOutput!, seed: 2);
            var random = new Random(17);
            using var sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long total = 0;
            PipeWriter stdin = cat.StandardInput!;
            for (int i = 0; i < 200; i++)
            {
                byte[] chunk = RandomPayload(random.Next(0, 3) == 0 ? random.Next(128 * 1024, 1024 * 1024) : random.Next(0, 300), seed: 100 + i);
                sent.AppendData(chunk);
                total += chunk.Length;
                if (random.Next(0, 5) == 0)
                {
                    stdin.Write(chunk); // buffered, not flushed
                }
                else
                {
                    await stdin.WriteAsync(chunk).AsTask().WaitAsync(TestTimeout);
                }
            }

            await stdin.CompleteAsync();
            var (hash, length) = await received.WaitAsync(TestTimeout);
            Assert.Equal(0, (await cat.WaitForExitAsync().WaitAsync(TestTimeout)).ExitCode);
            Assert.Equal(total, length);
            Assert.Equal(sent.GetHashAndReset(), hash);
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(70_000)]
    [InlineData(1_000_000)]
    public void Writing_to_the_standard_input_of_a_child_that_exited_fails_as_the_portable_transports_does(int size)
    {
        RunLoop(async loop =>
        {
            await using LoopProcess head = loop.StartProcess("head", ["-c", "10"], new LoopProcessOptions
            {
                StandardInput = ProcessStdio.Pipe,
                StandardOutput = ProcessStdio.Pipe,
                StandardError = ProcessStdio.Inherit,
            });
            await head.StandardInput!.WriteAsync(new byte[20]).AsTask().WaitAsync(TestTimeout);
            Assert.Equal(10, (await ReadToEndAsync(head.StandardOutput!).WaitAsync(TestTimeout)).Length);
            await head.WaitForExitAsync().WaitAsync(TestTimeout); // the read end is closed: EPIPE

            // As on the portable transport: the first write returns before the pump meets EPIPE, the next ones throw it.
            FlushResult first = await head.StandardInput!.WriteAsync(new byte[size]).AsTask().WaitAsync(TestTimeout);
            Assert.False(first.IsCompleted || first.IsCanceled);
            for (int i = 0; i < 3; i++)
            {
                await Assert.ThrowsAsync<ConnectionResetException>(async () => await head.StandardInput!.WriteAsync(new byte[size]).AsTask().WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void A_TLS_echo_of_random_sized_writes_returns_them_intact()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, Tls.TestCertificates.Server());
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, Tls.TestCertificates.Client()).AsTask().WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            await AssertEchoedIntactAsync(client, server, count: 150, random => random.Next(0, 2) == 0 ? random.Next(1, 100) : random.Next(100, 300 * 1024),
                payloadSeed: 200, readerSeed: 8, sizeSeed: 23);
        });
    }
}

public sealed class ManagedDirectWriteAdversarialTests : DirectWriteAdversarialTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvDirectWriteAdversarialTests : DirectWriteAdversarialTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedSocketsDirectWriteAdversarialTests : DirectWriteAdversarialTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}
