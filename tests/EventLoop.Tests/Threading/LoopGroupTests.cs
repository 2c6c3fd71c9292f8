using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EventLoop.Tests.Threading;

/// <summary>
/// A group of loops (<see cref="LoopGroup"/>): round-robin, a TCP server whose connections are spread across the loops
/// (each connection on one thread for its whole life), with both ways of spreading (one listener per loop with
/// SO_REUSEPORT, and one acceptor handing sockets to the loops), and the stop: handlers aborted after the timeout,
/// every loop closed with nothing left open. Peers are plain sockets on the thread pool, outside every loop.
/// </summary>
public abstract class LoopGroupTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout;

    private LoopGroup StartGroup(int count) => LoopGroup.Start(count, CreatePolicy(), CreateOptions());

    /// <summary>Disposes the group and runs the leak check on every loop.</summary>
    private async Task StopAndCheckAsync(LoopGroup group)
    {
        await group.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in group.Loops)
        {
            Assert.True(thread.Completion.IsCompletedSuccessfully, $"{thread} ended with {thread.Completion.Exception}");
            AssertClosedCleanly(thread.Loop);
            Assert.Null(thread.Loop.OpenAtClose);
            Assert.Equal(0, thread.Loop.OpenNativeHandleCount);
        }
    }

    public static TheoryData<string> Spreadings => OperatingSystem.IsLinux() ? new() { "ReusePort", "HandOff" } : new() { "HandOff" };

    private static AcceptSpreading Parse(string spreading) => Enum.Parse<AcceptSpreading>(spreading);

    [Fact]
    public async Task Next_goes_round_robin_over_every_loop_from_many_threads()
    {
        LoopGroup group = StartGroup(3);
        Assert.Equal(3, group.Loops.Count);
        Assert.Equal(3, group.Loops.Select(t => t.Loop).Distinct().Count());
        Loop[] first = Enumerable.Range(0, 6).Select(_ => group.Next()).ToArray();
        Assert.Equal(group.Loops.Select(t => t.Loop).Concat(group.Loops.Select(t => t.Loop)), first);

        var counts = new ConcurrentDictionary<Loop, int>();
        Parallel.For(0, 3_000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ => counts.AddOrUpdate(group.Next(), 1, (_, n) => n + 1));
        Assert.All(group.Loops, thread => Assert.Equal(1_000, counts[thread.Loop]));
        await StopAndCheckAsync(group);
    }

    [Theory]
    [MemberData(nameof(Spreadings))]
    public async Task Two_thousand_connections_spread_over_four_loops_each_living_on_one_thread(string spreading)
    {
        const int Connections = 2_000;
        LoopGroup group = StartGroup(4);
        group.Spreading = Parse(spreading);
        int[] loopThreads = await Task.WhenAll(group.Loops.Select(t => t.RunAsync(() => Environment.CurrentManagedThreadId))).WaitAsync(Timeout);
        var perThread = new ConcurrentDictionary<int, int>();
        int strayCallbacks = 0, handlersDone = 0;

        LoopGroupServer server = await group.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), async connection =>
        {
            int thread = Environment.CurrentManagedThreadId;
            perThread.AddOrUpdate(thread, 1, (_, n) => n + 1);
            while (true)
            {
                ReadResult result = await connection.Input.ReadAsync();
                if (Environment.CurrentManagedThreadId != thread)
                {
                    Interlocked.Increment(ref strayCallbacks);
                }

                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    connection.Output.Write(segment.Span);
                }

                connection.Input.AdvanceTo(result.Buffer.End);
                await connection.Output.FlushAsync();
                if (Environment.CurrentManagedThreadId != thread)
                {
                    Interlocked.Increment(ref strayCallbacks);
                }

                if (result.IsCompleted)
                {
                    break;
                }
            }

            Interlocked.Increment(ref handlersDone);
        }).WaitAsync(Timeout);
        var endpoint = (IPEndPoint)server.LocalEndPoint;
        Assert.NotEqual(0, endpoint.Port);

        // Every connection open at once: connect and echo one message each (in waves, to stay within the backlogs).
        var clients = new Socket[Connections];
        for (int wave = 0; wave < Connections; wave += 250)
        {
            await Task.WhenAll(Enumerable.Range(wave, 250).Select(async i =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                clients[i] = socket;
                await socket.ConnectAsync(endpoint);
                byte[] message = Encoding.ASCII.GetBytes($"connection {i:D4} says hello");
                await socket.SendAsync(message);
                byte[] echo = new byte[message.Length];
                int read = 0;
                while (read < echo.Length)
                {
                    int n = await socket.ReceiveAsync(echo.AsMemory(read));
                    Assert.NotEqual(0, n);
                    read += n;
                }

                Assert.Equal(message, echo);
            })).WaitAsync(Timeout);
        }

        // Each client half-closes; its handler sees the end, finishes, and the server disposes the connection.
        foreach (Socket socket in clients)
        {
            socket.Shutdown(SocketShutdown.Send);
        }

        await Task.WhenAll(clients.Select(async socket =>
        {
            Assert.Equal(0, await socket.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(Timeout)); // the server's FIN
            socket.Dispose();
        }));
        await WaitUntilAsync(() => Volatile.Read(ref handlersDone) == Connections);

        Assert.Equal(0, strayCallbacks);
        Assert.Equal(Connections, perThread.Values.Sum());
        Assert.All(perThread.Keys, thread => Assert.Contains(thread, loopThreads));
        Assert.All(loopThreads, thread => Assert.True(perThread.GetValueOrDefault(thread) > 0,
            $"a loop served no connection ({spreading}): {string.Join(", ", loopThreads.Select(t => perThread.GetValueOrDefault(t)))}"));
        await server.StopAsync(TimeSpan.FromSeconds(5)).WaitAsync(Timeout);
        await StopAndCheckAsync(group);
    }

    [Theory]
    [MemberData(nameof(Spreadings))]
    public async Task Stop_lets_handlers_finish_then_aborts_the_rest_after_the_timeout(string spreading)
    {
        LoopGroup group = StartGroup(4);
        group.Spreading = Parse(spreading);
        int graceful = 0, aborted = 0, started = 0;
        LoopGroupServer server = await group.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), async connection =>
        {
            Interlocked.Increment(ref started);
            try
            {
                // Reads until the peer's end of stream; the "stubborn" peers never send it.
                while (true)
                {
                    ReadResult result = await connection.Input.ReadAsync();
                    connection.Input.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted)
                    {
                        Interlocked.Increment(ref graceful);
                        return;
                    }
                }
            }
            catch (ConnectionAbortedException ex)
            {
                Assert.Contains("stop timeout", ex.Message);
                Interlocked.Increment(ref aborted);
                throw;
            }
        }).WaitAsync(Timeout);

        Socket[] polite = await ConnectManyAsync(server.LocalEndPoint, 20);
        Socket[] stubborn = await ConnectManyAsync(server.LocalEndPoint, 20);
        await WaitUntilAsync(() => Volatile.Read(ref started) == 40);

        var stopTimeout = TimeSpan.FromMilliseconds(500);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Task stop = server.StopAsync(stopTimeout);
        Assert.Same(stop, server.StopAsync(TimeSpan.Zero)); // every call returns the first stop
        await Task.Delay(100);
        foreach (Socket socket in polite)
        {
            socket.Shutdown(SocketShutdown.Send); // these handlers finish within the timeout
        }

        await stop.WaitAsync(Timeout);
        Assert.True(clock.Elapsed >= stopTimeout - TimeSpan.FromMilliseconds(20), $"stopped after {clock.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(20, graceful);
        Assert.Equal(20, aborted);

        // No more connections: the listener is closed.
        await Assert.ThrowsAsync<SocketException>(() => ConnectManyAsync(server.LocalEndPoint, 1));
        foreach (Socket socket in polite.Concat(stubborn))
        {
            socket.Dispose();
        }

        await StopAndCheckAsync(group);
    }

    [Theory]
    [MemberData(nameof(Spreadings))]
    public async Task Group_dispose_with_live_connections_stops_the_server_and_closes_every_loop_cleanly(string spreading)
    {
        LoopGroup group = StartGroup(4);
        group.Spreading = Parse(spreading);
        int started = 0;
        LoopGroupServer server = await group.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), async connection =>
        {
            Interlocked.Increment(ref started);
            await connection.Input.ReadAsync(); // a peer that never sends: only the abort ends this
        }).WaitAsync(Timeout);
        Socket[] clients = await ConnectManyAsync(server.LocalEndPoint, 32);
        await WaitUntilAsync(() => Volatile.Read(ref started) == 32);

        // The group's dispose stops the server (default timeout 5 s: these handlers take all of it, then are aborted),
        // then every loop. Each client sees its connection end.
        await group.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (Socket socket in clients)
        {
            try
            {
                Assert.Equal(0, await socket.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(Timeout));
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                // aborted: a reset
            }

            socket.Dispose();
        }

        await StopAndCheckAsync(group); // a second dispose: the same, finished stop; then the leak check on each loop
        await Assert.ThrowsAsync<ObjectDisposedException>(() => group.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), _ => Task.CompletedTask));
    }

    [Fact]
    public async Task A_handler_that_throws_is_reported_and_the_server_goes_on()
    {
        ExpectErrors = true;
        LoopGroup group = StartGroup(2);
        LoopGroupServer server = await group.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), async connection =>
        {
            ReadResult result = await connection.Input.ReadAsync();
            string text = Encoding.ASCII.GetString(result.Buffer.ToArray());
            connection.Input.AdvanceTo(result.Buffer.End);
            if (text == "boom")
            {
                throw new InvalidProgramException("the handler's bug");
            }

            await connection.Output.WriteAsync(Encoding.ASCII.GetBytes("ok"));
        }).WaitAsync(Timeout);

        using (Socket bad = (await ConnectManyAsync(server.LocalEndPoint, 1))[0])
        {
            await bad.SendAsync(Encoding.ASCII.GetBytes("boom"));
            Assert.Equal(0, await bad.ReceiveAsync(new byte[8], SocketFlags.None).WaitAsync(Timeout)); // closed without an answer
        }

        using (Socket good = (await ConnectManyAsync(server.LocalEndPoint, 1))[0])
        {
            await good.SendAsync(Encoding.ASCII.GetBytes("fine"));
            byte[] answer = new byte[2];
            Assert.Equal(2, await good.ReceiveAsync(answer, SocketFlags.None).WaitAsync(Timeout));
            Assert.Equal("ok", Encoding.ASCII.GetString(answer));
        }

        await server.DisposeAsync().AsTask().WaitAsync(Timeout);
        await StopAndCheckAsync(group);
        LoopExceptionContext reported = Assert.Single(UnhandledErrors);
        Assert.IsType<InvalidProgramException>(reported.Exception);
        Assert.Contains("handler", reported.Message);
    }

    [Theory]
    [MemberData(nameof(Spreadings))]
    public async Task An_address_in_use_fails_the_listen_and_leaves_nothing_open(string spreading)
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        LoopGroup group = StartGroup(3);
        group.Spreading = Parse(spreading);
        SocketException error = await Assert.ThrowsAsync<SocketException>(() => group.ListenTcpAsync(taken.LocalEndPoint!, _ => Task.CompletedTask));
        Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);
        await StopAndCheckAsync(group);
    }

    [Fact]
    public async Task Group_dispose_from_one_of_its_loops_returns_at_once_and_the_group_ends()
    {
        LoopGroup group = StartGroup(2);
        bool completedAtOnce = await group.Loops[1].RunAsync(() => group.DisposeAsync().IsCompleted).WaitAsync(Timeout);
        Assert.True(completedAtOnce);
        await Task.WhenAll(group.Loops.Select(t => t.Completion)).WaitAsync(Timeout);
        await StopAndCheckAsync(group);
    }

    private static async Task<Socket[]> ConnectManyAsync(EndPoint endpoint, int count) =>
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(endpoint).WaitAsync(Timeout);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }));

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Timeout, "the condition did not become true in time");
            await Task.Delay(5);
        }
    }
}

public sealed class ManagedLoopGroupTests : LoopGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsLoopGroupTests : LoopGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}

public sealed class LibuvLoopGroupTests : LoopGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
