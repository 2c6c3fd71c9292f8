using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>The scraper demo's per-page timeout: a fail scope (loop.FailAfterAsync) around each page's fetch.</summary>
public abstract class ScraperTimeoutTests : LoopTestBase
{
    [Fact]
    public void Pages_slower_than_the_page_timeout_are_reported_as_timed_out_and_the_run_ends()
    {
        var text = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(text),
        });
        console.Profile.Width = 10_000;
        var options = new ScraperOptions("", First: 1, Count: 3, Concurrency: 3, PageTimeout: TimeSpan.FromMilliseconds(50));

        // The site waits 2 s per page; each page's scope gives up after 50 ms and cancels its request.
        ScraperDemo.Result result = RunLoop(loop =>
            ScraperDemo.RunWithLocalSiteAsync(loop, console, options, TimeSpan.FromSeconds(2), sync: false));

        Assert.Equal(3, result.Failed);
        Assert.All(result.Pages, page => Assert.Equal("timed out after 0.05 s", page.Error));
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(2), $"the run took {result.Elapsed}: the timeouts did not cut the pages short");
        string[] lines = text.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();
        Assert.Equal(3, lines.Count(l => l.Contains("ERROR") && l.EndsWith(": timed out after 0.05 s")));
        Assert.Matches(new Regex(@"^Fetched 0 pages in \d+\.\d\d sec \(0 pages/s\)$"), lines[^1]);
    }
}

public sealed class ManagedScraperTimeoutTests : ScraperTimeoutTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvScraperTimeoutTests : ScraperTimeoutTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
