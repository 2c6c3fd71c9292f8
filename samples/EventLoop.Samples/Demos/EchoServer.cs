using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>A TCP echo server on the loop: every connection's input is copied to its output.</summary>
internal static class EchoServer
{
    public static async Task RunAsync(Loop loop, IPAddress host, int port, IAnsiConsole console, CancellationToken cancellationToken)
    {
        if (loop.PolicyName == "managed")
        {
            // The managed loop's sockets complete on .NET's epoll thread, which by default hands each
            // completion to the thread pool, which posts it to the loop: two hops. This server's process only
            // serves the loop, so let the epoll thread post straight to the loop (one hop). It must be set
            // before the first socket is used; it applies to the whole process, so a library never sets it.
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        }

        await using ConnectionListener listener = await SampleFailure.ListenAsync(loop, new IPEndPoint(host, port), new TcpOptions { Backlog = 1024 }, cancellationToken);
        console.WriteLine($"listening on {listener.LocalEndPoint} ({loop.PolicyName} loop)");
        var connections = new HashSet<Task>();
        try
        {
            while (true)
            {
                Connection connection = await listener.AcceptAsync(cancellationToken);
                Task serving = ServeAsync(connection);
                connections.Add(serving);
                _ = serving.ContinueWith(t => connections.Remove(t), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, loop.TaskScheduler);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.WriteLine("stopping");
        }

        await Task.WhenAll(connections);
    }

    /// <summary>
    /// The same server on a group of <paramref name="loops"/> loops, each on its own thread: every loop accepts (on Linux
    /// each has its own listener on the port, SO_REUSEPORT) and serves its connections itself.
    /// </summary>
    public static async Task RunGroupAsync(LoopPolicy policy, int loops, IPAddress host, int port, IAnsiConsole console, CancellationToken cancellationToken)
    {
        if (policy.Name == "managed")
        {
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1"); // as above
        }

        await using LoopGroup group = LoopGroup.Start(loops, policy);
        var endpoint = new IPEndPoint(host, port);
        LoopGroupServer listening;
        try
        {
            listening = await group.ListenTcpAsync(endpoint, ServeAsync, new TcpOptions { Backlog = 1024 }, cancellationToken);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            throw SampleFailure.ListenFailed(endpoint, ex);
        }

        await using LoopGroupServer server = listening;
        console.WriteLine($"listening on {server.LocalEndPoint} ({policy.Name} loop x {loops})");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.WriteLine("stopping");
        }
    }

    private static async Task ServeAsync(Connection connection)
    {
        await using (connection)
        {
            try
            {
                await EchoAsync(connection.Input, connection.Output);
            }
            catch (IOException)
            {
                // The peer reset: nothing to echo to. Other connections are unaffected.
            }
        }
    }

    /// <summary>
    /// Echoes everything read: all the segments of one read are written, then flushed once (one send for
    /// the lot), rather than <c>CopyToAsync</c>'s flush per segment.
    /// </summary>
    private static async Task EchoAsync(PipeReader input, PipeWriter output)
    {
        while (true)
        {
            ReadResult result = await input.ReadAsync();
            ReadOnlySequence<byte> buffer = result.Buffer;
            foreach (ReadOnlyMemory<byte> segment in buffer)
            {
                output.Write(segment.Span);
            }

            input.AdvanceTo(buffer.End);
            FlushResult flush = await output.FlushAsync();
            if (result.IsCompleted || flush.IsCompleted)
            {
                return;
            }
        }
    }
}
