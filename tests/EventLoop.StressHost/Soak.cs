using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>
/// Everything at once for a while: loop timers and <c>TimeProvider</c> timers churning, two threads posting,
/// and echoing connections checking every byte. Memory (the managed heap after a full collection), open
/// descriptors and native handles are sampled through the run and must stay flat once warmed up.
/// </summary>
internal static class Soak
{
    private readonly record struct Sample(double Seconds, long Heap, int Descriptors, int Handles);

    public static void Run(LoopPolicy policy, TimeSpan duration, int connections, Failures failures)
    {
        var samples = new List<Sample>();
        long timersFired = 0;
        long posted = 0;
        long postsRun = 0;
        long echoedBytes = 0;
        using Loop loop = policy.CreateLoop(failures.StrictOptions("soak"));
        loop.RunUntilComplete(async () =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var stop = new CancellationTokenSource();
            await using ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), new TcpOptions { Backlog = 1024 });
            Task serve = ServeAsync(listener);
            var work = new List<Task>();

            // Timers: loop sleeps of random lengths, and TimeProvider timers created, changed and disposed.
            for (int i = 0; i < 256; i++)
            {
                int seed = i;
                work.Add(TimersAsync(seed));
            }

            // Posts from two threads, kept at most 10,000 ahead of the loop.
            for (int t = 0; t < 2; t++)
            {
                work.Add(Task.Factory.StartNew(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        if (Interlocked.Read(ref posted) - Interlocked.Read(ref postsRun) > 10_000)
                        {
                            Thread.Yield();
                            continue;
                        }

                        try
                        {
                            loop.CallSoonThreadSafe(() => Interlocked.Increment(ref postsRun));
                            Interlocked.Increment(ref posted);
                        }
                        catch (InvalidOperationException)
                        {
                            return;
                        }
                    }
                }, TaskCreationOptions.LongRunning));
            }

            for (int c = 0; c < connections; c++)
            {
                work.Add(ClientAsync(c));
            }

            // Samples through the run; the first quarter is warm-up.
            TimeSpan every = duration / 16;
            while (clock.Elapsed < duration)
            {
                await loop.DelayAsync(every);
                samples.Add(new Sample(clock.Elapsed.TotalSeconds, GC.GetTotalMemory(forceFullCollection: true), CountDescriptors(), loop.OpenNativeHandleCount));
            }

            stop.Cancel();
            await Task.WhenAll(work).WaitAsync(TimeSpan.FromSeconds(30));
            await listener.DisposeAsync();
            await serve.WaitAsync(TimeSpan.FromSeconds(30));

            async Task TimersAsync(int seed)
            {
                var random = new Random(seed);
                while (!stop.IsCancellationRequested)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(random.Next(0, 5)));
                    timersFired++;
                    using ITimer timer = loop.TimeProvider.CreateTimer(static _ => { }, null, TimeSpan.FromMilliseconds(random.Next(1, 50)), Timeout.InfiniteTimeSpan);
                    timer.Change(TimeSpan.FromMilliseconds(random.Next(1, 50)), TimeSpan.Zero);
                }
            }

            async Task ClientAsync(int id)
            {
                await using Connection connection = await loop.ConnectTcpAsync(listener.LocalEndPoint);
                var random = new Random(id);
                byte[] message = new byte[16 * 1024];
                while (!stop.IsCancellationRequested)
                {
                    int length = random.Next(1, message.Length);
                    random.NextBytes(message.AsSpan(0, length));
                    await connection.Output.WriteAsync(message.AsMemory(0, length));
                    int checkedBytes = 0;
                    while (checkedBytes < length)
                    {
                        ReadResult result = await connection.Input.ReadAsync();
                        long take = Math.Min(result.Buffer.Length, length - checkedBytes);
                        foreach (ReadOnlyMemory<byte> segment in result.Buffer.Slice(0, take))
                        {
                            if (!segment.Span.SequenceEqual(message.AsSpan(checkedBytes, segment.Length)))
                            {
                                failures.Add($"soak: connection {id} got wrong bytes");
                                return;
                            }

                            checkedBytes += segment.Length;
                        }

                        connection.Input.AdvanceTo(result.Buffer.GetPosition(take));
                        if (result.IsCompleted && checkedBytes < length)
                        {
                            failures.Add($"soak: connection {id} ended early");
                            return;
                        }
                    }

                    echoedBytes += length;
                }
            }
        });

        failures.CheckClosedCleanly(loop, "soak");
        if (Interlocked.Read(ref posted) != Interlocked.Read(ref postsRun))
        {
            failures.Add($"soak: {posted} posts accepted but {postsRun} ran");
        }

        Sample[] steady = samples.Skip(samples.Count / 4).ToArray();
        if (steady.Length < 4)
        {
            failures.Add($"soak: only {samples.Count} samples");
            return;
        }

        long heapGrowth = steady[^1].Heap - steady.Min(s => s.Heap);
        int descriptorSpread = steady.Max(s => s.Descriptors) - steady.Min(s => s.Descriptors);
        int handleSpread = steady.Max(s => s.Handles) - steady.Min(s => s.Handles);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"soak {policy.Name}: {duration.TotalSeconds:F0} s, {timersFired:N0} loop timers, {postsRun:N0} posts, {echoedBytes / (1024.0 * 1024):F0} MiB echoed over {connections} connections; " +
            $"heap {steady[0].Heap / 1024} -> {steady[^1].Heap / 1024} KiB, descriptors {steady[0].Descriptors} -> {steady[^1].Descriptors}, handles {steady[0].Handles} -> {steady[^1].Handles}"));

        // Flat: the heap may breathe by a few MiB (pools filling, timer wheels), never grow with time.
        if (heapGrowth > (8 * 1024 * 1024) + (steady[0].Heap / 4))
        {
            failures.Add($"soak: the heap grew by {heapGrowth / 1024} KiB after warm-up");
        }

        if (descriptorSpread > 8)
        {
            failures.Add($"soak: open descriptors moved by {descriptorSpread} after warm-up");
        }

        if (handleSpread != 0)
        {
            failures.Add($"soak: open native handles moved by {handleSpread} after warm-up");
        }

        async Task ServeAsync(ConnectionListener listener)
        {
            try
            {
                await foreach (Connection connection in listener)
                {
                    _ = Echo.ServeAsync(connection);
                }
            }
            catch (Exception ex) when (Echo.IsConnectionEnd(ex))
            {
            }
        }
    }

    private static int CountDescriptors()
    {
        try
        {
            return Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
    }
}
