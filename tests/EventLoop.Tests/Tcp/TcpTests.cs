using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// TCP through <see cref="Connection"/> pipes, written once for every loop policy (issue 4). Peers are the
/// loop's own connections, or plain blocking sockets on the thread pool where the test needs a peer that
/// is outside the loop. Everything binds 127.0.0.1 with port 0.
/// </summary>
public abstract class TcpTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static IPEndPoint AnyLoopbackPort => new(IPAddress.Loopback, 0);

    // ------------------------------------------------------------------ helpers

    /// <summary>Echoes everything until the peer's end of stream, then half-closes; <paramref name="onRead"/> sees each read's size.</summary>
    private static async Task EchoAsync(Connection connection, Action<long>? onRead = null)
    {
        try
        {
            while (true)
            {
                ReadResult result = await connection.Input.ReadAsync();
                onRead?.Invoke(result.Buffer.Length);
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    connection.Output.Write(segment.Span);
                }

                connection.Input.AdvanceTo(result.Buffer.End);
                FlushResult flush = await connection.Output.FlushAsync();
                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>Accepts and echoes every connection until the listener is disposed.</summary>
    private static async Task ServeEchoAsync(ConnectionListener listener, List<Task>? handlers = null)
    {
        await foreach (Connection connection in listener)
        {
            Task handler = EchoAsync(connection);
            handlers?.Add(handler);
        }
    }

    private static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ReadResult result = await reader.ReadAsync(cancellationToken);
            if (result.Buffer.Length >= count)
            {
                byte[] bytes = result.Buffer.Slice(0, count).ToArray();
                reader.AdvanceTo(result.Buffer.GetPosition(count));
                return bytes;
            }

            if (result.IsCompleted)
            {
                throw new EndOfStreamException($"Expected {count} bytes, the stream ended after {result.Buffer.Length}.");
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>Reads to the end of stream and returns how many bytes came.</summary>
    private static async Task<long> ReadToEndAsync(PipeReader reader, IncrementalHash? hash = null)
    {
        long total = 0;
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                hash?.AppendData(segment.Span);
            }

            total += result.Buffer.Length;
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return total;
            }
        }
    }

    private static Task WhenCancelled(CancellationToken token)
    {
        var completion = new TaskCompletionSource();
        token.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), completion);
        return completion.Task;
    }

    private static async Task WriteAsync(Connection connection, byte[] bytes)
    {
        FlushResult flush = await connection.Output.WriteAsync(bytes);
        Assert.False(flush.IsCanceled);
    }

    // ------------------------------------------------------------------ echo

    [Fact]
    public void Echo_of_small_messages_round_trips_each_message_and_names_both_ends()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var endpoint = (IPEndPoint)listener.LocalEndPoint;
            Assert.Equal(IPAddress.Loopback, endpoint.Address);
            Assert.NotEqual(0, endpoint.Port);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(endpoint);
            Connection server = await accept.WaitAsync(Timeout);
            Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
            Assert.Equal(server.LocalEndPoint, client.RemoteEndPoint);
            Task echo = EchoAsync(server);

            int loopThread = Environment.CurrentManagedThreadId;
            for (int i = 0; i < 200; i++)
            {
                byte[] message = Encoding.ASCII.GetBytes($"message {i:D4}");
                await WriteAsync(client, message);
                byte[] reply = await ReadExactlyAsync(client.Input, message.Length).WaitAsync(Timeout);
                Assert.Equal(message, reply);
                Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            }

            await client.ShutdownSendAsync();
            Assert.Equal(0, await ReadToEndAsync(client.Input).WaitAsync(Timeout));
            await echo.WaitAsync(Timeout);
            await client.DisposeAsync();
        });
    }

    [Fact]
    public void Echo_of_a_16_MiB_payload_arrives_whole_with_the_same_checksum()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var handlers = new List<Task>();
            Task serve = ServeEchoAsync(listener, handlers);
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);

            byte[] payload = new byte[16 * 1024 * 1024];
            new Random(42).NextBytes(payload);
            byte[] expected = SHA256.HashData(payload);

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Task<long> reading = ReadToEndAsync(client.Input, hash);
            for (int offset = 0; offset < payload.Length; offset += 100_000)
            {
                int size = Math.Min(100_000, payload.Length - offset);
                await client.Output.WriteAsync(payload.AsMemory(offset, size));
            }

            await client.ShutdownSendAsync().AsTask().WaitAsync(Timeout);
            Assert.Equal(payload.Length, await reading.WaitAsync(Timeout));
            Assert.Equal(expected, hash.GetHashAndReset());
            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
            await Task.WhenAll(handlers).WaitAsync(Timeout);
        });
    }

    [Fact]
    public void A_thousand_concurrent_connections_each_exchange_their_own_data()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 1024 });
            var handlers = new List<Task>();
            Task serve = ServeEchoAsync(listener, handlers);
            var clients = new Connection[1000];
            for (int i = 0; i < clients.Length; i++)
            {
                clients[i] = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            }

            // All open at once; now every one talks.
            await Task.WhenAll(clients.Select(async (client, i) =>
            {
                for (int round = 0; round < 3; round++)
                {
                    byte[] message = Encoding.ASCII.GetBytes($"client {i:D4} round {round}");
                    await WriteAsync(client, message);
                    Assert.Equal(message, await ReadExactlyAsync(client.Input, message.Length));
                }

                await client.DisposeAsync();
            })).WaitAsync(Timeout);

            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
            await Task.WhenAll(handlers).WaitAsync(Timeout);
            Assert.Equal(1000, handlers.Count);
        });
    }

    [Fact]
    public void A_storm_of_ten_thousand_short_lived_connections_each_gets_its_own_reply()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 1024 });
            var handlers = new List<Task>();
            Task serve = ServeEchoAsync(listener, handlers);
            const int Total = 10_000;
            const int AtOnce = 200;
            int next = 0;
            int verified = 0;

            // AtOnce workers, each opening connection after connection: descriptors are reused all the time.
            async Task WorkerAsync()
            {
                while (next < Total)
                {
                    int id = next++;
                    byte[] payload = Encoding.ASCII.GetBytes($"connection {id:D5} payload {id * 7919 % 100_003:D6}");
                    Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
                    try
                    {
                        await WriteAsync(client, payload);
                        await client.ShutdownSendAsync();
                        byte[] reply = await ReadExactlyAsync(client.Input, payload.Length);
                        Assert.Equal(payload, reply);
                        Assert.Equal(0, await ReadToEndAsync(client.Input)); // nothing of anyone else's after it
                        verified++;
                    }
                    finally
                    {
                        await client.DisposeAsync();
                    }
                }
            }

            await Task.WhenAll(Enumerable.Range(0, AtOnce).Select(_ => WorkerAsync())).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(Total, verified);
            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
            await Task.WhenAll(handlers).WaitAsync(Timeout);
        });
    }

    // ------------------------------------------------------------------ closing

    [Fact]
    public void Half_close_lets_the_peer_see_end_of_stream_and_still_send()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(Timeout);

            await WriteAsync(client, "question"u8.ToArray());
            await client.ShutdownSendAsync();

            // The server reads the question and then the end of stream...
            Assert.Equal("question"u8.ToArray(), await ReadExactlyAsync(server.Input, 8).WaitAsync(Timeout));
            Assert.Equal(0, await ReadToEndAsync(server.Input).WaitAsync(Timeout));
            await WhenCancelled(server.ConnectionClosed).WaitAsync(Timeout);

            // ...and can still answer over the open half.
            await WriteAsync(server, "answer"u8.ToArray());
            await server.ShutdownSendAsync();
            Assert.Equal("answer"u8.ToArray(), await ReadExactlyAsync(client.Input, 6).WaitAsync(Timeout));
            Assert.Equal(0, await ReadToEndAsync(client.Input).WaitAsync(Timeout));
        });
    }

    [Fact]
    public void Bytes_sent_right_before_end_of_stream_all_arrive()
    {
        // The peer's bytes and its end of stream wait together in the socket: the transport reads them in one
        // burst of full buffers and then sees the end, and nothing read in the burst may be lost at the end.
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(Timeout);

            byte[] payload = new byte[(300 * 1024) + 123];
            new Random(7).NextBytes(payload);
            await WriteAsync(client, payload);
            await client.ShutdownSendAsync();

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Assert.Equal(payload.Length, await ReadToEndAsync(server.Input, hash).WaitAsync(Timeout));
            Assert.Equal(SHA256.HashData(payload), hash.GetHashAndReset());
        });
    }

    [Fact]
    public void Peer_reset_mid_read_fails_the_read_with_a_ConnectionResetException()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(Timeout);

            await WriteAsync(client, "partial"u8.ToArray());
            Assert.Equal("partial"u8.ToArray(), await ReadExactlyAsync(server.Input, 7).WaitAsync(Timeout));
            ValueTask<ReadResult> pending = server.Input.ReadAsync(); // waiting for more when the reset comes
            client.Abort();

            var reset = await Assert.ThrowsAsync<ConnectionResetException>(async () => await pending.AsTask().WaitAsync(Timeout));
            Assert.Equal(SocketError.ConnectionReset, reset.SocketError);
            Assert.True(server.ConnectionClosed.IsCancellationRequested);
            // The aborting side's own pipes fail with the abort.
            await Assert.ThrowsAsync<ConnectionAbortedException>(() => client.Input.ReadAsync().AsTask().WaitAsync(Timeout));
            await client.DisposeAsync();
        });
    }

    [Fact]
    public void Peer_reset_mid_write_fails_the_writers_flush_with_a_ConnectionResetException()
    {
        RunLoop(async loop =>
        {
            var options = new TcpOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024 };
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(Timeout);

            // The server writes without end; the client reads a little and then resets.
            async Task WriteForeverAsync()
            {
                byte[] chunk = new byte[16 * 1024];
                while (true)
                {
                    FlushResult flush = await server.Output.WriteAsync(chunk);
                    if (flush.IsCompleted)
                    {
                        return;
                    }
                }
            }

            Task writing = WriteForeverAsync();
            await ReadExactlyAsync(client.Input, 100_000).WaitAsync(Timeout);
            client.Abort();

            await Assert.ThrowsAsync<ConnectionResetException>(() => writing.WaitAsync(Timeout));
            await client.DisposeAsync();
        });
    }

    [Fact]
    public void A_peer_that_floods_and_disconnects_leaves_nothing_buffered_behind()
    {
        RunLoop(async loop =>
        {
            var options = new TcpOptions
            {
                InputPauseThreshold = 64 * 1024,
                InputResumeThreshold = 32 * 1024,
                OutputPauseThreshold = 64 * 1024,
                OutputResumeThreshold = 32 * 1024,
            };
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint, options);
            Connection server = await accept.WaitAsync(Timeout);
            long handlesWithBoth = loop.OpenNativeHandleCount;

            // The echo server buffers at most about its thresholds while the flooding peer never reads.
            long largestRead = 0;
            Task echo = EchoAsync(server, length => largestRead = Math.Max(largestRead, length));
            byte[] chunk = new byte[64 * 1024];
            long sent = 0;
            while (true)
            {
                ValueTask<FlushResult> flush = client.Output.WriteAsync(chunk);
                sent += chunk.Length;
                if (!flush.IsCompleted)
                {
                    // Backpressure reached us through the server: the flood is as big as it gets.
                    using var cts = new CancellationTokenSource();
                    Task delay = loop.DelayAsync(TimeSpan.FromMilliseconds(200), cts.Token);
                    Task flushed = flush.AsTask();
                    if (await Task.WhenAny(flushed, delay) != flushed)
                    {
                        break;
                    }

                    cts.Cancel();
                }

                Assert.True(sent < 256L * 1024 * 1024, "the flood never met backpressure");
            }

            client.Abort(); // the flooding peer disconnects with everything unread
            await Assert.ThrowsAsync<ConnectionResetException>(() => echo.WaitAsync(Timeout));
            Assert.True(server.ConnectionClosed.IsCancellationRequested);
            Assert.True(largestRead <= options.InputPauseThreshold + (128 * 1024), $"the server buffered {largestRead} bytes");
            await client.DisposeAsync();
            Assert.Equal(handlesWithBoth - 2, loop.OpenNativeHandleCount); // only the listener is left
        });
    }

    [Fact]
    public void Disposing_the_listener_leaves_live_connections_working()
    {
        RunLoop(async loop =>
        {
            ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            EndPoint endpoint = listener.LocalEndPoint;
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(endpoint);
            Connection server = await accept.WaitAsync(Timeout);
            Task pendingAccept = listener.AcceptAsync().AsTask();

            await listener.DisposeAsync();
            await Assert.ThrowsAsync<ObjectDisposedException>(() => pendingAccept.WaitAsync(Timeout));
            await Assert.ThrowsAsync<ObjectDisposedException>(async () => await listener.AcceptAsync());
            await foreach (Connection unexpected in listener)
            {
                Assert.Fail($"enumerating a disposed listener yielded {unexpected}");
            }

            Task echo = EchoAsync(server);
            await WriteAsync(client, "still here"u8.ToArray());
            Assert.Equal("still here"u8.ToArray(), await ReadExactlyAsync(client.Input, 10).WaitAsync(Timeout));
            await client.ShutdownSendAsync();
            await echo.WaitAsync(Timeout);

            // Nothing listens any more.
            SocketException refused = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectTcpAsync(endpoint));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        });
    }

    [Fact]
    public void The_loop_closes_listeners_and_connections_left_open_when_main_returns()
    {
        Task<ReadResult>? pendingRead = null;
        Task<Connection>? pendingAccept = null;
        RunLoop(async loop =>
        {
            ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            Connection server = await accept.WaitAsync(Timeout);
            await WriteAsync(client, "unread"u8.ToArray());
            pendingRead = client.Input.ReadAsync().AsTask();
            pendingAccept = listener.AcceptAsync().AsTask();
            Assert.True(loop.OpenNativeHandleCount >= 3);
            GC.KeepAlive(server);

            // main returns with all of it open; RunLoop's leak check then requires every handle closed.
        });

        Assert.True(pendingRead!.IsCompleted, "a read pending at shutdown must end");
        Assert.True(pendingAccept!.IsCompleted, "an accept pending at shutdown must end");
        Assert.IsType<ConnectionAbortedException>(Assert.Throws<AggregateException>(() => pendingRead.Wait(0)).InnerException); // the shutdown aborted the connection
        Assert.IsType<ObjectDisposedException>(pendingAccept.Exception?.InnerException); // the shutdown disposed the listener
    }

    // ------------------------------------------------------------------ errors and cancellation

    [Fact]
    public void Connecting_to_a_closed_port_is_refused_with_a_SocketException()
    {
        RunLoop(async loop =>
        {
            EndPoint endpoint;
            await using (ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort))
            {
                endpoint = listener.LocalEndPoint;
            }

            SocketException refused = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectTcpAsync(endpoint));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        });
    }

    [Fact]
    public void Listening_on_an_address_in_use_fails_with_a_SocketException()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener first = await loop.ListenTcpAsync(AnyLoopbackPort);
            SocketException inUse = await Assert.ThrowsAsync<SocketException>(async () => await loop.ListenTcpAsync(first.LocalEndPoint));
            Assert.Equal(SocketError.AddressAlreadyInUse, inUse.SocketErrorCode);
        });
    }

    [Fact]
    public void Options_out_of_range_are_rejected_naming_the_option()
    {
        RunLoop(async loop =>
        {
            var badResume = new TcpOptions { InputPauseThreshold = 1000, InputResumeThreshold = 2000 };
            ArgumentOutOfRangeException resume = Assert.Throws<ArgumentOutOfRangeException>(() => loop.ListenTcpAsync(AnyLoopbackPort, badResume));
            Assert.Equal(nameof(TcpOptions.InputResumeThreshold), resume.ParamName);
            ArgumentOutOfRangeException backlog = Assert.Throws<ArgumentOutOfRangeException>(() => loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 0 }));
            Assert.Equal(nameof(TcpOptions.Backlog), backlog.ParamName);
            Assert.Throws<ArgumentOutOfRangeException>(() => loop.ConnectTcpAsync(AnyLoopbackPort, new TcpOptions { OutputPauseThreshold = -1 }));
            Assert.Throws<ArgumentNullException>(() => loop.ConnectTcpAsync(null!));
            await Task.Yield();
        });
    }

    [Fact]
    public void Accept_and_read_are_cancelled_by_their_tokens()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            using (var cts = new CancellationTokenSource())
            {
                ValueTask<Connection> accept = listener.AcceptAsync(cts.Token);
                loop.CallLater(TimeSpan.FromMilliseconds(20), cts.Cancel);
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => accept.AsTask().WaitAsync(Timeout));
            }

            using var precancelled = new CancellationTokenSource();
            precancelled.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await listener.AcceptAsync(precancelled.Token));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await loop.ConnectTcpAsync(listener.LocalEndPoint, null, precancelled.Token));

            // The listener still accepts after a cancelled accept, and a cancelled read leaves the connection usable.
            Task<Connection> accepted = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accepted.WaitAsync(Timeout);
            using (var cts = new CancellationTokenSource())
            {
                ValueTask<ReadResult> read = server.Input.ReadAsync(cts.Token);
                loop.CallLater(TimeSpan.FromMilliseconds(20), cts.Cancel);
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.AsTask().WaitAsync(Timeout));
            }

            await WriteAsync(client, "after"u8.ToArray());
            Assert.Equal("after"u8.ToArray(), await ReadExactlyAsync(server.Input, 5).WaitAsync(Timeout));
        });
    }

    [Fact]
    public void A_connect_still_in_progress_is_cancelled_by_its_token_and_leaves_nothing_open()
    {
        RunLoop(async loop =>
        {
            // A listener that never accepts, with a backlog of 1: once its queue is full the kernel drops
            // further SYNs, so the next connect stays in progress (SYN retries) until it is cancelled.
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 1 });
            var filling = new List<Connection>();
            try
            {
                while (true)
                {
                    using var cts = new CancellationTokenSource();
                    ValueTask<Connection> connect = loop.ConnectTcpAsync(listener.LocalEndPoint, null, cts.Token);
                    Task<Connection> attempt = connect.AsTask();
                    Task first = await Task.WhenAny(attempt, loop.DelayAsync(TimeSpan.FromMilliseconds(200)));
                    if (first == attempt)
                    {
                        filling.Add(await attempt); // the queue took it: keep filling
                        Assert.True(filling.Count < 64, "the accept queue never filled");
                        continue;
                    }

                    cts.Cancel();
                    await Assert.ThrowsAnyAsync<OperationCanceledException>(() => attempt.WaitAsync(Timeout));
                    break;
                }
            }
            finally
            {
                foreach (Connection connection in filling)
                {
                    connection.Abort();
                }
            }
        });
    }

    // ------------------------------------------------------------------ backpressure and latency

    [Fact]
    public void Bytes_left_in_the_socket_while_the_reader_was_behind_are_read_when_it_catches_up()
    {
        // The writer sends a burst and then stays silent (no more bytes, no FIN): once the server's input pipe has
        // paused, the rest of the burst waits in the socket, and nothing new will arrive to wake the poller. When the
        // reader catches up, the transport must read what is waiting by itself (an edge-triggered poller gets no new
        // edge for bytes that were already there).
        const int Length = 1024 * 1024;
        byte[] payload = TestPipes.RandomPayload(Length, seed: 29);
        RunLoop(async loop =>
        {
            var serverOptions = new TcpOptions { InputPauseThreshold = 64 * 1024, InputResumeThreshold = 32 * 1024 };
            await using ConnectionListener listener = await loop.ListenTcpAsync(TestPipes.AnyLoopbackPort, serverOptions);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint).AsTask().WaitAsync(TestPipes.TestTimeout);
            await using Connection server = await accept.WaitAsync(TestPipes.TestTimeout);

            Task write = client.Output.WriteAsync(payload).AsTask();
            await loop.DelayAsync(TimeSpan.FromMilliseconds(100)); // let the server's input fill and pause (the test holds without it, but tests less)

            var received = new MemoryStream();
            while (received.Length < Length)
            {
                ReadResult result = await server.Input.ReadAsync().AsTask().WaitAsync(TestPipes.TestTimeout);
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    received.Write(segment.Span);
                }

                server.Input.AdvanceTo(result.Buffer.End);
                Assert.False(result.IsCompleted, "the writer did not close");
            }

            await write.WaitAsync(TestPipes.TestTimeout);
            Assert.Equal(payload, received.ToArray());
        });
    }

    [Fact]
    public void A_slow_reader_makes_the_writers_flush_wait_and_buffers_stay_bounded()
    {
        RunLoop(async loop =>
        {
            var options = new TcpOptions
            {
                InputPauseThreshold = 64 * 1024,
                InputResumeThreshold = 32 * 1024,
                OutputPauseThreshold = 64 * 1024,
                OutputResumeThreshold = 32 * 1024,
            };
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint, options);
            await using Connection server = await accept.WaitAsync(Timeout);

            // The server writes random chunks while the client reads nothing, until a flush stays pending.
            var random = new Random(2024);
            using var sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] chunk = new byte[32 * 1024];
            long written = 0;
            ValueTask<FlushResult> blocked;
            while (true)
            {
                random.NextBytes(chunk);
                sentHash.AppendData(chunk);
                blocked = server.Output.WriteAsync(chunk); // copies the chunk into the pipe before it returns
                written += chunk.Length;
                Assert.True(written < 256L * 1024 * 1024, "no backpressure after 256 MiB");
                if (!blocked.IsCompleted)
                {
                    using var cts = new CancellationTokenSource();
                    Task delay = loop.DelayAsync(TimeSpan.FromMilliseconds(200), cts.Token);
                    Task<FlushResult> flushed = blocked.AsTask();
                    if (await Task.WhenAny(flushed, delay) != flushed)
                    {
                        blocked = new ValueTask<FlushResult>(flushed);
                        break;
                    }

                    cts.Cancel();
                }
            }

            // Bounded: what the writer got rid of is the kernel's socket buffers plus both pipes' thresholds.
            Assert.True(written < 64L * 1024 * 1024, $"{written} bytes were accepted before the flush waited");

            // The reader catches up: the flush completes, and every byte arrives in order (the same checksum).
            long largestRead = 0;
            long read = 0;
            using var receivedHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Task<FlushResult> pendingFlush = blocked.AsTask();
            while (read < written)
            {
                ReadResult result = await client.Input.ReadAsync().AsTask().WaitAsync(Timeout);
                largestRead = Math.Max(largestRead, result.Buffer.Length);
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    receivedHash.AppendData(segment.Span);
                }

                read += result.Buffer.Length;
                client.Input.AdvanceTo(result.Buffer.End);
            }

            Assert.False((await pendingFlush.WaitAsync(Timeout)).IsCompleted);
            Assert.Equal(written, read);
            Assert.Equal(sentHash.GetHashAndReset(), receivedHash.GetHashAndReset());
            Assert.True(largestRead <= options.InputPauseThreshold + (128 * 1024), $"the reader's pipe held {largestRead} bytes");
        });
    }

    [Fact]
    public void One_small_write_reaches_the_peer_with_no_further_loop_activity()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            var endpoint = (IPEndPoint)listener.LocalEndPoint;

            // The peer is a plain blocking socket on its own thread (not a pool thread, which the loop's
            // socket completions may need): only the loop can deliver what it waits for.
            var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() =>
            {
                try
                {
                    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    socket.Connect(endpoint);
                    socket.ReceiveTimeout = 10_000;
                    byte[] buffer = new byte[16];
                    int count = socket.Receive(buffer);
                    received.TrySetResult(Encoding.ASCII.GetString(buffer, 0, count));
                }
                catch (Exception ex)
                {
                    received.TrySetException(ex);
                }
            })
            { IsBackground = true, Name = "blocking peer" };
            thread.Start();
            Task<string> peer = received.Task;

            await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(Timeout);
            server.Output.Write("ping!"u8);
            ValueTask<FlushResult> flush = server.Output.FlushAsync();

            // From here the loop has nothing else to do: no timer, no other I/O, until the peer answers.
            Assert.Equal("ping!", await peer.WaitAsync(Timeout));
            await flush;
        });
    }

    [Fact]
    public void AsStream_carries_the_connection_for_stream_apis()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            Task echo = EchoAsync(await accept.WaitAsync(Timeout));
            await using (Stream stream = client.AsStream())
            {
                await stream.WriteAsync("via stream"u8.ToArray());
                await stream.FlushAsync();
                byte[] buffer = new byte[10];
                await stream.ReadExactlyAsync(buffer).AsTask().WaitAsync(Timeout);
                Assert.Equal("via stream"u8.ToArray(), buffer);
            }

            await echo.WaitAsync(Timeout);
        });
    }

    [Fact]
    public void The_block_pool_keeps_each_size_apart_and_gives_pipes_large_blocks_pinned()
    {
        // Connections' pipes take their blocks from the loop's pinned pool: 64 KiB by default, and 128 KiB for a larger
        // request (a libuv connection reading large messages asks for one, so a 100 KiB message is one read).
        RunLoop(loop =>
        {
            Internal.PinnedBlockPool pool = loop.MemoryPool;
            const int Small = Internal.PinnedBlockPool.BlockSize, Large = Internal.PinnedBlockPool.LargeBlockSize;
            Assert.Equal(Large, pool.MaxBufferSize);
            IMemoryOwner<byte> large = pool.Rent(Small + 1);
            IMemoryOwner<byte> small = pool.Rent(100);
            Assert.Equal(Large, large.Memory.Length);
            Assert.Equal(Small, small.Memory.Length);
            Assert.Equal(Small + Large, pool.RentedBytes);
            small.Dispose();
            large.Dispose(); // returned last: a mixed-up pool would hand it to the next small request
            Assert.Equal(0, pool.RentedBytes);

            // A returned block serves only requests of its own size.
            using (IMemoryOwner<byte> again = pool.Rent(1))
            {
                Assert.Equal(Small, again.Memory.Length);
            }

            using (IMemoryOwner<byte> again = pool.Rent(Large))
            {
                Assert.Equal(Large, again.Memory.Length);
            }

            Assert.Throws<ArgumentOutOfRangeException>("minBufferSize", () => pool.Rent(Large + 1));

            // A pipe on the pool takes a large request from it (pinned, pooled), not from the array pool.
            var pipe = new Pipe(new PipeOptions(pool, minimumSegmentSize: Small, useSynchronizationContext: false));
            Memory<byte> memory = pipe.Writer.GetMemory(Large);
            Assert.True(memory.Length >= Large);
            Assert.Equal(Large, pool.RentedBytes);
            pipe.Writer.Complete();
            pipe.Reader.Complete();
            Assert.Equal(0, pool.RentedBytes);
            return Task.CompletedTask;
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

/// <summary>The managed loop's portable socket transport (the default off Linux) through the whole TCP suite.</summary>
public sealed class ManagedSocketsTcpTests : TcpTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}
