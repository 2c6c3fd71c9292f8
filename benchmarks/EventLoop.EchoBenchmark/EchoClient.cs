using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EventLoop.EchoBenchmark;

/// <summary>
/// The load generator: plain async sockets on the thread pool, N connections each sending one M-byte message
/// and reading the whole echo back before the next (ping-pong). Counts round trips after a warm-up.
/// </summary>
internal static class EchoClient
{
    public static async Task<int> RunFromArgsAsync(string[] args)
    {
        string host = "127.0.0.1";
        int port = 0, connections = 32, size = 1024;
        double duration = 5, warmup = 1;
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
                default: throw new ArgumentException($"Unknown client option '{args[i]}'.");
            }
        }

        if (port <= 0)
        {
            throw new ArgumentException("client needs --port.");
        }

        Result result = await RunAsync(new IPEndPoint(IPAddress.Parse(host), port), connections, size,
            TimeSpan.FromSeconds(warmup), TimeSpan.FromSeconds(duration));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RESULT messages={result.Messages} seconds={result.Seconds:F3} errors={result.Errors} mismatches={result.Mismatches}"));
        return result.Errors == 0 && result.Mismatches == 0 ? 0 : 1;
    }

    internal readonly record struct Result(long Messages, double Seconds, int Errors, long Mismatches);

    public static async Task<Result> RunAsync(IPEndPoint endpoint, int connections, int size, TimeSpan warmup, TimeSpan duration)
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
                        message[0] = (byte)round; // each message differs from the last
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

                        if (reply[0] != message[0] || reply[size - 1] != message[size - 1])
                        {
                            Interlocked.Increment(ref mismatches);
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

        await Task.Delay(warmup);
        long startCount = Total();
        long start = Stopwatch.GetTimestamp();
        await Task.Delay(duration);
        long endCount = Total();
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        stop.Cancel();
        foreach (Socket socket in sockets)
        {
            socket.Dispose(); // unblocks workers waiting on a reply
        }

        await Task.WhenAll(workers);
        return new Result(endCount - startCount, seconds, errors, mismatches);
    }
}
