namespace EventLoop.Tests.Reliability;

/// <summary>
/// Child processes disposed, killed and signalled from other threads while the loop uses them, in a child process
/// (<see cref="StressHostProcess"/>) that must exit 0: the process and pipe handles are closed from both sides of each
/// race, and a crash fails the test instead of killing the run.
/// </summary>
public abstract class ProcessCrashTests
{
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(StressHostProcess.FullSize ? 10 : 3);

    protected abstract string Policy { get; }

    protected virtual string PrintedPolicy => Policy;

    [Fact]
    public async Task Dispose_kill_and_signals_from_other_threads_at_random_moments_never_crash_or_leak()
    {
        int iterations = StressHostProcess.FullSize ? 200 : 20;
        using var host = StressHostProcess.Start("process-race", Policy, $"--iterations {iterations} --seed 7");
        string transcript = await host.AssertExitsCleanlyAsync(ChildTimeout);
        Assert.Contains($"OK process-race {PrintedPolicy}", transcript);
    }
}

public sealed class ManagedProcessCrashTests : ProcessCrashTests
{
    protected override string Policy => "managed";
}

public sealed class ManagedSocketsProcessCrashTests : ProcessCrashTests
{
    protected override string Policy => StressHostProcess.ManagedSockets;

    protected override string PrintedPolicy => "managed";
}

public sealed class LibuvProcessCrashTests : ProcessCrashTests
{
    protected override string Policy => "libuv";
}
