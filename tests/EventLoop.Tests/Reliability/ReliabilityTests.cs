using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Reliability;

/// <summary>
/// Regression tests for the crashes and hangs adversarial testing found (issue 9), one per finding, on both
/// policies. Each failed before its fix: dispose from other threads crashed libuv (here the binding's
/// loop-thread check turns that into an exception instead of a crash), blocking waits hung, a zero timer period
/// fired continuously, DNS connects failed on the managed loop, bad options slipped through, sockets leaked,
/// and posts vanished at shutdown.
/// </summary>
public abstract class ReliabilityTests : LoopTestBase
{
    // ------------------------------------------------------------------ 1. dispose and abort from any thread

    [Fact]
    public void Connections_and_listeners_disposed_from_another_thread_close_on_the_loop()
    {
        RunLoop(async loop =>
        {
            int baseline = loop.OpenNativeHandleCount;
            for (int round = 0; round < 20; round++)
            {
                ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
                Task<Connection> accept = listener.AcceptAsync().AsTask();
                Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
                Connection server = await accept.WaitAsync(TestTimeout);
                Task pendingRead = client.Input.ReadAsync().AsTask(); // a read in flight while the dispose comes

                int loopThread = Environment.CurrentManagedThreadId;
                int disposingThread = await Task.Run(async () =>
                {
                    // Concurrent disposes from two threads: both complete once the close has happened on the loop.
                    await Task.WhenAll(server.DisposeAsync().AsTask(), Task.Run(() => server.DisposeAsync().AsTask()));
                    await client.DisposeAsync();
                    await listener.DisposeAsync();
                    return Environment.CurrentManagedThreadId;
                }).WaitAsync(TestTimeout);
                Assert.NotEqual(loopThread, disposingThread);

                Assert.True(client.ConnectionClosed.IsCancellationRequested);
                Assert.True(server.ConnectionClosed.IsCancellationRequested);
                await pendingRead.ContinueWith(_ => { }).WaitAsync(TestTimeout); // the read in flight ended, too
                await Assert.ThrowsAsync<ObjectDisposedException>(async () => await listener.AcceptAsync());
                Assert.Equal(baseline, loop.OpenNativeHandleCount); // every handle and socket is closed already
            }
        });
    }

    [Fact]
    public void Abort_from_another_thread_resets_the_peer_with_ConnectionResetException()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            Task<ReadResult> pending = client.Input.ReadAsync().AsTask();

            await Task.Run(() => server.Abort()).WaitAsync(TestTimeout);

            await Assert.ThrowsAsync<ConnectionResetException>(() => pending.WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<ConnectionAbortedException>(() => server.Input.ReadAsync().AsTask().WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void A_flush_from_another_thread_sends_from_the_loop()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            byte[] payload = RandomPayload(300_000, seed: 9);

            // Written and flushed on a pool thread: the send pump must go back to the loop to touch the socket.
            await Task.Run(async () =>
            {
                for (int offset = 0; offset < payload.Length; offset += 10_000)
                {
                    await client.Output.WriteAsync(payload.AsMemory(offset, 10_000));
                }

                await client.Output.CompleteAsync();
            }).WaitAsync(TestTimeout);

            Assert.Equal(payload, await ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
        });
    }

    // ------------------------------------------------------------------ 2. blocking the loop thread throws

    private LoopOptions BlockingOptions()
    {
        LoopOptions options = CreateOptions();
        options.BlockingWaitLimit = TimeSpan.FromMilliseconds(100);
        return options;
    }

    /// <summary>The blocking call (given a timeout, so an undetected deadlock fails instead of hanging) must throw.</summary>
    private static void AssertDeadlockDetected(Action blockingCall)
    {
        var ex = Assert.Throws<InvalidOperationException>(blockingCall);
        Assert.Contains("deadlock", ex.Message);
    }

    [Fact]
    public void Blocking_on_an_accept_while_a_peer_connects_throws()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();

            // The peer connects while the loop thread is blocked (no loop turn in between could take the connection).
            Task<Socket> peer = Task.Run(() => ConnectPlain(listener.LocalEndPoint));
            AssertDeadlockDetected(() => accept.Wait(TestTimeout));
            await using Connection server = await accept.WaitAsync(TestTimeout); // and the accept still completes
            (await peer.WaitAsync(TestTimeout)).Dispose();
        }, BlockingOptions());
    }

    [Fact]
    public void Blocking_on_a_connect_throws()
    {
        using var plain = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        plain.Bind(AnyLoopbackPort);
        plain.Listen(64); // the kernel completes the handshakes; nobody needs to accept
        RunLoop(async loop =>
        {
            // A loopback connect of the socket transport sometimes completes synchronously, and then there is
            // nothing to block on: try until one is still in flight, and require every such one to be detected.
            int detected = 0;
            for (int attempt = 0; attempt < 20 && detected == 0; attempt++)
            {
                Task<Connection> connect = loop.ConnectTcpAsync(plain.LocalEndPoint!).AsTask();
                if (!connect.IsCompleted)
                {
                    AssertDeadlockDetected(() => connect.Wait(TestTimeout));
                    detected++;
                }

                await using Connection client = await connect.WaitAsync(TestTimeout);
            }

            Assert.Equal(1, detected);
        }, BlockingOptions());
    }

    [Fact]
    public void Blocking_on_a_read_while_the_peer_sends_throws()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            using Socket peer = await Task.Run(() => ConnectPlain(listener.LocalEndPoint)).WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);

            Task<ReadResult> read = server.Input.ReadAsync().AsTask();

            // The peer sends while the loop thread is blocked (no loop turn in between could take the bytes).
            Task<int> send = Task.Run(() => peer.Send("hello"u8.ToArray()));
            AssertDeadlockDetected(() => read.Wait(TestTimeout));
            Assert.Equal(5, await send.WaitAsync(TestTimeout));
            ReadResult result = await read.WaitAsync(TestTimeout);
            Assert.True(result.Buffer.Length > 0);
            server.Input.AdvanceTo(result.Buffer.End);
        }, BlockingOptions());
    }

    [Fact]
    public void Blocking_on_a_loop_timer_in_code_resumed_from_a_read_throws()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            using Socket peer = await Task.Run(() => ConnectPlain(listener.LocalEndPoint)).WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);

            Task<Exception?> reader = ReadThenBlockAsync(server.Input, loop);
            await Task.Run(() => peer.Send("ping"u8.ToArray())).WaitAsync(TestTimeout);
            Exception? caught = await reader.WaitAsync(TestTimeout);
            Assert.IsType<InvalidOperationException>(caught);
            Assert.Contains("deadlock", caught!.Message);
        }, BlockingOptions());

        static async Task<Exception?> ReadThenBlockAsync(PipeReader input, Loop loop)
        {
            ReadResult result = await input.ReadAsync(); // on libuv this resumes inside libuv's read callback
            input.AdvanceTo(result.Buffer.End);
            try
            {
                loop.DelayAsync(TimeSpan.FromMilliseconds(50)).Wait(TestTimeout); // undetected, it would time out
                return null;
            }
            catch (Exception ex)
            {
                return ex;
            }
        }
    }

    // ------------------------------------------------------------------ 3. timer periods

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_TimeProvider_timer_with_period_zero_or_infinite_fires_once(int periodMilliseconds)
    {
        TimeSpan period = periodMilliseconds == 0 ? TimeSpan.Zero : Timeout.InfiniteTimeSpan;
        int fired = 0;
        RunLoop(async loop =>
        {
            using ITimer timer = loop.TimeProvider.CreateTimer(_ => fired++, null, TimeSpan.FromMilliseconds(1), period);
            await loop.DelayAsync(TimeSpan.FromMilliseconds(30)); // a later timer on the same heap: the first one is due before
        });
        Assert.Equal(1, fired);

        // The same contract as the system's timers.
        int systemCount = 0;
        using (ITimer system = TimeProvider.System.CreateTimer(_ => { Interlocked.Increment(ref systemCount); }, null, TimeSpan.FromMilliseconds(1), period))
        {
            SpinWait.SpinUntil(() => Volatile.Read(ref systemCount) > 0, TestTimeout);
        }

        Assert.Equal(1, systemCount);
    }

    // ------------------------------------------------------------------ 4. DNS endpoints

    [Theory]
    [InlineData("localhost")]
    [InlineData("127.0.0.1")]
    public void Connecting_to_a_DnsEndPoint_resolves_it_and_tries_each_address(string host)
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            int port = ((IPEndPoint)listener.LocalEndPoint).Port;
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(new DnsEndPoint(host, port)).AsTask().WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            Assert.Equal(IPAddress.Loopback, ((IPEndPoint)client.RemoteEndPoint!).Address);
        });
    }

    [Fact]
    public void Connecting_to_a_host_that_does_not_exist_says_host_not_found()
    {
        const string Missing = "no-such-host.invalid";
        SocketError expected = SocketError.HostNotFound;
        try
        {
            Dns.GetHostAddresses(Missing); // what this machine's resolver says of the name
        }
        catch (SocketException ex)
        {
            expected = ex.SocketErrorCode;
        }

        RunLoop(async loop =>
        {
            var ex = await Assert.ThrowsAsync<SocketException>(() => loop.ConnectTcpAsync(new DnsEndPoint(Missing, 80)).AsTask().WaitAsync(TestTimeout));
            Assert.Equal(expected, ex.SocketErrorCode);
        });
        Assert.Equal(SocketError.HostNotFound, expected); // on these machines the resolver answers at once
    }

    // ------------------------------------------------------------------ 5. options are range-checked

    public static TheoryData<string, Action<TcpOptions>> BadOptions => new()
    {
        { nameof(TcpOptions.KeepAliveDelay), o => { o.KeepAlive = true; o.KeepAliveDelay = TimeSpan.MaxValue; } },
        { nameof(TcpOptions.KeepAliveDelay), o => o.KeepAliveDelay = TimeSpan.FromDays(1) },
        { nameof(TcpOptions.KeepAliveDelay), o => o.KeepAliveDelay = TimeSpan.FromMilliseconds(500) },
        { nameof(TcpOptions.Backlog), o => o.Backlog = 0 },
        { nameof(TcpOptions.Backlog), o => o.Backlog = 1_000_000 },
        { nameof(TcpOptions.InputPauseThreshold), o => o.InputPauseThreshold = -1 },
        { nameof(TcpOptions.OutputResumeThreshold), o => o.OutputResumeThreshold = o.OutputPauseThreshold + 1 },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void An_option_out_of_range_is_refused_up_front_naming_it(string name, Action<TcpOptions> spoil)
    {
        var options = new TcpOptions();
        spoil(options);
        RunLoop(loop =>
        {
            var listen = Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.ListenTcpAsync(AnyLoopbackPort, options); });
            Assert.Equal(name, listen.ParamName);
            Assert.Contains(name, listen.Message);
            var connect = Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.ConnectTcpAsync(new IPEndPoint(IPAddress.Loopback, 9), options); });
            Assert.Equal(name, connect.ParamName);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void The_longest_keep_alive_delay_is_applied_to_accepted_and_connected_sockets()
    {
        var options = new TcpOptions { KeepAlive = true, KeepAliveDelay = TcpOptions.MaxKeepAliveDelay };
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort, options);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint, options);
            await using Connection server = await accept.WaitAsync(TestTimeout); // accepted, not silently closed
            await client.Output.WriteAsync("kept"u8.ToArray());
            Assert.Equal("kept"u8.ToArray(), await ReadExactlyAsync(server.Input, 4).WaitAsync(TestTimeout));
        });
    }

    // ------------------------------------------------------------------ 8. posts at shutdown

    [Fact]
    public void Posts_racing_the_shutdown_either_run_or_are_refused()
    {
        for (int round = 0; round < 40; round++)
        {
            using Loop loop = CreateLoop();
            long accepted = 0;
            long ran = 0;
            using var go = new ManualResetEventSlim();
            Task[] posters = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
            {
                go.Wait();
                while (true)
                {
                    // Stay at most a few thousand posts ahead of the loop, so each round is about the race at the
                    // end, not about how long the loop takes to catch up with a flood.
                    while (Interlocked.Read(ref accepted) - Interlocked.Read(ref ran) > 4_000)
                    {
                        Thread.Yield();
                    }

                    try
                    {
                        loop.CallSoonThreadSafe(() => Interlocked.Increment(ref ran));
                        Interlocked.Increment(ref accepted);
                    }
                    catch (InvalidOperationException)
                    {
                        return; // refused: the loop no longer takes posts
                    }
                }
            }, TaskCreationOptions.LongRunning)).ToArray();

            loop.RunUntilComplete(async () =>
            {
                go.Set();
                await loop.DelayAsync(TimeSpan.FromMilliseconds(round % 5));
            });
            Assert.True(Task.WaitAll(posters, TestTimeout));
            AssertClosedCleanly(loop);
            Assert.Equal(Interlocked.Read(ref accepted), ran);
        }
    }

    [Fact]
    public void A_post_that_raced_the_close_is_taken_back_and_refused_never_lost()
    {
        // The race, made deterministic through the posting protocol's internals: posters that checked the state
        // while the loop was open and enqueued after its last drain. Their posts must come back to them refused.
        var log = new StringWriter();
        LoopOptions options = CreateOptions();
        options.Log = log;
        using Loop loop = CreateLoop(options);
        loop.RunUntilComplete(() => Task.CompletedTask);
        Assert.True(loop.IsClosed);

        bool ran = false;
        object lateA = (SendOrPostCallback)(_ => ran = true);
        object lateB = (SendOrPostCallback)(_ => ran = true);

        // Poster A has swapped its post in but not yet looked at the state again; poster B finishes first.
        loop.InjectQueueForTests.Enqueue(lateA, null);
        Assert.False(loop.TryInject(lateB, null)); // B takes back its own post: refused
        Assert.Contains("dropped", log.ToString()); // and A's post, taken back on A's behalf, is reported
        Assert.True(loop.InjectQueueForTests.IsEmpty);
        Assert.False(ran);

        // A CallSoonThreadSafe that raced the close throws rather than hand out a handle to a post that never runs.
        Assert.Throws<InvalidOperationException>(() => loop.CallSoonThreadSafe(() => ran = true));
        Assert.False(ran);
        AssertClosedCleanly(loop);
    }

    [Fact]
    public void Executor_work_that_finishes_during_shutdown_still_completes_its_task()
    {
        var tasks = new List<Task<int>>();
        RunLoop(loop =>
        {
            for (int i = 0; i < 300; i++)
            {
                int n = i;
                tasks.Add(loop.RunInExecutor(() =>
                {
                    Thread.SpinWait(1000 * (n % 50)); // finishing before, during and after the shutdown
                    return n;
                }));
            }

            return Task.CompletedTask; // main ends at once: the work finishes while the loop shuts down
        });
        Assert.True(Task.WaitAll(tasks.ToArray(), TestTimeout), "some executor tasks never completed");
        Assert.Equal(Enumerable.Range(0, 300), tasks.Select(t => t.Result));
    }

    [Fact]
    public void Stop_from_another_thread_during_live_traffic_is_not_reported_as_a_callback_loop()
    {
        var log = new StringWriter();
        LoopOptions options = CreateOptions();
        options.Log = log;
        using Loop loop = CreateLoop(options);
        var error = Assert.Throws<InvalidOperationException>(() => loop.RunUntilComplete(async () =>
        {
            ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            Connection server = await accept.WaitAsync(TestTimeout);
            int rounds = 0;
            void Count()
            {
                if (++rounds == 2_000)
                {
                    _ = Task.Run(loop.Stop); // stopped from another thread while the traffic is live
                }
            }

            _ = PumpAsync(server.Input, server.Output, Count);
            _ = PumpAsync(client.Input, client.Output, Count);
            await client.Output.WriteAsync(RandomPayload(16 * 1024, seed: 1)); // ping-pong forever
            // Never completes: the stop ends the run. Generous, so a slow machine still reaches the stop (it failed
            // at 20 s under a load average of 60); bounded, so a lost stop fails instead of hanging.
            await Task.Delay(TimeSpan.FromMinutes(3), loop.TimeProvider);
        }));
        Assert.Contains("stopped before main completed", error.Message);
        AssertClosedCleanly(loop);
        Assert.DoesNotContain("keep scheduling", log.ToString());

        static async Task PumpAsync(PipeReader input, PipeWriter output, Action onRead)
        {
            try
            {
                while (true)
                {
                    ReadResult result = await input.ReadAsync();
                    onRead();
                    foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                    {
                        await output.WriteAsync(segment);
                    }

                    input.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted)
                    {
                        return;
                    }
                }
            }
            catch (Exception)
            {
                // The loop's shutdown aborts the connection.
            }
        }
    }

    [Fact]
    public void A_callback_that_reschedules_itself_through_shutdown_is_named_in_the_warning()
    {
        var log = new StringWriter();
        LoopOptions options = CreateOptions();
        options.Log = log;
        RunLoop(loop =>
        {
            RescheduleForever(loop);
            return Task.CompletedTask;
        }, options);
        string text = log.ToString();
        Assert.Contains("callbacks keep scheduling callbacks", text);
        Assert.Contains(nameof(RescheduleForever), text);

        static void RescheduleForever(Loop loop) => loop.CallSoon(RescheduleForever, loop);
    }
}

public sealed class ManagedReliabilityTests : ReliabilityTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvReliabilityTests : ReliabilityTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

/// <summary>The managed loop's portable socket transport (the default off Linux).</summary>
public sealed class ManagedSocketsReliabilityTests : ReliabilityTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}
