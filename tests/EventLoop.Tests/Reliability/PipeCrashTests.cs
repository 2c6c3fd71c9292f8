namespace EventLoop.Tests.Reliability;

/// <summary>
/// <c>pipe2</c> pairs opened with <see cref="Loop.OpenPipe"/> and disposed, aborted and closed under each other from
/// other threads while data flows (the stress host's <c>pipe-dispose-race</c>), in a child process
/// (<see cref="StressHostProcess"/>) that must exit 0: a crash fails the test instead of killing the run, a hang fails
/// its bounded waits, and a descriptor left open fails the child's <c>/proc/self/fd</c> count. Quick by default (a few
/// seconds per policy); <c>EVENTLOOP_STRESS=full</c> runs it at full size.
/// </summary>
public abstract class PipeCrashTests
{
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(StressHostProcess.FullSize ? 10 : 2);

    /// <summary>The policy's name as the stress host takes it.</summary>
    protected abstract string Policy { get; }

    /// <summary>The policy name the child prints (the policy, without the transport).</summary>
    protected virtual string PrintedPolicy => Policy;

    [Fact]
    public async Task Pipes_disposed_aborted_and_closed_under_each_other_from_other_threads_never_crash_hang_or_leak_a_descriptor()
    {
        int children = StressHostProcess.FullSize ? 10 : 2;
        int iterations = StressHostProcess.FullSize ? 300 : 40;
        for (int child = 0; child < children; child++)
        {
            using var host = StressHostProcess.Start("pipe-dispose-race", Policy, $"--iterations {iterations} --seed {(child * 1000) + 11}");
            string transcript = await host.AssertExitsCleanlyAsync(ChildTimeout);
            Assert.Contains($"OK pipe-dispose-race {PrintedPolicy}", transcript);
        }
    }
}

public sealed class ManagedPipeCrashTests : PipeCrashTests
{
    protected override string Policy => "managed";
}

/// <summary>The managed loop on .NET's sockets (<c>EVENTLOOP_MANAGED_IO=sockets</c>), which wraps a pipe in a <see cref="System.Net.Sockets.Socket"/>.</summary>
public sealed class ManagedSocketsPipeCrashTests : PipeCrashTests
{
    protected override string Policy => StressHostProcess.ManagedSockets;

    protected override string PrintedPolicy => "managed";
}

public sealed class LibuvPipeCrashTests : PipeCrashTests
{
    protected override string Policy => "libuv";
}
