using System.Diagnostics;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// The talk's "unsync" mix, done the .NET way: CPU-bound work runs truly in parallel on the thread pool (no
/// GIL), two downloads run on the loop through the loop's own TCP connections, two blocking downloads
/// (<see cref="HttpClient.Send(HttpRequestMessage)"/>) go to <see cref="Loop.RunInExecutor{T}(Func{T}, CancellationToken)"/>,
/// and many small waits are loop timers, all awaited together from the loop. The pages come from the local
/// stand-in site (<see cref="PodcastSite"/>) started on the same loop, each served after
/// <c>downloadMs</c>, so the demo runs offline.
/// </summary>
internal static class UnsyncDemo
{
    public sealed record Result(TimeSpan Concurrent, TimeSpan Sequential);

    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, int sleeps = 1000, int cpuWork = 3_000_000, int downloadMs = 200)
    {
        console.MarkupLine($"[bold yellow]Unsync[/]: CPU-bound, blocking and async work together on the {loop.PolicyName} loop");
        var timings = new List<(string Name, TimeSpan Took)>();

        async Task Timed(string name, Func<Task> work)
        {
            var watch = Stopwatch.StartNew();
            await work();
            timings.Add((name, watch.Elapsed));
            console.MarkupLine($"  [green]done[/] {Markup.Escape(name)} in {watch.Elapsed.TotalSeconds:F2} s");
        }

        await using PodcastSite site = await PodcastSite.StartAsync(loop, TimeSpan.FromMilliseconds(downloadMs));
        using HttpClient loopHttp = LoopHttp.CreateClient(loop);
        using var blockingHttp = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        var all = Stopwatch.StartNew();
        var tasks = new List<Task>();
        // The loop's downloads start first: SocketsHttpHandler opens its connections from a thread-pool work
        // item (the connect callback then hops to the loop), so on a small machine a connect queued behind the
        // CPU-bound and blocking work would wait for a free pool thread.
        for (int i = 1; i <= 2; i++)
        {
            string url = $"{site.BaseUrl}{i}";
            tasks.Add(Timed($"async download {url} ({downloadMs} ms page, loop TCP)", async () =>
            {
                string html = await loopHttp.GetStringAsync(url);
                console.MarkupLine($"  [grey]got {html.Length:N0} chars from {Markup.Escape(url)} on the loop[/]");
            }));
        }

        for (int i = 1; i <= 3; i++)
        {
            int n = i;
            tasks.Add(Timed($"CPU-bound computation {n} (thread pool)", () => Task.Run(() => Compute(cpuWork))));
        }

        for (int i = 3; i <= 4; i++)
        {
            string url = $"{site.BaseUrl}{i}";
            tasks.Add(Timed($"blocking download {url} ({downloadMs} ms page, HttpClient.Send via RunInExecutor)", async () =>
            {
                int length = await loop.RunInExecutor(() =>
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, url);
                    using HttpResponseMessage response = blockingHttp.Send(request);
                    response.EnsureSuccessStatusCode();
                    using var reader = new StreamReader(response.Content.ReadAsStream());
                    return reader.ReadToEnd().Length;
                });
                console.MarkupLine($"  [grey]got {length:N0} chars from {Markup.Escape(url)} on a pool thread[/]");
            }));
        }

        for (int i = 1; i <= 4; i++)
        {
            int n = i;
            tasks.Add(Timed($"{sleeps:N0} x 1 ms loop sleeps ({n})", async () =>
            {
                for (int s = 0; s < sleeps; s++)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
                }
            }));
        }

        await Task.WhenAll(tasks);
        TimeSpan concurrent = all.Elapsed;
        var sequential = TimeSpan.FromTicks(timings.Sum(t => t.Took.Ticks));
        console.MarkupLine($"[bold]All done in {concurrent.TotalSeconds:F2} sec; the same work one after another: {sequential.TotalSeconds:F2} sec[/]");
        return new Result(concurrent, sequential);
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
