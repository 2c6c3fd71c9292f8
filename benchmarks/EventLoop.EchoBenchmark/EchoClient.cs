using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using EventLoop.Benchmarking;

namespace EventLoop.EchoBenchmark;

/// <summary>
/// The fallback load generator, used when no C compiler can build benchmarks/echo/echo_client.c (or with
/// <c>--client dotnet</c>): plain async sockets on the thread pool, N connections each sending one M-byte
/// message and reading the whole echo back before the next (ping-pong). Counts round trips after a warm-up,
/// compares every byte of every reply with what was sent, and reports the same RESULT line as the C client.
/// It runs near 100% of its core against the faster servers, so its figures measure the client too.
/// </summary>
internal static class EchoClient
{
    public static async Task<int> RunFromArgsAsync(string[] args)
    {
        string host = "127.0.0.1";
        int port = 0, connections = 32, size = 1024;
        double duration = 5, warmup = 1;
        int serverPid = 0;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--host": host = Next(); break;
                case "--port": port = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--connections": connections = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--size": size = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--duration": duration = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--server-pid": serverPid = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"Unknown client option '{args[i]}'.");
            }
        }

        if (port <= 0)
        {
            throw new ArgumentException("client needs --port.");
        }

        Measurement result = await RunAsync(new IPEndPoint(IPAddress.Parse(host), port), connections, size,
            TimeSpan.FromSeconds(warmup), TimeSpan.FromSeconds(duration), serverPid);
        Console.WriteLine(result.ToResultLine());
        return result.Errors == 0 && result.MismatchedBytes == 0 ? 0 : 1;
    }

    public static async Task<Measurement> RunAsync(IPEndPoint endpoint, int connections, int size, TimeSpan warmup, TimeSpan duration, int serverPid)
    {
        var sockets = new Socket[connections];
        for (int i = 0; i < connections; i++)
        {
            var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(endpoint);
            sockets[i] = socket;
        }

        var counts = new long[connections * 8]; // one cache line apart
        long mismatches = 0;
        int errors = 0;
        using var stop = new CancellationTokenSource();
        Task[] workers = new Task[connections];
        for (int i = 0; i < connections; i++)
        {
            int index = i;
            workers[i] = Task.Run(async () =>
            {
                Socket socket = sockets[index];
                byte[] message = new byte[size];
                byte[] reply = new byte[size];
                new Random(index).NextBytes(message);
                try
                {
                    long round = 0;
                    while (!stop.IsCancellationRequested)
                    {
                        // Each message differs from the last: its first bytes carry the round number.
                        BitConverter.TryWriteBytes(message.AsSpan(0, Math.Min(size, sizeof(long))), round);
                        if (size < sizeof(long))
                        {
                            message[0] = (byte)round;
                        }

                        await socket.SendAsync(message, SocketFlags.None);
                        int received = 0;
                        while (received < size)
                        {
                            int n = await socket.ReceiveAsync(reply.AsMemory(received), SocketFlags.None);
                            if (n == 0)
                            {
                                throw new EndOfStreamException("the server closed the connection");
                            }

                            received += n;
                        }

                        if (!reply.AsSpan().SequenceEqual(message))
                        {
                            Interlocked.Add(ref mismatches, CountMismatches(reply, message));
                        }

                        round++;
                        Volatile.Write(ref counts[index * 8], round);
                    }
                }
                catch (Exception ex) when (ex is SocketException or EndOfStreamException or IOException)
                {
                    if (!stop.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref errors);
                        Console.Error.WriteLine($"connection {index}: {ex.Message}");
                    }
                }
            });
        }

        long Total()
        {
            long sum = 0;
            for (int i = 0; i < connections; i++)
            {
                sum += Volatile.Read(ref counts[i * 8]);
            }

            return sum;
        }

        using var self = Process.GetCurrentProcess();
        ProcessCpu OwnCpu()
        {
            self.Refresh();
            return new ProcessCpu(self.UserProcessorTime.TotalSeconds, self.PrivilegedProcessorTime.TotalSeconds);
        }

        await Task.Delay(warmup);
        long startCount = Total();
        long start = Stopwatch.GetTimestamp();
        ProcessCpu client0 = OwnCpu();
        ProcessCpu? server0 = serverPid > 0 ? ProcStat.Process(serverPid) : null;
        CoreTimes[]? cores0 = ProcStat.Cores();
        await Task.Delay(duration);
        long endCount = Total();
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        ProcessCpu client1 = OwnCpu();
        ProcessCpu? server1 = serverPid > 0 ? ProcStat.Process(serverPid) : null;
        CoreTimes[]? cores1 = ProcStat.Cores();
        stop.Cancel();
        foreach (Socket socket in sockets)
        {
            socket.Dispose(); // unblocks workers waiting on a reply
        }

        await Task.WhenAll(workers);
        ProcessCpu? server = server0 is { } s0 && server1 is { } s1 ? s1 - s0 : null;
        return new Measurement(endCount - startCount, seconds, errors, mismatches, client1 - client0, server, ProcStat.Between(cores0, cores1));
    }

    private static long CountMismatches(ReadOnlySpan<byte> reply, ReadOnlySpan<byte> sent)
    {
        long count = 0;
        for (int i = 0; i < sent.Length; i++)
        {
            count += reply[i] != sent[i] ? 1 : 0;
        }

        return count;
    }
}
