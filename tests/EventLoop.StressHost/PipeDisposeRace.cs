using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>
/// <c>pipe2</c> pairs opened with <see cref="Loop.OpenPipe"/> while data flows both ways, and connections disposed,
/// aborted and cancelled from another thread at random moments; writers stalled on a read end nobody reads, whose
/// read end the chaos closes mid-flush (EPIPE); <c>ownsHandle: false</c> duplicates whose caller closes its own
/// descriptor meanwhile; and loops closed with pipes still open and data in flight. Every byte that comes back is
/// checked, every wait is bounded, every loop must close with nothing left open and nothing reported, and the process
/// must have closed every descriptor of the iteration's pipes and hold as many sockets and anonymous inodes as before
/// (<c>/proc/self/fd</c>).
/// </summary>
internal static class PipeDisposeRace
{
    private const int Links = 4; // duplex links: two pipe2 pairs each, a client on one side and an echo on the other
    private const int Stalled = 2; // writers into a read end the caller holds and never reads
    private const int ChunkSize = 16 * 1024;
    private const int Chunks = 64; // 1 MiB each way per link: enough that the chaos lands mid-flow
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    // What the races did, printed at the end so a run shows the paths it took (EPIPE, shutdown with pipes open, ...).
    private static long s_epipes, s_writerAborts, s_bytesEchoed, s_abruptCloses, s_callerCloses, s_foreignPipes;

    public static void Run(LoopPolicy policy, int iterations, int seed, Failures failures)
    {
        // Iteration -1 warms up: descriptors the runtime opens once and keeps (the socket engine's epoll, say) are open
        // before the first count.
        for (int i = -1; i < iterations && failures.Count == 0; i++)
        {
            string where = $"iteration {i} (seed {seed + i})";
            Dictionary<int, string> before = OpenDescriptors();
            var caller = new CallerDescriptors();
            var disposals = new List<Task>(); // the chaos thread's disposes, which may wait for a drain until the loop closes
            using (var watchdog = new Timer(_ => Hang(where), null, TimeSpan.FromSeconds(90), Timeout.InfiniteTimeSpan))
            {
                using (Loop loop = policy.CreateLoop(failures.StrictOptions(where)))
                {
                    loop.RunUntilComplete(() => RoundAsync(loop, new Random(seed + i), caller, disposals, where, failures));
                    failures.CheckClosedCleanly(loop, where);
                }

                // A graceful dispose waits for its writes to drain; the loop's shutdown has closed what was left.
                Task[] pending;
                lock (disposals)
                {
                    pending = disposals.ToArray();
                }

                if (!Task.WhenAll(pending).Wait(Bound))
                {
                    failures.Add($"{where}: a dispose from another thread did not complete within {Bound.TotalSeconds} s of the loop closing (a hang)");
                }

                caller.CloseAll(); // what the caller had not closed yet, now that the loop is gone
            }

            // None of the iteration's pipes may be open any more, and the loop's own descriptors (sockets, epoll, eventfd)
            // must be as many as before. Pipes the runtime opens meanwhile are none of this scenario's business.
            Dictionary<int, string> after = OpenDescriptors();
            string[] leaked;
            lock (s_pipesMade)
            {
                leaked = after.Where(entry => s_pipesMade.Contains(entry.Value)).Select(entry => $"{entry.Key} -> {entry.Value} ({Flags(entry.Key)})").ToArray();
                s_foreignPipes += after.Count(entry => entry.Value.StartsWith("pipe:", StringComparison.Ordinal)
                    && !s_pipesMade.Contains(entry.Value) && !before.ContainsValue(entry.Value));
                s_pipesMade.Clear();
            }

            if (leaked.Length != 0)
            {
                failures.Add($"{where}: {leaked.Length} descriptor(s) of the iteration's pipes still open: {string.Join(", ", leaked)}");
            }

            int loopBefore = before.Values.Count(target => !target.StartsWith("pipe:", StringComparison.Ordinal));
            int loopAfter = after.Values.Count(target => !target.StartsWith("pipe:", StringComparison.Ordinal));
            if (loopAfter != loopBefore && i >= 0)
            {
                IEnumerable<string> changed = after.Where(entry => !before.TryGetValue(entry.Key, out string? target) || target != entry.Value)
                    .Select(entry => $"{entry.Key} -> {entry.Value}");
                failures.Add($"{where}: {loopBefore} sockets and anonymous inodes open before, {loopAfter} after; new: {string.Join(", ", changed)}");
            }
        }

        Console.WriteLine($"stalled writers failed with EPIPE {s_epipes}, ended by a dispose or abort {s_writerAborts}; " +
            $"bytes echoed {s_bytesEchoed}; caller closes {s_callerCloses}; loops closed with data in flight {s_abruptCloses}; " +
            $"descriptors of pipes opened by others meanwhile {s_foreignPipes}");
    }

    /// <summary>The open flags of <paramref name="fd"/> (<c>/proc/self/fdinfo</c>), for a leak's report.</summary>
    private static string Flags(int fd)
    {
        try
        {
            return File.ReadLines($"/proc/self/fdinfo/{fd}").FirstOrDefault(line => line.StartsWith("flags:", StringComparison.Ordinal)) ?? "?";
        }
        catch (IOException)
        {
            return "closed meanwhile";
        }
    }

    private static void Hang(string where)
    {
        Console.WriteLine($"FAIL {where}: the iteration did not end within 90 s (a hang)");
        Console.Out.Flush();
        Environment.Exit(1);
    }

    /// <summary>
    /// The process's open pipes, sockets and anonymous inodes (epoll, eventfd), and what each is (<c>readlink</c>), from
    /// <c>/proc/self/fd</c>: what the scenario and the loops open. Files are left out: the runtime maps assemblies and
    /// symbols lazily (the first stack trace opens System.Diagnostics.StackTrace.dll and the .pdb files) and keeps them.
    /// </summary>
    private static Dictionary<int, string> OpenDescriptors()
    {
        var open = new Dictionary<int, string>();
        foreach (string path in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                string target = new FileInfo(path).LinkTarget ?? "?";
                if (target.StartsWith("pipe:", StringComparison.Ordinal) || target.StartsWith("socket:", StringComparison.Ordinal)
                    || target.StartsWith("anon_inode:", StringComparison.Ordinal))
                {
                    open[int.Parse(Path.GetFileName(path))] = target;
                }
            }
            catch (IOException)
            {
                // The directory's own descriptor, closed by the time it is read.
            }
        }

        return open;
    }

    private sealed record CallerFd(CallerDescriptors Owner, int Slot);

    /// <summary>
    /// The descriptors the caller keeps: originals of <c>ownsHandle: false</c> ends and the read ends of stalled
    /// writers. Each is closed exactly once, by whichever of the chaos thread and the loop thread gets there first.
    /// </summary>
    private sealed class CallerDescriptors
    {
        private readonly List<int> _fds = new();

        public CallerFd Add(int fd)
        {
            lock (_fds)
            {
                _fds.Add(fd);
                return new CallerFd(this, _fds.Count - 1);
            }
        }

        public void Close(CallerFd which)
        {
            int fd;
            lock (_fds)
            {
                fd = _fds[which.Slot];
                _fds[which.Slot] = -1;
            }

            if (fd < 0)
            {
                return;
            }

            Interlocked.Increment(ref s_callerCloses);
            if (close(fd) != 0)
            {
                throw new IOException($"close({fd}) failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        public void CloseAll()
        {
            int count;
            lock (_fds)
            {
                count = _fds.Count;
            }

            for (int slot = 0; slot < count; slot++)
            {
                Close(new CallerFd(this, slot));
            }
        }
    }

    private static async Task RoundAsync(Loop loop, Random random, CallerDescriptors caller, List<Task> disposals, string where, Failures failures)
    {
        // What the chaos thread may hit: connections and the caller's descriptors; filled before it starts, read-only after.
        var targets = new List<object>();
        using var cancel = new CancellationTokenSource();

        // Opens one end: owned by the connection, or (one time in three) a duplicate while the caller keeps the original.
        Connection Open(int fd)
        {
            bool owns = random.Next(3) != 0;
            Connection connection = loop.OpenPipe(fd, ownsHandle: owns);
            targets.Add(connection);
            if (!owns)
            {
                targets.Add(caller.Add(fd));
            }

            return connection;
        }

        var clients = new Task[Links];
        var echoes = new Task[Links];
        var ends = new (Connection Out, Connection In)[Links];
        for (int id = 0; id < Links; id++)
        {
            (int toEchoRead, int toEchoWrite) = NewPipe();
            (int fromEchoRead, int fromEchoWrite) = NewPipe();
            Connection clientOut = Open(toEchoWrite);
            Connection clientIn = Open(fromEchoRead);
            Connection echoIn = Open(toEchoRead);
            Connection echoOut = Open(fromEchoWrite);
            ends[id] = (clientOut, clientIn);
            echoes[id] = EchoAsync(echoIn, echoOut, where, failures);
            clients[id] = ClientAsync(clientOut, clientIn, id, cancel.Token, where, failures);
        }

        var stalled = new Task[Stalled];
        for (int i = 0; i < Stalled; i++)
        {
            (int read, int write) = NewPipe();
            targets.Add(caller.Add(read));
            stalled[i] = StalledWriterAsync(Open(write), where, failures);
        }

        // The chaos: another thread hits random targets at random moments, with every thread-safe operation.
        int chaosSeed = random.Next();
        Task chaos = Task.Run(async () =>
        {
            var rng = new Random(chaosSeed);
            for (int step = 0; step < 12; step++)
            {
                await Task.Delay(rng.Next(0, 4));
                switch (targets[rng.Next(targets.Count)], rng.Next(5))
                {
                    case (CallerFd fd, _):
                        fd.Owner.Close(fd); // the caller's close, racing the loop's use of its duplicate or the write into it
                        break;
                    case (Connection c, 0 or 1):
                        // Not awaited here: a graceful close of a writer whose reader is stalled waits for the drain.
                        Task disposal = c.DisposeAsync().AsTask();
                        lock (disposals)
                        {
                            disposals.Add(disposal);
                        }

                        break;
                    case (Connection c, 2 or 3):
                        c.Abort();
                        break;
                    default:
                        cancel.Cancel();
                        break;
                }
            }
        });

        if (await Task.WhenAny(chaos, loop.DelayAsync(Bound)) != chaos)
        {
            failures.Add($"{where}: the chaos thread did not finish within {Bound.TotalSeconds} s (a dispose hung)");
            return;
        }

        await chaos; // rethrows what the chaos thread hit

        // One round in four, the loop closes now, with data in flight, flushes pending and every pipe still open.
        if (random.Next(4) == 0)
        {
            Interlocked.Increment(ref s_abruptCloses);
            return;
        }

        // The caller closes its descriptors: every stalled writer sees EPIPE (if the chaos did not close it first).
        caller.CloseAll();
        if (!await AllEndAsync(loop, stalled))
        {
            failures.Add($"{where}: a writer whose read end was closed did not fail within {Bound.TotalSeconds} s (a hang)");
            return;
        }

        if (!await AllEndAsync(loop, clients))
        {
            failures.Add($"{where}: a client did not finish within {Bound.TotalSeconds} s (a hang)");
            return;
        }

        // Half the links are closed by the client, whose echo then sees end of stream or EPIPE and ends; the rest are
        // left open for the loop's shutdown to close.
        var closed = new List<Task>();
        for (int id = 0; id < Links; id++)
        {
            if (random.Next(2) == 0)
            {
                // Both at once: the echo may be stalled writing into the client's read end, which nobody reads now.
                closed.Add(ends[id].Out.DisposeAsync().AsTask());
                closed.Add(ends[id].In.DisposeAsync().AsTask());
                closed.Add(echoes[id]);
            }
        }

        if (!await AllEndAsync(loop, closed.ToArray()))
        {
            failures.Add($"{where}: a client's close or its echo did not end within {Bound.TotalSeconds} s (a hang)");
        }
    }

    private static async Task<bool> AllEndAsync(Loop loop, Task[] tasks)
    {
        Task all = Task.WhenAll(tasks);
        return await Task.WhenAny(all, loop.DelayAsync(Bound)) == all;
    }

    /// <summary>Echoes what comes in until end of stream or an end the chaos causes, then disposes both ends.</summary>
    private static async Task EchoAsync(Connection input, Connection output, string where, Failures failures)
    {
        try
        {
            while (true)
            {
                ReadResult result = await input.Input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    output.Output.Write(segment.Span);
                }

                input.Input.AdvanceTo(result.Buffer.End);
                FlushResult flush = await output.Output.FlushAsync();
                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (Echo.IsConnectionEnd(ex))
        {
        }
        catch (Exception ex)
        {
            failures.Add($"{where}: an echo failed: {ex}");
        }
        finally
        {
            await output.DisposeAsync(); // the client's read end sees end of stream
            await input.DisposeAsync(); // the client's writes fail with EPIPE
        }
    }

    /// <summary>Writes a patterned stream through one pipe and checks every byte that the echo sends back through the other.</summary>
    private static async Task ClientAsync(Connection output, Connection input, int id, CancellationToken cancel, string where, Failures failures)
    {
        long received = 0;
        Task reading = ReadAndCheckAsync();
        try
        {
            var chunk = new byte[ChunkSize];
            for (long sent = 0; sent < ChunkSize * Chunks; sent += ChunkSize)
            {
                for (int j = 0; j < chunk.Length; j++)
                {
                    chunk[j] = DisposeRace.PatternByte(id, sent + j);
                }

                FlushResult flush = await output.Output.WriteAsync(chunk, cancel);
                if (flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (Echo.IsConnectionEnd(ex))
        {
        }
        catch (Exception ex)
        {
            failures.Add($"{where}: client {id}'s writes failed: {ex}");
        }

        await reading;

        async Task ReadAndCheckAsync()
        {
            try
            {
                while (received < ChunkSize * Chunks)
                {
                    ReadResult result = await input.Input.ReadAsync(cancel);
                    foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                    {
                        ReadOnlySpan<byte> span = segment.Span;
                        for (int j = 0; j < span.Length; j++)
                        {
                            if (span[j] != DisposeRace.PatternByte(id, received + j))
                            {
                                failures.Add($"{where}: client {id} got a wrong byte at offset {received + j}");
                                return;
                            }
                        }

                        received += span.Length;
                        Interlocked.Add(ref s_bytesEchoed, span.Length);
                    }

                    input.Input.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted)
                    {
                        return;
                    }
                }
            }
            catch (Exception ex) when (Echo.IsConnectionEnd(ex))
            {
            }
            catch (Exception ex)
            {
                failures.Add($"{where}: client {id}'s reads failed: {ex}");
            }
        }
    }

    /// <summary>
    /// Writes into a pipe whose read end the caller holds and never reads, so a flush is pending when the chaos (or the
    /// round's end) closes the read end: the flush must fail (EPIPE, as a <see cref="ConnectionResetException"/>) or
    /// end because the chaos disposed or aborted the writer, and never hang.
    /// </summary>
    private static async Task StalledWriterAsync(Connection writer, string where, Failures failures)
    {
        try
        {
            var chunk = new byte[64 * 1024];
            for (int i = 0; i < 256; i++)
            {
                FlushResult flush = await writer.Output.WriteAsync(chunk);
                if (flush.IsCompleted)
                {
                    return;
                }
            }

            failures.Add($"{where}: 16 MiB went into a pipe nobody reads (no backpressure)");
        }
        catch (ConnectionResetException)
        {
            Interlocked.Increment(ref s_epipes);
        }
        catch (Exception ex) when (Echo.IsConnectionEnd(ex))
        {
            Interlocked.Increment(ref s_writerAborts);
        }
        catch (Exception ex)
        {
            failures.Add($"{where}: a stalled writer failed with {ex}");
        }
        finally
        {
            await writer.DisposeAsync();
        }
    }

    /// <summary>A new pipe: (read end, write end), blocking, close-on-exec.</summary>
    private static (int Read, int Write) NewPipe()
    {
        int[] fds = new int[2];
        if (pipe2(fds, OCloExec) != 0)
        {
            throw new IOException($"pipe2 failed: errno {Marshal.GetLastPInvokeError()}");
        }

        lock (s_pipesMade)
        {
            s_pipesMade.Add(new FileInfo($"/proc/self/fd/{fds[0]}").LinkTarget!);
        }

        return (fds[0], fds[1]);
    }

    /// <summary>The iteration's pipes, as <c>/proc/self/fd</c> names them (<c>pipe:[inode]</c>).</summary>
    private static readonly HashSet<string> s_pipesMade = new();

    private const int OCloExec = 0x80000;

    [DllImport("libc", SetLastError = true)]
    private static extern int pipe2(int[] fds, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);
}
