using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// The talk's aiofiles slide on the loop: a large file copied while a 10 ms ticker runs on the same loop. The async copy
/// reads and writes with the loop's file API (<see cref="Loop.Files"/>: libuv's <c>uv_fs_*</c> on its thread pool, or
/// <see cref="RandomAccess"/> on the managed loop), so the loop thread only starts each read and write and goes on
/// ticking; <c>--sync</c> copies with a blocking <see cref="FileStream"/> on the loop thread, and the ticker stops for
/// the whole copy. The ticker's largest gap tells them apart.
/// </summary>
internal static class FilesDemo
{
    public const int DefaultSizeMiB = 256;
    public const int MaxSizeMiB = 16 * 1024;
    private const int ChunkSize = 1024 * 1024;

    /// <summary>What one copy did.</summary>
    /// <param name="Bytes">The file's size.</param>
    /// <param name="Elapsed">From the copy's start until its last write was back on the loop.</param>
    /// <param name="LargestGap">The longest time between two ticks of the ticker, from a tick before the copy to one after it.</param>
    /// <param name="Sync">The blocking copy on the loop thread.</param>
    /// <param name="Identical">The copy's bytes are the source's (checked after the timing).</param>
    public sealed record Result(long Bytes, TimeSpan Elapsed, TimeSpan LargestGap, bool Sync, bool Identical)
    {
        public double MiBPerSecond => Bytes / (1024.0 * 1024.0) / Math.Max(Elapsed.TotalSeconds, 1e-9);
    }

    /// <summary>The reason the size is bad (one line, naming the option), or null when it is good.</summary>
    public static string? Validate(int sizeMiB) =>
        sizeMiB is < 1 or > MaxSizeMiB ? $"--size-mib must be between 1 and {MaxSizeMiB}, not {sizeMiB}." : null;

    /// <summary>Makes a <paramref name="sizeMiB"/> MiB source file in a temporary directory, copies it, and removes both files.</summary>
    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, int sizeMiB, bool sync, CancellationToken cancellationToken = default)
    {
        if (Validate(sizeMiB) is { } error)
        {
            throw new ArgumentOutOfRangeException(nameof(sizeMiB), error);
        }

        string directory = Directory.CreateTempSubdirectory("evl-files-demo-").FullName;
        try
        {
            string source = Path.Combine(directory, "source.bin"), copy = Path.Combine(directory, "copy.bin");
            long bytes = (long)sizeMiB * 1024 * 1024;
            await loop.RunInExecutor(() => MakeSource(source, bytes), cancellationToken); // not timed
            console.MarkupLine($"[bold yellow]Files[/] on the {loop.PolicyName} loop: a {sizeMiB} MiB file copied " +
                               (sync ? "with a blocking FileStream [red]on the loop thread[/]" : "with the loop's async file API (loop.Files)") +
                               $", a {CpuDemo.TickInterval.TotalMilliseconds:F0} ms ticker on the loop");

            var ticker = new CpuDemo.Ticker(loop);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task ticking = ticker.RunAsync(stop.Token);
            TimeSpan elapsed;
            try
            {
                await ticker.NextTickAsync(); // the ticker is running before the copy starts
                ticker.ResetGap();
                var watch = Stopwatch.StartNew();
                if (sync)
                {
                    CopyBlocking(source, copy);
                }
                else
                {
                    await CopyAsync(loop, source, copy, cancellationToken);
                }

                elapsed = watch.Elapsed;
                await ticker.NextTickAsync(); // so that the gap spanning the copy's end counts too
            }
            finally
            {
                stop.Cancel();
                await ticking;
            }

            bool identical = await loop.RunInExecutor(() => SameBytes(source, copy), cancellationToken);
            var result = new Result(bytes, elapsed, ticker.LargestGap, sync, identical);
            console.MarkupLine($"  copied in {elapsed.TotalSeconds:F2} s ({result.MiBPerSecond:N0} MiB/s); the ticker's largest gap: " +
                               $"[{(sync ? "red" : "green")}]{result.LargestGap.TotalMilliseconds:N0} ms[/]" +
                               (identical ? ", the copy is identical" : ", [red]the copy differs[/]"));
            // The last line, for scripts: written past Spectre.Console, which would wrap it at the console's width.
            console.Profile.Out.Writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"files: {(sync ? "sync" : "async")} copy of {sizeMiB} MiB in {elapsed.TotalSeconds:F2} s ({result.MiBPerSecond:F0} MiB/s), " +
                $"largest ticker gap {result.LargestGap.TotalMilliseconds:F0} ms, {(identical ? "identical" : "DIFFERENT")}, {loop.PolicyName} loop"));
            return result;
        }
        finally
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>The async copy: 1 MiB positional reads and writes through the loop, two chunks in flight.</summary>
    public static async Task CopyAsync(Loop loop, string source, string destination, CancellationToken cancellationToken = default)
    {
        await using LoopFile input = await loop.Files.OpenAsync(source, cancellationToken: cancellationToken);
        await using LoopFile output = await loop.Files.OpenAsync(destination, FileMode.Create, FileAccess.Write, cancellationToken);
        byte[] current = new byte[ChunkSize], next = new byte[ChunkSize];
        long offset = 0;
        int read = await input.ReadAsync(current, offset, cancellationToken);
        while (read > 0)
        {
            // The next read runs while this chunk is written: the disk (or the page cache) and the loop both stay busy.
            ValueTask<int> reading = input.ReadAsync(next, offset + read, cancellationToken);
            await output.WriteAsync(current.AsMemory(0, read), offset, cancellationToken);
            offset += read;
            read = await reading;
            (current, next) = (next, current);
        }
    }

    /// <summary>The blocking copy, on the calling thread (the loop thread, in the demo: nothing else runs meanwhile).</summary>
    private static void CopyBlocking(string source, string destination)
    {
        using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        using var output = new FileStream(destination, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        byte[] buffer = new byte[ChunkSize];
        int read;
        while ((read = input.Read(buffer)) > 0)
        {
            output.Write(buffer, 0, read);
        }
    }

    private static void MakeSource(string path, long bytes)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        byte[] chunk = new byte[ChunkSize];
        var random = new Random(42);
        for (long written = 0; written < bytes; written += chunk.Length)
        {
            random.NextBytes(chunk.AsSpan(0, 4096)); // a new head per chunk: no two chunks alike
            file.Write(chunk, 0, (int)Math.Min(chunk.Length, bytes - written));
        }
    }

    private static bool SameBytes(string a, string b)
    {
        using FileStream first = File.OpenRead(a), second = File.OpenRead(b);
        return first.Length == second.Length && SHA256.HashData(first).AsSpan().SequenceEqual(SHA256.HashData(second));
    }
}
