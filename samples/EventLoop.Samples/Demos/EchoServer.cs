using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>A TCP echo server on the loop, over TLS when given <paramref name="tls"/> options: every connection's input is copied to its output.</summary>
internal static class EchoServer
{
    public static async Task RunAsync(Loop loop, IPAddress host, int port, IAnsiConsole console, CancellationToken cancellationToken, SslServerAuthenticationOptions? tls = null)
    {
        if (loop.PolicyName == "managed")
        {
            // The managed loop's sockets complete on .NET's epoll thread, which by default hands each
            // completion to the thread pool, which posts it to the loop: two hops. This server's process only
            // serves the loop, so let the epoll thread post straight to the loop (one hop). It must be set
            // before the first socket is used; it applies to the whole process, so a library never sets it.
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        }

        var endpoint = new IPEndPoint(host, port);
        var options = new TcpOptions { Backlog = 1024 };
        ConnectionListener listening;
        if (tls is null)
        {
            listening = await SampleFailure.ListenAsync(loop, endpoint, options, cancellationToken);
        }
        else
        {
            try
            {
                listening = await loop.ListenTlsAsync(endpoint, tls, options,
                    new TlsOptions { HandshakeFailed = (peer, error) => console.WriteLine($"TLS handshake from {peer} failed: {error.Message}") },
                    cancellationToken);
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                throw SampleFailure.ListenFailed(endpoint, ex);
            }
        }

        await using ConnectionListener listener = listening;
        console.WriteLine($"listening on {listener.LocalEndPoint} ({loop.PolicyName} loop{(tls is null ? "" : ", TLS")})");
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
    public static async Task RunGroupAsync(LoopPolicy policy, int loops, IPAddress host, int port, IAnsiConsole console, CancellationToken cancellationToken,
        SslServerAuthenticationOptions? tls = null)
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
            listening = await group.ListenTcpAsync(
                endpoint, connection => tls is null ? ServeAsync(connection) : ServeTlsAsync(connection, tls, console),
                new TcpOptions { Backlog = 1024 }, cancellationToken);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            throw SampleFailure.ListenFailed(endpoint, ex);
        }

        await using LoopGroupServer server = listening;
        console.WriteLine($"listening on {server.LocalEndPoint} ({policy.Name} loop x {loops}{(tls is null ? "" : ", TLS")})");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.WriteLine("stopping");
        }
    }

    /// <summary>A group connection upgraded to TLS on its own loop (the group hands out plain TCP connections).</summary>
    private static async Task ServeTlsAsync(Connection connection, SslServerAuthenticationOptions tls, IAnsiConsole console)
    {
        TlsConnection secure;
        try
        {
            secure = await connection.StartTlsAsync(tls);
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException or TimeoutException)
        {
            console.WriteLine($"TLS handshake from {connection.RemoteEndPoint} failed: {ex.Message}");
            await connection.DisposeAsync();
            return;
        }

        await ServeAsync(secure);
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
    /// Echoes everything read. What arrived in one piece is handed to <see cref="PipeWriter.WriteAsync"/>, which on the loop
    /// sends it straight from the input's buffer when nothing is queued before it (as uvloop's <c>transport.write</c>
    /// does): no copy. Several segments are written, then flushed once (one send for the lot), rather than
    /// <c>CopyToAsync</c>'s flush per segment.
    /// </summary>
    private static async Task EchoAsync(PipeReader input, PipeWriter output)
    {
        while (true)
        {
            ReadResult result = await input.ReadAsync();
            ReadOnlySequence<byte> buffer = result.Buffer;
            FlushResult flush;
            if (buffer.IsSingleSegment)
            {
                flush = await output.WriteAsync(buffer.First); // sent, or copied into the output pipe, before it returns
                input.AdvanceTo(buffer.End);
            }
            else
            {
                foreach (ReadOnlyMemory<byte> segment in buffer)
                {
                    output.Write(segment.Span);
                }

                input.AdvanceTo(buffer.End);
                flush = await output.FlushAsync();
            }

            if (result.IsCompleted || flush.IsCompleted)
            {
                return;
            }
        }
    }
}
