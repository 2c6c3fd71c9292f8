using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>
/// Connections and listeners disposed, aborted, cancelled and written to from other threads at random moments
/// while echo traffic flows (issue 9, finding 1: on libuv this crashed the process). Every byte that comes back
/// is checked against what was sent; every loop must close with nothing left open and nothing reported. With
/// <c>writes</c>, the echo answers each received segment with its own <see cref="PipeWriter.WriteAsync"/> (which sends
/// straight from the input's memory when nothing is queued, on libuv and epoll), and the clients write buffers of
/// varied size, up to 256 KiB (partly sent directly, the rest through the pipe).
/// </summary>
internal static class DisposeRace
{
    private const int Clients = 8;

    public static void Run(LoopPolicy policy, int iterations, int seed, Failures failures, bool writes = false)
    {
        for (int i = 0; i < iterations && failures.Count == 0; i++)
        {
            string where = $"iteration {i} (seed {seed + i})";
            using Loop loop = policy.CreateLoop(failures.StrictOptions(where));
            loop.RunUntilComplete(() => RoundAsync(loop, new Random(seed + i), where, failures, writes));
            failures.CheckClosedCleanly(loop, where);
        }
    }

    /// <summary>The byte at <paramref name="offset"/> of client <paramref name="id"/>'s stream: varied, and checkable anywhere.</summary>
    public static byte PatternByte(int id, long offset) => (byte)((offset * 31) + (id * 17) + (offset >> 9));

    private static async Task RoundAsync(Loop loop, Random random, string where, Failures failures, bool writes)
    {
        ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var targets = new List<object> { listener }; // what the chaos thread may hit; touched under its own lock
        using var cancel = new CancellationTokenSource();
        Task serve = ServeAsync(listener, targets, cancel.Token, writes);
        var clients = new Task[Clients];
        for (int id = 0; id < Clients; id++)
        {
            clients[id] = ClientAsync(loop, listener.LocalEndPoint, id, targets, cancel.Token, where, failures, writes);
        }

        // The chaos: another thread hits random targets at random moments, with every thread-safe operation.
        int chaosSeed = random.Next();
        Task chaos = Task.Run(async () =>
        {
            var rng = new Random(chaosSeed);
            for (int step = 0; step < 12; step++)
            {
                await Task.Delay(rng.Next(0, 4));
                object target;
                lock (targets)
                {
                    target = targets[rng.Next(targets.Count)];
                }

                switch (target, rng.Next(4))
                {
                    case (Connection c, 0):
                        await c.DisposeAsync();
                        break;
                    case (Connection c, 1):
                        c.Abort();
                        break;
                    case (_, 2):
                        cancel.Cancel();
                        break;
                    case (ConnectionListener l, _):
                        await l.DisposeAsync();
                        break;
                }
            }

            await listener.DisposeAsync(); // from this thread too
        });

        await chaos.WaitAsync(TimeSpan.FromSeconds(30));
        foreach (Task client in clients)
        {
            if (!client.IsCompleted && await Task.WhenAny(client, loop.DelayAsync(TimeSpan.FromSeconds(20))) != client)
            {
                failures.Add($"{where}: a client did not finish within 20 s of the chaos (a hang)");
                return;
            }
        }

        if (await Task.WhenAny(serve, loop.DelayAsync(TimeSpan.FromSeconds(20))) != serve)
        {
            failures.Add($"{where}: the accept loop did not end after its listener was disposed");
        }

        // Whatever is still open is the loop's shutdown's to close: that is part of the test too.
    }

    private static async Task ServeAsync(ConnectionListener listener, List<object> targets, CancellationToken cancel, bool writes)
    {
        try
        {
            await foreach (Connection connection in listener.WithCancellation(cancel))
            {
                lock (targets)
                {
                    targets.Add(connection);
                }

                _ = writes ? Echo.ServeWithWriteAsync(connection) : Echo.ServeAsync(connection);
            }
        }
        catch (Exception ex) when (Echo.IsConnectionEnd(ex))
        {
            // Cancelled or disposed by the chaos.
        }
    }

    private static async Task ClientAsync(Loop loop, EndPoint endpoint, int id, List<object> targets, CancellationToken cancel, string where, Failures failures, bool writes)
    {
        Connection connection;
        try
        {
            connection = await loop.ConnectTcpAsync(endpoint, cancellationToken: cancel);
        }
        catch (Exception ex) when (Echo.IsConnectionEnd(ex))
        {
            return; // refused (listener gone) or cancelled
        }

        lock (targets)
        {
            targets.Add(connection);
        }

        long sent = 0;
        long received = 0;
        long total = 0;
        for (int round = 0; round < 64; round++)
        {
            total += ChunkSize(writes, id, round);
        }

        try
        {
            Task reading = ReadAndCheckAsync();
            byte[] buffer = new byte[writes ? 256 * 1024 : 4096];
            for (int round = 0; round < 64; round++)
            {
                Memory<byte> chunk = buffer.AsMemory(0, ChunkSize(writes, id, round));
                Span<byte> span = chunk.Span;
                for (int j = 0; j < span.Length; j++)
                {
                    span[j] = PatternByte(id, sent + j);
                }

                // Client 0 writes from pool threads (one write at a time): its send pump resumes off the loop and
                // must go back to it before touching the socket.
                FlushResult flush = id == 0
                    ? await Task.Run(() => connection.Output.WriteAsync(chunk, cancel).AsTask())
                    : await connection.Output.WriteAsync(chunk, cancel);
                sent += chunk.Length;
                if (flush.IsCompleted)
                {
                    break;
                }
            }

            await reading;
        }
        catch (Exception ex) when (Echo.IsConnectionEnd(ex))
        {
        }
        finally
        {
            await connection.DisposeAsync();
        }

        async Task ReadAndCheckAsync()
        {
            try
            {
                while (received < total)
                {
                    ReadResult result = await connection.Input.ReadAsync(cancel);
                    foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                    {
                        ReadOnlySpan<byte> span = segment.Span;
                        for (int j = 0; j < span.Length; j++)
                        {
                            if (span[j] != PatternByte(id, received + j))
                            {
                                failures.Add($"{where}: client {id} got a wrong byte at offset {received + j}");
                                return;
                            }
                        }

                        received += span.Length;
                    }

                    connection.Input.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted)
                    {
                        return;
                    }
                }
            }
            catch (Exception ex) when (Echo.IsConnectionEnd(ex))
            {
            }
        }
    }

    /// <summary>How much client <paramref name="id"/> writes in <paramref name="round"/>: 4 KiB, or with writes 1 B to 256 KiB.</summary>
    private static int ChunkSize(bool writes, int id, int round) =>
        !writes ? 4096 : (round % 3) switch
        {
            0 => 1 + ((round * 7 + id) % 100),
            1 => 1 + ((round * 7919 + id * 104729) % (256 * 1024)),
            _ => 4096 + ((round + id) % 50_000),
        };
}
