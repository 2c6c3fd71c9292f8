using System.Buffers;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>
/// Child processes disposed, killed and signalled from another thread at random moments while the loop writes to
/// them, reads from them and waits for them, and some exit by themselves meanwhile: the process handle and its pipe
/// handles are closed from both sides of every race. Every child must be reaped, every loop must close with nothing
/// left open (its handles, and every socket-pair end in <c>/proc/self/fd</c>) and nothing reported, and nothing may crash.
/// </summary>
internal static class ProcessRace
{
    private const int Children = 6;

    public static void Run(LoopPolicy policy, int iterations, int seed, Failures failures)
    {
        for (int i = 0; i < iterations && failures.Count == 0; i++)
        {
            string where = $"iteration {i} (seed {seed + i})";
            var pids = new List<int>();
            HashSet<string> socketsBefore = OpenSockets();
            using (Loop loop = policy.CreateLoop(failures.StrictOptions(where)))
            {
                loop.RunUntilComplete(() => RoundAsync(loop, new Random(seed + i), pids, where, failures));
                failures.CheckClosedCleanly(loop, where);
            }

            foreach (int pid in pids)
            {
                if (Directory.Exists($"/proc/{pid}"))
                {
                    failures.Add($"{where}: child {pid} was not reaped");
                }
            }

            // Every pipe end (a socket pair's, the parent's or the child's) is closed with its loop.
            HashSet<string> leaked = OpenSockets();
            leaked.ExceptWith(socketsBefore);
            if (leaked.Count > 0)
            {
                failures.Add($"{where}: {leaked.Count} socket descriptor(s) left open: {string.Join(", ", leaked)}");
            }
        }
    }

    private static async Task RoundAsync(Loop loop, Random random, List<int> pids, string where, Failures failures)
    {
        var options = new LoopProcessOptions { StandardInput = ProcessStdio.Pipe, StandardOutput = ProcessStdio.Pipe, StandardError = ProcessStdio.Discard };
        var processes = new LoopProcess[Children];
        var users = new Task[Children];
        for (int i = 0; i < Children; i++)
        {
            // Some echo until killed, some exit at once, some after a moment.
            processes[i] = (i % 3) switch
            {
                0 => loop.StartProcess("cat", null, options),
                1 => loop.StartProcess("/bin/true", null, options),
                _ => loop.StartShellProcess("head -c 1000 /dev/zero; sleep 0.0$((RANDOM % 5))", options),
            };
            pids.Add(processes[i].Id);
            users[i] = UseAsync(processes[i], where, failures);
        }

        int chaosSeed = random.Next();
        Task chaos = Task.Run(async () =>
        {
            var rng = new Random(chaosSeed);
            for (int step = 0; step < 10; step++)
            {
                await Task.Delay(rng.Next(0, 4));
                LoopProcess target = processes[rng.Next(processes.Length)];
                switch (rng.Next(4))
                {
                    case 0:
                        await target.DisposeAsync();
                        break;
                    case 1:
                        target.Kill();
                        break;
                    case 2:
                        target.SendSignal(15);
                        break;
                    default:
                        _ = target.HasExited;
                        break;
                }
            }
        });

        await chaos.WaitAsync(TimeSpan.FromSeconds(30));
        foreach (LoopProcess process in processes)
        {
            if (random.Next(2) == 0)
            {
                process.Kill(); // the rest are left to the loop's shutdown (cat) or end by themselves
            }
        }

        foreach (Task user in users)
        {
            if (!user.IsCompleted && await Task.WhenAny(user, loop.DelayAsync(TimeSpan.FromSeconds(20))) != user)
            {
                failures.Add($"{where}: a process user did not finish");
            }
        }

        for (int i = 0; i < Children; i++)
        {
            if (random.Next(3) != 0)
            {
                await processes[i].DisposeAsync(); // else the loop's shutdown kills and reaps it
            }
        }
    }

    /// <summary>This process's open sockets, as <c>/proc/self/fd</c> names them (<c>socket:[inode]</c>) with their descriptor.</summary>
    private static HashSet<string> OpenSockets()
    {
        var open = new HashSet<string>();
        foreach (string path in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                string? target = new FileInfo(path).LinkTarget;
                if (target?.StartsWith("socket:", StringComparison.Ordinal) == true)
                {
                    open.Add($"{Path.GetFileName(path)} -> {target}");
                }
            }
            catch (IOException)
            {
                // The directory's own descriptor, closed by the time it is read.
            }
        }

        return open;
    }

    /// <summary>Writes, reads what comes back and waits for the exit; every failure a race may cause is expected.</summary>
    private static async Task UseAsync(LoopProcess process, string where, Failures failures)
    {
        try
        {
            byte[] chunk = new byte[4096];
            for (int i = 0; i < 8; i++)
            {
                System.IO.Pipelines.FlushResult flush = await process.StandardInput!.WriteAsync(chunk);
                if (flush.IsCompleted)
                {
                    break;
                }

                System.IO.Pipelines.ReadResult read = await process.StandardOutput!.ReadAsync();
                process.StandardOutput.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    break;
                }
            }

            // End the child's input (cat then exits), and read what is left to the end.
            await process.StandardInput!.CompleteAsync();
            while (true)
            {
                System.IO.Pipelines.ReadResult read = await process.StandardOutput!.ReadAsync();
                process.StandardOutput.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException || ex.GetType().Name.Contains("Connection"))
        {
            // The child died, or the pipe was closed under the write or read: what a race may do.
        }

        ProcessExitStatus status = await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (status.TerminatingSignal is null && status.ExitCode != 0)
        {
            failures.Add($"{where}: child {process.Id} exited with {status}");
        }
    }
}
