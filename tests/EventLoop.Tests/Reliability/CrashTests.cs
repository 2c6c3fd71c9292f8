using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace EventLoop.Tests.Reliability;

/// <summary>
/// The adversarial scenarios that could take the process down, each run in a child process
/// (<see cref="StressHostProcess"/>) that must exit 0: a crash fails the test instead of killing the run. Quick
/// by default (seconds each); <c>EVENTLOOP_STRESS=full</c> runs them at full size.
/// </summary>
public abstract class CrashTests
{
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(StressHostProcess.FullSize ? 10 : 2);

    /// <summary>The policy's name as the stress host takes it.</summary>
    protected abstract string Policy { get; }

    /// <summary>The policy name the child prints (the policy, without the transport).</summary>
    protected virtual string PrintedPolicy => Policy;

    /// <summary>
    /// Runs <paramref name="scenario"/> in child processes (10 of 100 iterations at full size, 2 of
    /// <paramref name="quickIterations"/> otherwise), each with its own seed, and asserts each exits cleanly and says OK.
    /// </summary>
    private async Task RunChildrenAsync(string scenario, int quickIterations, int seed, string extraArguments = "")
    {
        int children = StressHostProcess.FullSize ? 10 : 2;
        int iterations = StressHostProcess.FullSize ? 100 : quickIterations;
        for (int child = 0; child < children; child++)
        {
            using var host = StressHostProcess.Start(scenario, Policy, $"--iterations {iterations} --seed {(child * 1000) + seed}{extraArguments}");
            string transcript = await host.AssertExitsCleanlyAsync(ChildTimeout);
            Assert.Contains($"OK {scenario} {PrintedPolicy}", transcript);
        }
    }

    [Fact]
    public Task Dispose_abort_and_cancel_from_other_threads_at_random_moments_never_crash() =>
        RunChildrenAsync("dispose-race", quickIterations: 25, seed: 1);

    /// <summary>
    /// The echo answers with WriteAsync per received segment and the clients write 1 B to 256 KiB: on libuv and epoll
    /// those go straight to the socket when nothing is queued, while another thread disposes and aborts.
    /// </summary>
    [Fact]
    public Task Direct_writes_of_varied_size_with_dispose_and_abort_from_other_threads_never_crash_and_keep_every_byte_in_order() =>
        RunChildrenAsync("dispose-race", quickIterations: 15, seed: 151, " --writes 1");

    [Fact]
    public Task Udp_endpoints_disposed_and_cancelled_from_other_threads_while_datagrams_flow_never_crash() =>
        RunChildrenAsync("udp-dispose-race", quickIterations: 20, seed: 7);

    [Fact]
    public async Task Accepting_survives_running_out_of_descriptors()
    {
        using var host = StressHostProcess.Start("fd-server", Policy, fileLimit: 128);
        string listening = await host.WaitForLineAsync("listening ", TimeSpan.FromSeconds(60));
        var endpoint = new IPEndPoint(IPAddress.Loopback, int.Parse(listening["listening ".Length..]));

        // Open connections, each echoed before the next, until one is not: the server is out of descriptors
        // (the managed listener leaves it in the kernel's backlog, libuv drops it). Far more than 128 are needed.
        var clients = new List<Socket>();
        int served = 0;
        bool exhausted = false;
        int attempts = StressHostProcess.FullSize ? 3000 : 400;
        try
        {
            for (int i = 0; i < attempts && !exhausted; i++)
            {
                Socket client = TestPipes.ConnectPlain(endpoint);
                clients.Add(client);
                client.ReceiveTimeout = 2000;
                client.Send([(byte)i]);
                try
                {
                    exhausted = client.Receive(new byte[1]) == 0;
                    served += exhausted ? 0 : 1;
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.ConnectionReset)
                {
                    exhausted = true;
                }
            }
        }
        finally
        {
            foreach (Socket client in clients)
            {
                client.Dispose();
            }
        }

        Assert.True(exhausted, $"{attempts} connections never exhausted the server's 128 descriptors");
        Assert.InRange(served, 20, 127);

        // Healthy again once the server has closed what the clients closed: the first connection that is echoed
        // marks the recovery (until then libuv may still drop new connections, as it does while exhausted), and
        // from there every connection is accepted and echoed.
        var recovery = System.Diagnostics.Stopwatch.StartNew();
        while (!Echoes(endpoint, "recovered?"))
        {
            Assert.True(recovery.Elapsed < TimeSpan.FromSeconds(30), $"the server did not recover within 30 s.{Environment.NewLine}{host.Transcript}");
        }

        for (int i = 0; i < 20; i++)
        {
            Assert.True(Echoes(endpoint, $"health {i:D2}"), $"health check {i} failed after the recovery");
        }

        host.CloseInput();
        string transcript = await host.AssertExitsCleanlyAsync(ChildTimeout);
        int reported = int.Parse(Regex.Match(transcript, @"accept-errors-reported (\d+)").Groups[1].Value);
        AssertAcceptErrorsReported(reported);
    }

    /// <summary>True if a new connection to <paramref name="endpoint"/> echoes <paramref name="text"/> back; false if it is dropped or reset.</summary>
    private static bool Echoes(IPEndPoint endpoint, string text)
    {
        try
        {
            using Socket client = TestPipes.ConnectPlain(endpoint);
            client.ReceiveTimeout = 20_000;
            byte[] ping = System.Text.Encoding.ASCII.GetBytes(text);
            client.Send(ping);
            return ping.AsSpan().SequenceEqual(TestPipes.ReceiveExactly(client, ping.Length));
        }
        catch (Exception ex) when (ex is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.ConnectionRefused } or EndOfStreamException)
        {
            return false;
        }
    }

    /// <summary>How often the exhaustion was reported: once per episode, never once per refused connection.</summary>
    protected abstract void AssertAcceptErrorsReported(int reported);

    [Fact]
    public async Task A_soak_of_timers_posts_and_echo_keeps_memory_and_handles_flat()
    {
        int seconds = StressHostProcess.FullSize ? 60 : 4;
        using var host = StressHostProcess.Start("soak", Policy, $"--seconds {seconds} --connections 64");
        string transcript = await host.AssertExitsCleanlyAsync(ChildTimeout + TimeSpan.FromSeconds(seconds));
        Assert.Contains($"OK soak {PrintedPolicy}", transcript);
    }
}

/// <summary>The managed loop on .NET's sockets (<c>EVENTLOOP_MANAGED_IO=sockets</c>), whose listener has its own EMFILE handling.</summary>
public sealed class ManagedSocketsCrashTests : CrashTests
{
    protected override string Policy => StressHostProcess.ManagedSockets;

    protected override string PrintedPolicy => "managed";

    protected override void AssertAcceptErrorsReported(int reported) => Assert.InRange(reported, 1, 10);
}

public sealed class ManagedCrashTests : CrashTests
{
    protected override string Policy => "managed";

    // The socket listener reports the first EMFILE of an episode, backs off, and keeps accepting.
    protected override void AssertAcceptErrorsReported(int reported) => Assert.InRange(reported, 1, 10);
}

public sealed class LibuvCrashTests : CrashTests
{
    protected override string Policy => "libuv";

    // libuv handles EMFILE inside its listener (it closes a reserved descriptor, accepts the excess connection
    // and drops it) and tells the connection callback nothing, so there is nothing to report; a report, if one
    // came, would be once per episode.
    protected override void AssertAcceptErrorsReported(int reported) => Assert.InRange(reported, 0, 10);
}
