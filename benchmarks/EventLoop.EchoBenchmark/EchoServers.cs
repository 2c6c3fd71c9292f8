using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using EventLoop.Libuv;

namespace EventLoop.EchoBenchmark;

/// <summary>The echo servers this program hosts itself: the .NET thread-pool baseline, and one on our loop.</summary>
internal static class EchoServers
{
    public static async Task<int> RunFromArgsAsync(string[] args)
    {
        if (args.Length == 0)
        {
            throw new ArgumentException("server needs a kind: threadpool or loop.");
        }

        string kind = args[0];
        string host = "127.0.0.1", loopName = "managed";
        int port = 0, loops = 1;
        string? unixPath = null;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--host": host = Next(); break;
                case "--port": port = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--unix": unixPath = Next(); break;
                case "--loop": loopName = Next(); break;
                case "--loops": loops = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--hash-rounds": s_hashRounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--copy": s_copy = true; break;
                default: throw new ArgumentException($"Unknown server option '{args[i]}'.");
            }
        }

        var endpoint = new IPEndPoint(IPAddress.Parse(host), port);
        switch (kind)
        {
            case "threadpool":
                await RunThreadPoolServerAsync(endpoint);
                return 0;
            case "loop":
                LoopPolicy policy = loopName switch
                {
                    "managed" => new ManagedLoopPolicy(),
                    "libuv" => new LibuvLoopPolicy(),
                    _ => throw new ArgumentException($"--loop must be managed or libuv, not '{loopName}'."),
                };
                if (unixPath is not null)
                {
                    // The Unix socket echo (--unix): one loop, ListenUnixAsync; the same echo as TCP's.
                    Loop.Run(() => RunLoopUnixServerAsync(unixPath, loopName), policy);
                    return 0;
                }

                if (loops > 1)
                {
                    await RunGroupServerAsync(endpoint, policy, loops);
                    return 0;
                }

                Loop.Run(() => RunLoopServerAsync(endpoint, loopName), policy);
                return 0;
            default:
                throw new ArgumentException($"Unknown server kind '{kind}'.");
        }
    }

    /// <summary>
    /// The baseline: what a .NET developer writes without a loop. An accept loop and one async task per
    /// connection, receiving into a buffer and sending it back, all on the thread pool.
    /// </summary>
    private static async Task RunThreadPoolServerAsync(IPEndPoint endpoint)
    {
        using var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(endpoint);
        listener.Listen(512);
        Console.WriteLine($"threadpool echo server listening on {listener.LocalEndPoint}");
        while (true)
        {
            Socket socket = await listener.AcceptAsync();
            socket.NoDelay = true;
            _ = Task.Run(() => EchoSocketAsync(socket));
        }
    }

    private static async Task EchoSocketAsync(Socket socket)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (true)
            {
                int received = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (received == 0)
                {
                    break;
                }

                Work(buffer.AsSpan(0, received));

                await socket.SendAsync(buffer.AsMemory(0, received), SocketFlags.None);
            }
        }
        catch (SocketException)
        {
        }
        finally
        {
            socket.Dispose();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Our loop's echo server over <see cref="Connection"/> pipes (used until the samples runner has one, or with --server-inproc).</summary>
    private static async Task RunLoopServerAsync(IPEndPoint endpoint, string loopName)
    {
        Loop loop = Loop.Current;
        await using ConnectionListener listener = await loop.ListenTcpAsync(endpoint);
        Console.WriteLine($"{loopName} loop echo server listening on {listener.LocalEndPoint}");
        await foreach (Connection connection in listener)
        {
            _ = EchoConnectionAsync(connection);
        }
    }

    /// <summary>The same server on a group of loops, each on its own thread (<see cref="LoopGroup"/>); serves until the process is stopped.</summary>
    private static async Task RunLoopUnixServerAsync(string path, string loopName)
    {
        Loop loop = Loop.Current;
        await using ConnectionListener listener = await loop.ListenUnixAsync(path, new UnixSocketOptions { Backlog = 512 });
        Console.WriteLine($"{loopName} loop echo server listening on {path}");
        await foreach (Connection connection in listener)
        {
            _ = EchoConnectionAsync(connection);
        }
    }

    private static async Task RunGroupServerAsync(IPEndPoint endpoint, LoopPolicy policy, int loops)
    {
        await using LoopGroup group = LoopGroup.Start(loops, policy);
        await using LoopGroupServer server = await group.ListenTcpAsync(endpoint, EchoConnectionAsync, new TcpOptions { Backlog = 1024 });
        Console.WriteLine($"{policy.Name} loop group of {loops} echo server listening on {server.LocalEndPoint}");
        await Task.Delay(Timeout.Infinite);
    }

    /// <summary>With --hash-rounds N: SHA-256 over every received byte N times, CPU work standing in for a real protocol's.</summary>
    private static int s_hashRounds;

    /// <summary>With --copy: every read is copied into the output pipe and flushed (how the echo wrote before direct writes), for a same-run comparison.</summary>
    private static bool s_copy;

    private static void Work(ReadOnlySpan<byte> received)
    {
        Span<byte> digest = stackalloc byte[32];
        for (int i = 0; i < s_hashRounds; i++)
        {
            SHA256.HashData(received, digest);
        }
    }

    private static async Task EchoConnectionAsync(Connection connection)
    {
        try
        {
            PipeReader input = connection.Input;
            PipeWriter output = connection.Output;
            while (true)
            {
                ReadResult result = await input.ReadAsync();
                FlushResult flush;
                if (result.Buffer.IsSingleSegment && !s_copy)
                {
                    // One piece: WriteAsync sends it from the input's buffer when nothing is queued (no copy).
                    Work(result.Buffer.FirstSpan);
                    flush = await output.WriteAsync(result.Buffer.First);
                    input.AdvanceTo(result.Buffer.End);
                }
                else
                {
                    foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                    {
                        Work(segment.Span);
                        output.Write(segment.Span);
                    }

                    input.AdvanceTo(result.Buffer.End);
                    flush = await output.FlushAsync();
                }

                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (IOException)
        {
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }
}
