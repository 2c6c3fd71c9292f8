using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>Each demo on each policy, with small parameters, checked for the facts it claims.</summary>
public abstract class DemoTests : LoopTestBase
{
    private static (IAnsiConsole Console, StringWriter Text) CaptureConsole() => SamplesRun.CaptureConsole();

    /// <summary>
    /// These demos use the thread pool on purpose (CPU-bound work, RunInExecutor), and SocketsHttpHandler opens
    /// every connection from a pool work item, even for a blocking Send, which waits for it. On a 2-core runner
    /// the pool starts with 2 threads, so two blocking downloads plus the test threads of the other classes
    /// would starve it for the half-second steps in which the pool adds threads. A few more threads to start
    /// with (only ever raised, never lowered) keep these tests fast; the demos' own logic is unchanged.
    /// </summary>
    static DemoTests()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        if (workers < 16)
        {
            ThreadPool.SetMinThreads(16, io);
        }
    }

    /// <summary>Runs the loop on a thread of its own, so the test's (pool) thread is free meanwhile.</summary>
    private Task<T> RunLoopOffPool<T>(Func<Loop, Task<T>> main) =>
        Task.Factory.StartNew(() => RunLoop(main), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    [Fact]
    public void The_generator_prints_the_fibonacci_sequence_up_to_10000_both_ways()
    {
        var (console, text) = CaptureConsole();
        RunLoop(loop => GeneratorDemo.RunAsync(loop, console));
        string expected = "0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765";
        string[] lines = text.ToString().Split('\n');
        Assert.Contains(lines, l => l.Contains("sync") && !l.Contains("async") && l.TrimEnd().EndsWith(expected));
        Assert.Contains(lines, l => l.Contains("async") && l.Contains(expected + " (each awaited"));
    }

    [Fact]
    public void Producer_consumer_processes_all_20_items_and_async_latency_beats_sync()
    {
        var (console, text) = CaptureConsole();
        const double scale = 0.02;
        var async = RunLoop(loop => ProducerConsumerDemo.RunAsync(loop, console, scale));
        var sync = ProducerConsumerDemo.RunSync(console, scale);
        Assert.Equal(20, async.Processed);
        Assert.Equal(20, sync.Processed);
        Assert.True(async.AverageLatency < sync.AverageLatency, $"async {async.AverageLatency} vs sync {sync.AverageLatency}");
        Assert.Equal(40, text.ToString().Split('\n').Count(l => l.Contains("+++ processed value")));
        Assert.Contains("Processed 20 items in", text.ToString());
    }

    [Fact]
    public async Task Unsync_runs_everything_at_once_then_measures_the_same_pieces_one_after_another()
    {
        const int Sleeps = 20;
        const int DownloadMs = 50;
        var (console, text) = CaptureConsole();
        var (result, whole) = await RunLoopOffPool(async loop =>
        {
            var watch = Stopwatch.StartNew();
            UnsyncDemo.Result measured = await UnsyncDemo.RunAsync(loop, console, sleeps: Sleeps, cpuWork: 200_000, downloadMs: DownloadMs);
            return (measured, watch.Elapsed);
        });

        // Both times are measured, one run after the other, inside the demo: together they fit in the whole demo.
        // (The old demo summed the concurrent run's completion times instead, which overlap: that sum is far more
        // than the whole demo took.)
        Assert.True(result.Concurrent + result.Sequential <= whole,
            $"all at once {result.Concurrent} + one after another {result.Sequential} > the whole demo {whole}");

        // One after another really is one after another: at least the pieces' known minimum durations added up,
        // each page served DownloadMs after its request and each of the four sleep pieces Sleeps loop sleeps of
        // 1 ms (lower bounds on any machine, however loaded; run concurrently, the pieces would take about the longest).
        TimeSpan floor = TimeSpan.FromMilliseconds((4 * DownloadMs) + (4 * Sleeps));
        Assert.True(result.Sequential >= floor, $"one after another took {result.Sequential}, less than the {floor} its pieces need in a row");

        // (Not asserted: that all at once is faster. It is by design, but on a loaded two-core machine the CPU-bound
        // pieces running side by side can take as long as everything in a row; a timing bound would be flaky.)

        string output = text.ToString();
        Assert.Equal(11, output.Split('\n').Count(l => l.StartsWith("  done ")));
        Assert.Equal(2, output.Split('\n').Count(l => l.StartsWith("  done async download ")));
        Assert.Equal(2, output.Split('\n').Count(l => l.StartsWith("  done blocking download ")));
    }

    [Fact]
    public async Task Unsync_in_the_background_runs_async_functions_on_a_loop_thread_while_the_main_thread_goes_on()
    {
        var (console, text) = CaptureConsole();

        // The demo's "main thread" is a thread of its own here: it blocks for the results at the end, as unsync's does.
        UnsyncDemo.BackgroundResult result = await Task.Factory.StartNew(
            () => UnsyncDemo.RunInBackground(CreatePolicy(), console, sleeps: 20, cpuWork: 200_000, downloadMs: 20),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).WaitAsync(TestPipes.TestTimeout);

        Assert.NotEqual(result.MainThread, result.LoopThread);
        Assert.Equal(4, result.PieceThreads.Length); // two downloads, the sleeps, the reporter
        Assert.All(result.PieceThreads, thread => Assert.Equal(result.LoopThread, thread));
        Assert.True(result.Downloaded > 0);

        // The main thread went on after submitting: the reporter, submitted with the rest, could only finish on the
        // steps the main thread computed afterwards and handed over, in order.
        Assert.True(result.PendingAfterSubmit >= 1);
        Assert.Equal(4, result.MainSteps);
        Assert.Equal([1, 2, 3, 4], result.Reported);
        Assert.Equal(4, Lines(text).Count(l => l.StartsWith("  main thread: CPU-bound step ")));
        Assert.Contains(Lines(text), l => l.StartsWith("  done 2 downloads"));

        // The background loop was stopped, and closed everything.
        Assert.True(result.Background.Completion.IsCompletedSuccessfully);
        AssertClosedCleanly(result.Background.Loop);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => result.Background.RunAsync(() => { }));
    }

    private static string[] Lines(StringWriter text) =>
        text.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();

    private static void AssertEndsWithFetchedLine(StringWriter text, int fetched)
    {
        string last = Lines(text)[^1];
        Assert.Matches(new Regex($@"^Fetched {fetched} pages in \d+\.\d\d sec \(\d+ pages/s\)$"), last);
    }

    /// <summary>A port nothing listens on: bound and released again, so connecting to it is refused.</summary>
    private static int RefusedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static void AssertEveryTitleInOrder(ScraperDemo.Result result, StringWriter text, int first, int count)
    {
        Assert.Equal(count, result.Fetched);
        Assert.Equal(Enumerable.Range(first, count).Select(PodcastSite.Title), result.Pages.Select(p => p.Title));
        string[] titleLines = Lines(text).Where(l => l.Contains("Episode ")).ToArray();
        Assert.Equal(count, titleLines.Length);
        for (int i = 0; i < count; i++)
        {
            Assert.EndsWith($"{first + i}  {PodcastSite.Title(first + i)}", titleLines[i]);
        }

        AssertEndsWithFetchedLine(text, count);
    }

    [Fact]
    public async Task Scraper_async_finds_every_title_on_the_local_site_in_order()
    {
        var (console, text) = CaptureConsole();
        var options = new ScraperOptions("", First: 7, Count: 24, Concurrency: 5);
        var result = await RunLoopOffPool(loop => ScraperDemo.RunWithLocalSiteAsync(loop, console, options, TimeSpan.Zero, sync: false));
        AssertEveryTitleInOrder(result, text, 7, 24);
    }

    [Fact]
    public async Task Scraper_sync_finds_every_title_on_the_local_site_in_order()
    {
        var (console, text) = CaptureConsole();
        var options = new ScraperOptions("", First: 3, Count: 6);
        var result = await RunLoopOffPool(loop => ScraperDemo.RunWithLocalSiteAsync(loop, console, options, TimeSpan.Zero, sync: true));
        AssertEveryTitleInOrder(result, text, 3, 6);
    }

    [Fact]
    public async Task Scraper_reports_each_404_page_and_fetches_the_rest()
    {
        var (console, text) = CaptureConsole();
        var options = new ScraperOptions("", First: -1, Count: 4, Concurrency: 2);
        var result = await RunLoopOffPool(loop => ScraperDemo.RunWithLocalSiteAsync(loop, console, options, TimeSpan.Zero, sync: false));
        Assert.Equal(2, result.Fetched);
        string[] errors = Lines(text).Where(l => l.Contains("ERROR")).ToArray();
        Assert.Equal(2, errors.Length);
        Assert.All(errors, l => Assert.Contains("HTTP 404 Not Found", l));
        Assert.Contains("/-1: HTTP 404", errors[0]);
        Assert.Contains("/0: HTTP 404", errors[1]);
        Assert.Contains(Lines(text), l => l.EndsWith($"2  {PodcastSite.Title(2)}"));
        AssertEndsWithFetchedLine(text, 2);
    }

    [Fact]
    public async Task Scraper_reports_a_refused_url_page_by_page_while_a_working_site_is_scraped_alongside()
    {
        var (refusedConsole, refusedText) = CaptureConsole();
        var (siteConsole, siteText) = CaptureConsole();
        string refused = $"http://127.0.0.1:{RefusedPort()}";
        var (bad, good) = await RunLoopOffPool(async loop =>
        {
            Task<ScraperDemo.Result> badRun = ScraperDemo.RunAsync(loop, refusedConsole, new ScraperOptions(refused, First: 1, Count: 3, Concurrency: 2));
            Task<ScraperDemo.Result> goodRun = ScraperDemo.RunWithLocalSiteAsync(loop, siteConsole, new ScraperOptions("", First: 1, Count: 5, Concurrency: 2), TimeSpan.Zero, sync: false);
            return (await badRun, await goodRun);
        });

        Assert.Equal(0, bad.Fetched);
        string[] errors = Lines(refusedText).Where(l => l.Contains("ERROR")).ToArray();
        Assert.Equal(3, errors.Length);
        for (int i = 0; i < 3; i++)
        {
            Assert.Contains($"{refused}/{i + 1}: connection refused", errors[i]);
        }

        AssertEndsWithFetchedLine(refusedText, 0);
        AssertEveryTitleInOrder(good, siteText, 1, 5);
    }

    [Fact]
    public async Task Scraper_refuses_a_bad_base_url_once_before_any_page()
    {
        var (console, text) = CaptureConsole();
        var options = new ScraperOptions("ftp://example.invalid", First: 1, Count: 2);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => RunLoopOffPool(loop => ScraperDemo.RunAsync(loop, console, options)));
        Assert.StartsWith("--base-url must be an http or https URL, not 'ftp://example.invalid'", error.Message);
        Assert.Throws<ArgumentException>(() => ScraperDemo.RunSync(console, options));
        Assert.Empty(text.ToString());
    }

    [Fact]
    public async Task Scraper_keeps_pages_in_order_with_many_more_pages_than_its_window()
    {
        // More pages than the window (2 x concurrency) many times over: still every title, in order.
        var (console, text) = CaptureConsole();
        var options = new ScraperOptions("", First: 1, Count: 60, Concurrency: 3, Quiet: false);
        var result = await RunLoopOffPool(loop => ScraperDemo.RunWithLocalSiteAsync(loop, console, options, TimeSpan.Zero, sync: false));
        AssertEveryTitleInOrder(result, text, 1, 60);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e15)]
    [InlineData(0.0)]
    public void Producer_consumer_refuses_a_time_scale_out_of_range_instead_of_hanging(double scale)
    {
        var (console, text) = CaptureConsole();
        Assert.Throws<ArgumentOutOfRangeException>(() => RunLoop(loop => ProducerConsumerDemo.RunAsync(loop, console, scale)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProducerConsumerDemo.RunSync(console, scale));
        Assert.Empty(text.ToString());
    }
}

public sealed class ManagedDemoTests : DemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvDemoTests : DemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
