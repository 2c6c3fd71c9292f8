using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Reliability;

/// <summary>
/// The in-process half of the adversarial suite (issue 9): storms, floods and slow readers, every byte checked
/// and the buffers counted. Quick by default; <c>EVENTLOOP_STRESS=full</c> runs them at full size.
/// </summary>
public abstract class StormTests : LoopTestBase
{
    private static bool Full => StressHostProcess.FullSize;

    /// <summary>What each connection of the storm does; decided from its id, so the server and client agree.</summary>
    private enum Fate
    {
        Echoed,        // the whole payload comes back, byte for byte
        ClientResets,  // the client aborts halfway through sending
        ServerAborts,  // the server aborts after echoing about half
    }

    private static Fate FateOf(int id) => (id % 10) switch
    {
        3 or 7 => Fate.ClientResets,
        5 => Fate.ServerAborts,
        _ => Fate.Echoed,
    };

    private static int PayloadLength(int id) => 1 + (id * 7919 % (64 * 1024));

    [Fact]
    public void A_storm_with_client_resets_and_server_aborts_loses_or_corrupts_no_byte()
    {
        int total = Full ? 12_000 : 1_000;
        const int AtOnce = 100;
        int echoed = 0, resets = 0, aborts = 0;
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, new TcpOptions { Backlog = 1024 });
            var handlers = new List<Task>();
            Task serve = ServeAsync(listener, handlers);
            int next = 0;

            async Task WorkerAsync()
            {
                while (next < total)
                {
                    int id = next++;
                    switch (await ClientAsync(loop, listener.LocalEndPoint, id))
                    {
                        case Fate.Echoed: echoed++; break;
                        case Fate.ClientResets: resets++; break;
                        case Fate.ServerAborts: aborts++; break;
                    }
                }
            }

            await Task.WhenAll(Enumerable.Range(0, AtOnce).Select(_ => WorkerAsync())).WaitAsync(TimeSpan.FromMinutes(Full ? 10 : 2));
            await listener.DisposeAsync();
            await serve.WaitAsync(TestTimeout);
            await Task.WhenAll(handlers).WaitAsync(TestTimeout);
            Assert.Equal(0, loop.MemoryPool.RentedCount); // nothing is left buffered anywhere
        });
        Assert.Equal(total, echoed + resets + aborts);
        Assert.Equal(Enumerable.Range(0, total).Count(id => FateOf(id) == Fate.Echoed), echoed);

        static async Task ServeAsync(ConnectionListener listener, List<Task> handlers)
        {
            await foreach (Connection connection in listener)
            {
                handlers.Add(ServeOneAsync(connection));
            }
        }

        static async Task ServeOneAsync(Connection connection)
        {
            await using (connection)
            {
                int id = -1;
                try
                {
                    id = BitConverter.ToInt32(await ReadExactlyAsync(connection.Input, 4).WaitAsync(TestTimeout));
                    long limit = FateOf(id) == Fate.ServerAborts ? PayloadLength(id) / 2 : long.MaxValue;
                    long echoedBytes = 0;
                    while (true)
                    {
                        ReadResult result = await connection.Input.ReadAsync().AsTask().WaitAsync(TestTimeout);
                        foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                        {
                            await connection.Output.WriteAsync(segment);
                            echoedBytes += segment.Length;
                        }

                        connection.Input.AdvanceTo(result.Buffer.End);
                        if (echoedBytes >= limit)
                        {
                            connection.Abort(); // mid-stream, with the client still sending
                            return;
                        }

                        if (result.IsCompleted)
                        {
                            return;
                        }
                    }
                }
                catch (IOException) when (id < 0 || FateOf(id) == Fate.ClientResets)
                {
                    // The client reset mid-stream, as planned (seen by a read, or by the echo's send side; a
                    // reset can even come before the id was read).
                }
            }
        }
    }

    /// <summary>One storm connection: sends an id and a random payload, checks every byte that comes back.</summary>
    private static async Task<Fate> ClientAsync(Loop loop, EndPoint endpoint, int id)
    {
        byte[] payload = RandomPayload(PayloadLength(id), id);
        Fate fate = FateOf(id);
        await using Connection client = await loop.ConnectTcpAsync(endpoint).AsTask().WaitAsync(TestTimeout);
        await client.Output.WriteAsync(BitConverter.GetBytes(id));
        if (fate == Fate.ClientResets)
        {
            await client.Output.WriteAsync(payload.AsMemory(0, payload.Length / 2));
            client.Abort();
            return fate;
        }

        long receivedBeforeReset = 0;
        Task<byte[]> reading = fate == Fate.Echoed ? ReadToEndAsync(client.Input) : ReadCheckingPrefixAsync();
        await client.Output.WriteAsync(payload);
        await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
        if (fate == Fate.Echoed)
        {
            byte[] echo = await reading.WaitAsync(TestTimeout);
            Assert.Equal(payload.Length, echo.Length);
            Assert.True(payload.AsSpan().SequenceEqual(echo), $"connection {id}: the echo differs from what was sent");
            return fate;
        }

        // The server aborts partway: whatever arrived before the reset is an exact prefix of the payload.
        await Assert.ThrowsAsync<ConnectionResetException>(() => reading.WaitAsync(TestTimeout));
        Assert.True(receivedBeforeReset <= payload.Length);
        return fate;

        async Task<byte[]> ReadCheckingPrefixAsync()
        {
            while (true)
            {
                ReadResult result = await client.Input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    Assert.True(receivedBeforeReset + segment.Length <= payload.Length, $"connection {id}: more bytes came back than were sent");
                    Assert.True(segment.Span.SequenceEqual(payload.AsSpan((int)receivedBeforeReset, segment.Length)), $"connection {id}: a wrong byte before the reset");
                    receivedBeforeReset += segment.Length;
                }

                client.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return [];
                }
            }
        }
    }

    [Fact]
    public void A_slow_reader_keeps_the_writers_buffers_bounded()
    {
        long total = Full ? 512L * 1024 * 1024 : 32L * 1024 * 1024;
        long maxRented = 0;
        RunLoop(async loop =>
        {
            var options = new TcpOptions(); // 1 MiB pause thresholds on both pipes
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection writer = await loop.ConnectTcpAsync(listener.LocalEndPoint, options);
            await using Connection reader = await accept.WaitAsync(TestTimeout);

            // The writer pushes as fast as the pipes let it.
            Task writing = WriteAllAsync();

            async Task WriteAllAsync()
            {
                byte[] chunk = RandomPayload(256 * 1024, 5);
                for (long sent = 0; sent < total; sent += chunk.Length)
                {
                    await writer.Output.WriteAsync(chunk);
                }

                await writer.Output.CompleteAsync();
            }

            // The reader takes at most 16 KiB per loop turn, and the buffers are sampled as it goes. It marks as
            // examined only what it took: System.IO.Pipelines counts unexamined bytes against the pause threshold,
            // so a reader that examines everything and consumes little tells the pipe to keep buffering.
            long received = 0;
            while (true)
            {
                ReadResult result = await reader.Input.ReadAsync().AsTask().WaitAsync(TestTimeout);
                long take = Math.Min(result.Buffer.Length, 16 * 1024);
                received += take;
                reader.Input.AdvanceTo(result.Buffer.GetPosition(take));
                maxRented = Math.Max(maxRented, loop.MemoryPool.RentedBytes);
                if (result.IsCompleted && take == result.Buffer.Length)
                {
                    break;
                }

                await Task.Yield();
            }

            await writing.WaitAsync(TestTimeout);
            Assert.Equal(total, received);
        });

        // Both pipes pause at 1 MiB (16 blocks each), plus what each side is filling (a large block, on libuv): at most
        // 48 blocks' worth.
        Assert.InRange(maxRented, 1, 48L * Internal.PinnedBlockPool.BlockSize);
    }
}

/// <summary>
/// Tests that measure the process's managed heap: they run alone (no other test allocating meanwhile), after the
/// parallel ones.
/// </summary>
[CollectionDefinition(nameof(MemoryTests), DisableParallelization = true)]
public sealed class MemoryTestsCollection;

/// <summary>The flood half of the adversarial suite: buffers and memory back to baseline after peers flood and reset.</summary>
public abstract class MemoryTests : LoopTestBase
{
    private static bool Full => StressHostProcess.FullSize;

    [Fact]
    public void A_hundred_peers_that_flood_and_disconnect_leave_memory_and_buffers_at_baseline()
    {
        int flooders = 100;
        long perFlooder = Full ? 16L * 1024 * 1024 : 2L * 1024 * 1024;
        RunLoop(async loop =>
        {
            var options = new TcpOptions { InputPauseThreshold = 256 * 1024, InputResumeThreshold = 128 * 1024 };
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            long baselineHeap = GC.GetTotalMemory(forceFullCollection: true);
            int baselineHandles = loop.OpenNativeHandleCount;

            // The server reads nothing: everything the flooders send piles up against its thresholds.
            var accepted = new List<Connection>();
            Task serve = AcceptAllAsync();

            async Task AcceptAllAsync()
            {
                for (int i = 0; i < flooders; i++)
                {
                    accepted.Add(await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout));
                }
            }

            // Plain sockets on the thread pool flood until the kernel buffers are full, then reset.
            Task[] floods = Enumerable.Range(0, flooders).Select(i => Task.Run(async () =>
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(listener.LocalEndPoint);
                byte[] chunk = RandomPayload(64 * 1024, i);
                using var stalled = new CancellationTokenSource();
                long sent = 0;
                try
                {
                    while (sent < perFlooder)
                    {
                        stalled.CancelAfter(TimeSpan.FromMilliseconds(500)); // the peer stopped reading: flood over
                        sent += await socket.SendAsync(chunk, SocketFlags.None, stalled.Token);
                    }
                }
                catch (OperationCanceledException)
                {
                }

                socket.LingerState = new LingerOption(true, 0); // disconnect with a reset, everything unread
            })).ToArray();

            await serve.WaitAsync(TestTimeout);
            await Task.WhenAll(floods).WaitAsync(TimeSpan.FromMinutes(2));
            floods = [];
            // Past the pause threshold a connection holds at most the read that crossed it (a libuv connection reading
            // large messages reads into a large block) and the block it was filling.
            Assert.True(loop.MemoryPool.RentedBytes <= flooders * (options.InputPauseThreshold + Internal.PinnedBlockPool.LargeBlockSize + Internal.PinnedBlockPool.BlockSize),
                $"{loop.MemoryPool.RentedBytes / 1024} KiB in {loop.MemoryPool.RentedCount} blocks buffered for {flooders} connections");

            // Every server connection now fails with the reset and is disposed.
            foreach (Connection connection in accepted)
            {
                await Assert.ThrowsAsync<ConnectionResetException>(async () =>
                {
                    while (true)
                    {
                        ReadResult result = await connection.Input.ReadAsync().AsTask().WaitAsync(TestTimeout);
                        connection.Input.AdvanceTo(result.Buffer.End);
                        Assert.False(result.IsCompleted, "a reset peer must not look like a clean end of stream");
                    }
                });
                await connection.DisposeAsync();
            }

            accepted.Clear(); // the closed connections, their pipes and the flooders' buffers may now be collected
            Assert.Equal(0, loop.MemoryPool.RentedCount);
            Assert.Equal(baselineHandles, loop.OpenNativeHandleCount);
            long heap = GC.GetTotalMemory(forceFullCollection: true);
            long retainedByPool = loop.MemoryPool.RetainedBytes; // kept for reuse, at most 20 MiB
            Assert.True(heap - retainedByPool - baselineHeap <= 8 * 1024 * 1024,
                $"the heap grew from {baselineHeap / 1024} to {heap / 1024} KiB, of which the block pool keeps {retainedByPool / 1024} KiB for reuse");
        });
    }
}

[Collection(nameof(MemoryTests))]
public sealed class ManagedMemoryTests : MemoryTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

[Collection(nameof(MemoryTests))]
public sealed class LibuvMemoryTests : MemoryTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class ManagedStormTests : StormTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvStormTests : StormTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

/// <summary>The managed loop's portable socket transport (the default off Linux).</summary>
public sealed class ManagedSocketsStormTests : StormTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}
