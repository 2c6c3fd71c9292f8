using System.Diagnostics;
using System.Globalization;
using EventLoop.Libuv;

namespace EventLoop.EchoBenchmark;

/// <summary>
/// The file-read benchmark's .NET side (<c>file-read --loop managed|libuv --file PATH [--chunk BYTES] [--in-flight N]
/// [--passes N]</c>): reads the whole file with the loop's file API (<see cref="Loop.Files"/>, positional reads of
/// <c>--chunk</c> bytes, <c>--in-flight</c> at once), <c>--passes</c> times, after one unmeasured pass (the page cache
/// and the JIT warm). Prints <c>RESULT bytes=B seconds=S cpu_seconds=C</c>: the process's CPU time over the measured
/// passes (every thread: the loop's and the pool's that did the reads). The uvloop side is
/// <c>benchmarks/files/uvloop_file_read.py</c>, which prints the same line.
/// </summary>
internal static class FileRead
{
    public static int Run(string[] args)
    {
        string loopName = "managed";
        string? file = null;
        int chunk = 1024 * 1024, inFlight = 1, passes = 4;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--loop": loopName = Next(); break;
                case "--file": file = Next(); break;
                case "--chunk": chunk = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--in-flight": inFlight = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--passes": passes = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"Unknown file-read option '{args[i]}'.");
            }
        }

        if (file is null || chunk <= 0 || inFlight <= 0 || passes <= 0)
        {
            throw new ArgumentException("file-read needs --file, and --chunk, --in-flight and --passes must be positive.");
        }

        LoopPolicy policy = loopName switch
        {
            "managed" => new ManagedLoopPolicy(),
            "libuv" => new LibuvLoopPolicy(),
            _ => throw new ArgumentException($"--loop must be managed or libuv, not '{loopName}'."),
        };
        string line = Loop.Run(async () =>
        {
            Loop loop = Loop.Current;
            await using LoopFile input = await loop.Files.OpenAsync(file);
            long length = await input.GetLengthAsync();
            byte[][] buffers = [.. Enumerable.Range(0, inFlight).Select(_ => new byte[chunk])];
            await ReadAllAsync(input, length, buffers); // warm-up pass
            TimeSpan cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            long total = 0;
            for (int pass = 0; pass < passes; pass++)
            {
                total += await ReadAllAsync(input, length, buffers);
            }

            double seconds = watch.Elapsed.TotalSeconds;
            double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
            return string.Create(CultureInfo.InvariantCulture, $"RESULT bytes={total} seconds={seconds:F4} cpu_seconds={cpu:F4}");
        }, policy);
        Console.WriteLine(line);
        return 0;
    }

    /// <summary>One pass over the file: <c>buffers.Length</c> reads in flight, each at the next unread offset.</summary>
    private static async Task<long> ReadAllAsync(LoopFile input, long length, byte[][] buffers)
    {
        long next = 0, read = 0;
        var pending = new List<Task<int>>(buffers.Length);
        var owners = new List<byte[]>(buffers.Length);
        var offsets = new List<long>(buffers.Length);
        var free = new Stack<byte[]>(buffers);
        while (read < length)
        {
            while (free.Count > 0 && next < length)
            {
                byte[] buffer = free.Pop();
                pending.Add(input.ReadAsync(buffer, next).AsTask());
                owners.Add(buffer);
                offsets.Add(next);
                next += buffer.Length;
            }

            Task<int> done = await Task.WhenAny(pending);
            int index = pending.IndexOf(done);
            int bytes = await done;
            if (bytes <= 0)
            {
                throw new IOException($"The file ended early, at {offsets[index]}.");
            }

            read += bytes;
            free.Push(owners[index]);
            pending.RemoveAt(index);
            owners.RemoveAt(index);
            offsets.RemoveAt(index);
        }

        return read;
    }
}
