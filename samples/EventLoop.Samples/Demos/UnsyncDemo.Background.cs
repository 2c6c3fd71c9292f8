using System.Diagnostics;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

// unsync's own model: async functions run on a loop in a background thread, each call hands back a future at once,
// and the (synchronous) main thread goes on with its own work, collecting the results when it needs them.
internal static partial class UnsyncDemo
{
    /// <summary>What the background run saw.</summary>
    /// <param name="MainThread">The thread that submitted the work and went on.</param>
    /// <param name="LoopThread">The background loop's thread.</param>
    /// <param name="PieceThreads">For each async function, the thread it finished on.</param>
    /// <param name="PendingAfterSubmit">How many of them were still running when every submission had returned (at
    /// least the reporter, which waits for the main thread's steps).</param>
    /// <param name="MainSteps">CPU-bound steps the main thread did meanwhile, before it asked for the results.</param>
    /// <param name="Reported">The steps the background reporter received from the main thread, in order.</param>
    /// <param name="Downloaded">Characters fetched by the background downloads.</param>
    /// <param name="Background">The loop thread, stopped: for callers that check it closed cleanly.</param>
    public sealed record BackgroundResult(
        int MainThread, int LoopThread, int[] PieceThreads, int PendingAfterSubmit, int MainSteps, int[] Reported, int Downloaded, LoopThread Background);

    /// <summary>
    /// Starts a <see cref="EventLoop.LoopThread"/>, submits async functions to it from this (non-loop) thread (two
    /// downloads from the local site, served by the same background loop, a run of loop sleeps, and a reporter that
    /// awaits the main thread's progress on a loop queue), does CPU-bound work on this thread in steps while they run
    /// (posting each step to the reporter), then blocks for their results (safe: this is not the loop's thread) and
    /// stops the loop.
    /// </summary>
    public static BackgroundResult RunInBackground(LoopPolicy policy, IAnsiConsole console, int sleeps = 200, int cpuWork = 3_000_000, int downloadMs = 200)
    {
        int mainThread = Environment.CurrentManagedThreadId;
        console.MarkupLine($"[bold yellow]Unsync in the background[/]: async functions on a {policy.Name} loop in its own thread while the main thread goes on");
        LoopThread background = LoopThread.Start(policy, name: "unsync");
        try
        {
            int loopThread = background.RunAsync(() => Environment.CurrentManagedThreadId).GetAwaiter().GetResult();

            // The site and the loop's HTTP client live on the background loop, made there.
            (PodcastSite site, HttpClient http, AsyncQueue<int> progress) = background.RunAsync(async () =>
            {
                PodcastSite started = await PodcastSite.StartAsync(Loop.Current, TimeSpan.FromMilliseconds(downloadMs));
                return (started, LoopHttp.CreateClient(Loop.Current), new AsyncQueue<int>());
            }).GetAwaiter().GetResult();

            var watch = Stopwatch.StartNew();
            // Each submission returns at once with a Task: unsync's Unfuture.
            Task<(int Thread, int Chars)>[] downloads = Enumerable.Range(1, 2).Select(i => background.RunAsync(async () =>
            {
                string html = await http.GetStringAsync($"{site.BaseUrl}{i}");
                return (Environment.CurrentManagedThreadId, html.Length);
            })).ToArray();
            Task<int> sleeping = background.RunAsync(async () =>
            {
                for (int s = 0; s < sleeps; s++)
                {
                    await Loop.Current.DelayAsync(TimeSpan.FromMilliseconds(1));
                }

                return Environment.CurrentManagedThreadId;
            });
            // A loop function that waits for the main thread: it cannot finish before the main thread has gone on.
            const int Steps = 4;
            Task<(int Thread, int[] Steps)> reporter = background.RunAsync(async () =>
            {
                var received = new int[Steps];
                for (int i = 0; i < Steps; i++)
                {
                    received[i] = await progress.GetAsync();
                }

                return (Environment.CurrentManagedThreadId, received);
            });
            Task[] all = [.. downloads, sleeping, reporter];
            int pending = all.Count(task => !task.IsCompleted);
            console.MarkupLine($"  [grey]main thread {mainThread}: submitted {all.Length} async functions to loop thread {loopThread} ({pending} still running); going on[/]");

            // The main thread goes on with its own work, in steps, while the loop works, and tells the loop each step.
            int steps = 0;
            while (steps < Steps)
            {
                Compute(cpuWork / Steps);
                steps++;
                int step = steps;
                background.RunAsync(() => progress.TryPut(step)); // thread-safe hand-off to the loop, not awaited
                console.MarkupLine($"  main thread: CPU-bound step {steps} done; background: {all.Count(task => task.IsCompleted)} of {all.Length} done");
            }

            // Now it needs the results: blocking on them is fine here, off the loop (unsync's .result()).
            int downloaded = 0;
            var pieceThreads = new List<int>();
            foreach (Task<(int Thread, int Chars)> download in downloads)
            {
                (int thread, int chars) = download.GetAwaiter().GetResult();
                pieceThreads.Add(thread);
                downloaded += chars;
            }

            pieceThreads.Add(sleeping.GetAwaiter().GetResult());
            (int reporterThread, int[] reported) = reporter.GetAwaiter().GetResult();
            pieceThreads.Add(reporterThread);
            console.MarkupLine($"  [green]done[/] {downloads.Length} downloads ({downloaded:N0} chars) and {sleeps:N0} loop sleeps and the report of steps {string.Join(",", reported)} on thread(s) " +
                               $"{string.Join(", ", pieceThreads.Distinct())}, {steps} CPU steps on main thread {mainThread}, in {watch.Elapsed.TotalSeconds:F2} s");

            background.RunAsync(async () =>
            {
                http.Dispose();
                await site.DisposeAsync();
            }).GetAwaiter().GetResult();
            return new BackgroundResult(mainThread, loopThread, [.. pieceThreads], pending, steps, reported, downloaded, background);
        }
        finally
        {
            background.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
