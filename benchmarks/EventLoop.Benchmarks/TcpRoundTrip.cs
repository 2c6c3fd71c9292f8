using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;

namespace EventLoop.Benchmarks;

/// <summary>
/// N ping-pong round trips of a 1 KiB message over one loopback TCP connection whose both ends live on the
/// same loop (client writes, server echoes, client reads it back). Shows the per-read and per-write cost of
/// each transport and, with the memory diagnoser, that steady-state reads and writes allocate nothing
/// (connection setup is amortised over N). Baseline: two thread-pool <see cref="Socket"/>s doing the same.
/// </summary>
public class TcpRoundTrip
{
    private const int N = 20_000;
    private const int Size = 1024;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "Socket pair on ThreadPool")]
    public void ThreadPool() => Task.Run(SocketsAsync).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed TCP")]
    public void Managed() => Harness.OnLoop(Harness.Policy("managed"), RoundTrips);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv TCP")]
    public void Libuv() => Harness.OnLoop(Harness.Policy("libuv"), RoundTrips);

    private static async Task RoundTrips(Loop loop)
    {
        await using ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0));
        await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
        await using Connection server = await listener.AcceptAsync();
        Task echo = EchoAsync(server);
        byte[] message = new byte[Size];
        for (int i = 0; i < N; i++)
        {
            await client.Output.WriteAsync(message);
            ReadResult result = await client.Input.ReadAtLeastAsync(Size);
            client.Input.AdvanceTo(result.Buffer.GetPosition(Size));
        }

        await client.Output.CompleteAsync();
        await echo;
    }

    private static async Task EchoAsync(Connection connection)
    {
        while (true)
        {
            ReadResult result = await connection.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                connection.Output.Write(segment.Span);
            }

            connection.Input.AdvanceTo(result.Buffer.End);
            await connection.Output.FlushAsync();
            if (result.IsCompleted)
            {
                return;
            }
        }
    }

    private static async Task SocketsAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(listener.LocalEndPoint!);
        using Socket server = await listener.AcceptAsync();
        server.NoDelay = true;
        Task echo = Task.Run(async () =>
        {
            byte[] buffer = new byte[16 * 1024];
            while (true)
            {
                int n = await server.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
                if (n == 0)
                {
                    return;
                }

                await server.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }
        });
        byte[] message = new byte[Size];
        byte[] reply = new byte[Size];
        for (int i = 0; i < N; i++)
        {
            await client.SendAsync(message.AsMemory(), SocketFlags.None);
            int got = 0;
            while (got < Size)
            {
                got += await client.ReceiveAsync(reply.AsMemory(got), SocketFlags.None);
            }
        }

        client.Shutdown(SocketShutdown.Send);
        await echo;
    }
}
