using System.Net;
using System.Net.Sockets;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>
/// UDP endpoints disposed from other threads at random moments while datagrams flow both ways, receives wait and
/// receives are cancelled from other threads: on libuv each is a native <c>uv_udp_t</c> whose receive callback may be
/// running when the dispose arrives. Every datagram that arrives is checked; every loop must close with nothing left
/// open and nothing reported.
/// </summary>
internal static class UdpDisposeRace
{
    private const int Clients = 6;

    public static void Run(LoopPolicy policy, int iterations, int seed, Failures failures)
    {
        for (int i = 0; i < iterations && failures.Count == 0; i++)
        {
            string where = $"iteration {i} (seed {seed + i})";
            using Loop loop = policy.CreateLoop(failures.StrictOptions(where));
            loop.RunUntilComplete(() => RoundAsync(loop, new Random(seed + i), where, failures));
            failures.CheckClosedCleanly(loop, where);
        }
    }

    private static byte[] Payload(int id, int sequence)
    {
        var payload = new byte[8 + ((id * 131) + sequence) % 600];
        BitConverter.TryWriteBytes(payload, id);
        BitConverter.TryWriteBytes(payload.AsSpan(4), sequence);
        for (int i = 8; i < payload.Length; i++)
        {
            payload[i] = (byte)(id + sequence + i);
        }

        return payload;
    }

    private static bool IsEnd(Exception ex) => ex is ObjectDisposedException or OperationCanceledException
        || ex is SocketException { SocketErrorCode: SocketError.ConnectionRefused };

    private static async Task RoundAsync(Loop loop, Random random, string where, Failures failures)
    {
        DatagramEndpoint server = await loop.OpenDatagramEndpointAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var targets = new List<DatagramEndpoint> { server };
        using var cancel = new CancellationTokenSource();
        Task serve = EchoAsync(server, where, failures);
        var clients = new Task[Clients];
        for (int id = 0; id < Clients; id++)
        {
            DatagramEndpoint client = await loop.OpenDatagramEndpointAsync(new IPEndPoint(IPAddress.Loopback, 0), id % 2 == 0 ? server.LocalEndPoint : null);
            lock (targets)
            {
                targets.Add(client);
            }

            clients[id] = ClientAsync(client, server.LocalEndPoint, id, cancel.Token, where, failures);
        }

        int chaosSeed = random.Next();
        Task chaos = Task.Run(async () =>
        {
            var rng = new Random(chaosSeed);
            for (int step = 0; step < 10; step++)
            {
                await Task.Delay(rng.Next(0, 3));
                DatagramEndpoint target;
                lock (targets)
                {
                    target = targets[rng.Next(targets.Count)];
                }

                if (rng.Next(4) == 0)
                {
                    cancel.Cancel();
                }
                else
                {
                    await target.DisposeAsync();
                }
            }

            await server.DisposeAsync();
        });

        await chaos.WaitAsync(TimeSpan.FromSeconds(30));
        foreach (Task task in clients.Append(serve))
        {
            if (await Task.WhenAny(task, loop.DelayAsync(TimeSpan.FromSeconds(20))) != task)
            {
                failures.Add($"{where}: a UDP task did not end within 20 s of the chaos (a hang)");
                return;
            }
        }

        // Clients the chaos did not dispose are the loop's shutdown's to close.
    }

    private static async Task EchoAsync(DatagramEndpoint server, string where, Failures failures)
    {
        try
        {
            while (true)
            {
                using Datagram datagram = await server.ReceiveAsync();
                await server.SendToAsync(datagram.Data, datagram.RemoteEndPoint);
            }
        }
        catch (Exception ex) when (IsEnd(ex))
        {
        }
        catch (Exception ex)
        {
            failures.Add($"{where}: the echo endpoint failed: {ex}");
        }
    }

    private static async Task ClientAsync(DatagramEndpoint client, IPEndPoint server, int id, CancellationToken cancel, string where, Failures failures)
    {
        try
        {
            for (int sequence = 0; sequence < 400; sequence++)
            {
                byte[] payload = Payload(id, sequence);
                await client.SendToAsync(payload, server, cancel);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                timeout.CancelAfter(TimeSpan.FromMilliseconds(200)); // cancelled from the timer's thread
                Datagram echo;
                try
                {
                    echo = await client.ReceiveAsync(timeout.Token);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    return; // lost: the chaos disposed the echo endpoint (unconnected clients hear no ICMP)
                }

                using (echo)
                {
                    ReadOnlySpan<byte> data = echo.Data.Span;
                    int echoedSequence = data.Length >= 8 ? BitConverter.ToInt32(data[4..]) : -1;
                    if (data.Length < 8 || BitConverter.ToInt32(data) != id || !data.SequenceEqual(Payload(id, echoedSequence)))
                    {
                        failures.Add($"{where}: client {id} got a wrong echo ({data.Length} bytes)");
                        return;
                    }
                }
            }
        }
        catch (Exception ex) when (IsEnd(ex))
        {
        }
        catch (Exception ex)
        {
            failures.Add($"{where}: client {id} failed: {ex}");
        }
    }
}
