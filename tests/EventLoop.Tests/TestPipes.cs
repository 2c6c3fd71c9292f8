using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace EventLoop.Tests;

/// <summary>Helpers shared by the connection tests: exact reads, reads to the end, plain-socket peers.</summary>
internal static class TestPipes
{
    /// <summary>How long any single await of a test may take before it counts as a hang (a failure, not a hung run).</summary>
    public static readonly TimeSpan TestTimeout = TimeSpan.FromSeconds(20);

    public static IPEndPoint AnyLoopbackPort => new(IPAddress.Loopback, 0);

    public static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count, CancellationToken cancellationToken = default)
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

    /// <summary>A connected TCP pair on <paramref name="loop"/>: the listener, the client, and the accepted server side.</summary>
    public static async Task<(ConnectionListener Listener, Connection Client, Connection Server)> ConnectPairAsync(
        Loop loop, TcpOptions? serverOptions = null, TcpOptions? clientOptions = null)
    {
        ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, serverOptions);
        Task<Connection> accept = listener.AcceptAsync().AsTask();
        Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint, clientOptions).AsTask().WaitAsync(TestTimeout);
        Connection server = await accept.WaitAsync(TestTimeout);
        return (listener, client, server);
    }

    /// <summary>Reads to the end of stream; returns the bytes.</summary>
    public static async Task<byte[]> ReadToEndAsync(PipeReader reader)
    {
        var all = new ArrayBufferWriter<byte>();
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                all.Write(segment.Span);
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return all.WrittenSpan.ToArray();
            }
        }
    }

    /// <summary>Random bytes from a seeded generator: a payload whose every byte is checked, not all zeros.</summary>
    public static byte[] RandomPayload(int length, int seed)
    {
        byte[] bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A plain blocking socket connected to <paramref name="endpoint"/>: a peer outside every loop.</summary>
    public static Socket ConnectPlain(EndPoint endpoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Connect(endpoint);
        return socket;
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes from a plain socket (blocking; call it off the loop).</summary>
    public static byte[] ReceiveExactly(Socket socket, int count)
    {
        byte[] buffer = new byte[count];
        int read = 0;
        while (read < count)
        {
            int n = socket.Receive(buffer, read, count - read, SocketFlags.None);
            if (n == 0)
            {
                throw new EndOfStreamException($"Expected {count} bytes, the stream ended after {read}.");
            }

            read += n;
        }

        return buffer;
    }
}
