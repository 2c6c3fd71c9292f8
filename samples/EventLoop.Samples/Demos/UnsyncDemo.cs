using System.Diagnostics;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// The talk's "unsync" mix, done the .NET way: CPU-bound work runs truly in parallel on the thread pool (no
/// GIL), two downloads run on the loop through the loop's own TCP connections, two blocking downloads
/// (<see cref="HttpClient.Send(HttpRequestMessage)"/>) go to <see cref="Loop.RunInExecutor{T}(Func{T}, CancellationToken)"/>,
/// and many small waits are loop timers, all awaited together from the loop. Then the same pieces run again one
/// after another, each awaited before the next starts, so both times printed are measured. The pages come from
/// the local stand-in site (<see cref="PodcastSite"/>) started on the same loop, each served after
/// <c>downloadMs</c>, so the demo runs offline.
/// </summary>
internal static partial class UnsyncDemo
{
    /// <summary>The two measured times.</summary>
    /// <param name="Concurrent">Every piece started together, until the last one finished.</param>
    /// <param name="Sequential">The same pieces run again one after another (after the concurrent run, so with
    /// connections already open and code already compiled: if anything, this favours the sequential run).</param>
    public sealed record Result(TimeSpan Concurrent, TimeSpan Sequential);

    /// <summary>One piece of work: its name, and the work, which returns a line to show (or null).</summary>
    private sealed record Piece(string Name, Func<Task<string?>> Work);

    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, int sleeps = 1000, int cpuWork = 3_000_000, int downloadMs = 200)
    {
        console.MarkupLine($"[bold yellow]Unsync[/]: CPU-bound, blocking and async work together on the {loop.PolicyName} loop");
        await using PodcastSite site = await PodcastSite.StartAsync(loop, TimeSpan.FromMilliseconds(downloadMs));
        using HttpClient loopHttp = LoopHttp.CreateClient(loop);
        using var blockingHttp = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        List<Piece> pieces = Pieces(loop, site, loopHttp, blockingHttp, sleeps, cpuWork, downloadMs);

        var all = Stopwatch.StartNew();
        await Task.WhenAll(pieces.Select(async piece =>
        {
            var watch = Stopwatch.StartNew();
            string? detail = await piece.Work();
            if (detail is not null)
            {
                console.MarkupLine($"  [grey]{Markup.Escape(detail)}[/]");
            }

            console.MarkupLine($"  [green]done[/] {Markup.Escape(piece.Name)} in {watch.Elapsed.TotalSeconds:F2} s");
        }));
        TimeSpan concurrent = all.Elapsed;

        // The same pieces again, each awaited before the next starts: a measured sequential run, not a sum of
        // the concurrent run's completion times (those overlap, and each includes waiting for the others).
        console.MarkupLine($"  [grey]now the same {pieces.Count} pieces one after another...[/]");
        var one = Stopwatch.StartNew();
        foreach (Piece piece in pieces)
        {
            await piece.Work();
        }

        TimeSpan sequential = one.Elapsed;
        console.MarkupLine($"[bold]All at once: {concurrent.TotalSeconds:F2} sec; the same work one after another: {sequential.TotalSeconds:F2} sec[/]");
        return new Result(concurrent, sequential);
    }

    private static List<Piece> Pieces(Loop loop, PodcastSite site, HttpClient loopHttp, HttpClient blockingHttp, int sleeps, int cpuWork, int downloadMs)
    {
        var pieces = new List<Piece>();
        // The loop's downloads come first: SocketsHttpHandler opens its connections from a thread-pool work
        // item (the connect callback then hops to the loop), so on a small machine a connect queued behind the
        // CPU-bound and blocking work would wait for a free pool thread.
        for (int i = 1; i <= 2; i++)
        {
            string url = $"{site.BaseUrl}{i}";
            pieces.Add(new Piece($"async download {url} ({downloadMs} ms page, loop TCP)", async () =>
            {
                string html = await loopHttp.GetStringAsync(url);
                return $"got {html.Length:N0} chars from {url} on the loop";
            }));
        }

        for (int i = 1; i <= 3; i++)
        {
            pieces.Add(new Piece($"CPU-bound computation {i} (thread pool)", async () =>
            {
                await Task.Run(() => Compute(cpuWork));
                return null;
            }));
        }

        for (int i = 3; i <= 4; i++)
        {
            string url = $"{site.BaseUrl}{i}";
            pieces.Add(new Piece($"blocking download {url} ({downloadMs} ms page, HttpClient.Send via RunInExecutor)", async () =>
            {
                int length = await loop.RunInExecutor(() =>
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, url);
                    using HttpResponseMessage response = blockingHttp.Send(request);
                    response.EnsureSuccessStatusCode();
                    using var reader = new StreamReader(response.Content.ReadAsStream());
                    return reader.ReadToEnd().Length;
                });
                return $"got {length:N0} chars from {url} on a pool thread";
            }));
        }

        for (int i = 1; i <= 4; i++)
        {
            pieces.Add(new Piece($"{sleeps:N0} x 1 ms loop sleeps ({i})", async () =>
            {
                for (int s = 0; s < sleeps; s++)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
                }

                return null;
            }));
        }

        return pieces;
    }

    private static double Compute(int iterations)
    {
        double sum = 0;
        for (int i = 1; i < iterations; i++)
        {
            sum += Math.Sqrt(i) * Math.Sin(i);
        }

        return sum;
    }
}
