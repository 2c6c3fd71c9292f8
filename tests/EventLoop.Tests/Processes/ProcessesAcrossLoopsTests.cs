using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Processes;

/// <summary>
/// Several loops spawning at once, of both policies, beside .NET's own <see cref="System.Diagnostics.Process"/>: each
/// SIGCHLD reaches every loop that has children (and the runtime), and each reaps only its own.
/// </summary>
[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class ProcessesAcrossLoopsTests
{
    [Fact]
    public async Task A_libuv_loop_a_managed_loop_and_DotNet_Process_spawn_at_once_and_each_sees_its_children_exit()
    {
        Task<int> SpawnManyAsync(LoopPolicy policy, int offset)
        {
            var options = new LoopProcessOptions { StandardOutput = ProcessStdio.Discard };
            return Task.Factory.StartNew(() => Loop.Run(async () =>
            {
                int total = 0;
                for (int i = 0; i < 60; i++)
                {
                    await using LoopProcess process = Loop.Current.StartProcess("/bin/sh", ["-c", $"exit {(i + offset) % 50}"], options);
                    total += (await process.WaitForExitAsync().WaitAsync(TestTimeout)).ExitCode;
                }

                return total;
            }, policy), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        async Task<int> DotNetProcessesAsync()
        {
            int total = 0;
            for (int i = 0; i < 20; i++)
            {
                using var process = System.Diagnostics.Process.Start("/bin/sh", ["-c", $"exit {i}"])!;
                await process.WaitForExitAsync().WaitAsync(TestTimeout);
                total += process.ExitCode;
            }

            return total;
        }

        int expected = Enumerable.Range(0, 60).Sum(i => i % 50);
        int expectedShifted = Enumerable.Range(0, 60).Sum(i => (i + 7) % 50);
        Task<int> libuv = SpawnManyAsync(Policies.Libuv(), 0);
        Task<int> libuv2 = SpawnManyAsync(Policies.Libuv(), 7);
        Task<int> managed = SpawnManyAsync(Policies.Managed(), 0);
        Task<int> dotnet = DotNetProcessesAsync();
        Assert.Equal(expected, await libuv.WaitAsync(TestTimeout * 3));
        Assert.Equal(expectedShifted, await libuv2.WaitAsync(TestTimeout * 3));
        Assert.Equal(expected, await managed.WaitAsync(TestTimeout * 3));
        Assert.Equal(Enumerable.Range(0, 20).Sum(), await dotnet.WaitAsync(TestTimeout * 3));
    }
}
