using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using AngleSharp.Html.Parser;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>What to scrape: pages <c>{BaseUrl}/{n}</c> for n in [First, First + Count).</summary>
/// <param name="BaseUrl">The site, e.g. <c>http://127.0.0.1:8000</c>: an absolute http or https URL, checked once up front.</param>
/// <param name="First">The first page number.</param>
/// <param name="Count">How many pages.</param>
/// <param name="Concurrency">How many pages are fetched at once (async only).</param>
/// <param name="Quiet">Print only errors and the summary, not every title (for benchmarks).</param>
/// <param name="Warmup">Pages fetched first, unmeasured and unprinted (for benchmarks: JIT and connections).</param>
/// <param name="PageTimeout">How long one page may take (async only), on the loop clock; null for 10 s.</param>
internal sealed record ScraperOptions(string BaseUrl, int First = 150, int Count = 20, int Concurrency = 10, bool Quiet = false, int Warmup = 0, TimeSpan? PageTimeout = null)
{
    public static readonly TimeSpan DefaultPageTimeout = TimeSpan.FromSeconds(10);

    public TimeSpan Timeout => PageTimeout ?? DefaultPageTimeout;

    public string PageUrl(int page) => $"{BaseUrl.TrimEnd('/')}/{page.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// The talk's web scraper: fetch a run of episode pages and print each page's <c>&lt;h1&gt;</c>, in order.
/// The sync version fetches one page after another with a blocking <see cref="HttpClient.Send(HttpRequestMessage)"/>;
/// the async version fetches <see cref="ScraperOptions.Concurrency"/> at a time on the loop, through an
/// <see cref="HttpClient"/> whose connections are the loop's own TCP connections (<see cref="LoopHttp"/>), each
/// page within a fail scope (<see cref="CancelScopeLoopExtensions.FailAfterAsync{T}"/>, asyncio's <c>timeout</c>): a
/// page slower than <see cref="ScraperOptions.PageTimeout"/> is cancelled and reported as timed out.
/// Pages are parsed with AngleSharp. A page that fails (bad URL, refused, HTTP error, no title) prints one
/// line saying why; the others still complete. The last line reads <c>Fetched N pages in X.XX sec (R pages/s)</c>.
/// </summary>
internal static class ScraperDemo
{
    /// <summary>The most pages one run fetches (each page's outcome is kept for the report).</summary>
    public const int MaxCount = 100_000;

    /// <summary>The most pages fetched at once.</summary>
    public const int MaxConcurrency = 1_000;

    /// <summary>
    /// How long a connection may take to open, TLS handshake included: an https URL against a plain-HTTP port
    /// never completes its handshake (the server waits for a request line), so it fails after this, not after
    /// the whole request timeout.
    /// </summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Why <paramref name="baseUrl"/> cannot be scraped, or null when it is an absolute http or https URL.</summary>
    public static string? CheckBaseUrl(string baseUrl) =>
        !Uri.TryCreate(baseUrl, UriKind.Absolute, out Uri? uri) ? $"--base-url must be an absolute http or https URL, not '{baseUrl}'"
        : uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps ? $"--base-url must be an http or https URL, not '{baseUrl}' (scheme '{uri.Scheme}')"
        : null;

    /// <summary>Why the options cannot be used (a number out of range), or null when they can.</summary>
    public static string? CheckNumbers(ScraperOptions options) =>
        options.Count is < 0 or > MaxCount ? $"--count must be between 0 and {MaxCount}, not {options.Count}"
        : options.Concurrency is < 1 or > MaxConcurrency ? $"--concurrency must be between 1 and {MaxConcurrency}, not {options.Concurrency}"
        : options.Warmup is < 0 or > MaxCount ? $"--warmup must be between 0 and {MaxCount}, not {options.Warmup}"
        : (long)options.First + options.Count + options.Warmup > int.MaxValue ? $"--first {options.First} plus --count and --warmup go past the largest page number ({int.MaxValue})"
        : null;

    /// <summary>One page's outcome: its title, or why there is none.</summary>
    public sealed record Page(int Number, string Url, string? Title, string? Error);

    /// <summary>The run: every page in order, and the time the measured pages took.</summary>
    public sealed record Result(IReadOnlyList<Page> Pages, TimeSpan Elapsed)
    {
        public int Fetched => Pages.Count(p => p.Title is not null);

        public int Failed => Pages.Count(p => p.Title is null);
    }

    /// <summary>
    /// Starts the local stand-in site on <paramref name="loop"/> and scrapes it: async on the loop, or with
    /// <paramref name="sync"/> the blocking scraper on a pool thread (the loop keeps serving the site meanwhile).
    /// </summary>
    public static async Task<Result> RunWithLocalSiteAsync(Loop loop, IAnsiConsole console, ScraperOptions options, TimeSpan latency, bool sync, CancellationToken cancellationToken = default)
    {
        await using PodcastSite site = await PodcastSite.StartAsync(loop, latency, cancellationToken: cancellationToken);
        console.MarkupLine($"[grey]Local stand-in podcast site on the {loop.PolicyName} loop at {site.BaseUrl.ToString().TrimEnd('/')} ({latency.TotalMilliseconds:0} ms per page)[/]");
        ScraperOptions here = options with { BaseUrl = site.BaseUrl.ToString().TrimEnd('/') };
        return sync
            ? await loop.RunInExecutor(() => RunSync(console, here), cancellationToken)
            : await RunAsync(loop, console, here, cancellationToken);
    }

    /// <summary>The async scraper on <paramref name="loop"/>.</summary>
    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, ScraperOptions options, CancellationToken cancellationToken = default)
    {
        Validate(options);
        console.MarkupLine($"[bold yellow]Scraper, async[/] on the {loop.PolicyName} loop: {options.Count} pages from {Markup.Escape(options.BaseUrl)}, {options.Concurrency} at a time");
        using HttpClient client = LoopHttp.CreateClient(loop, connectTimeout: ConnectTimeout);
        var parser = new HtmlParser();
        if (options.Warmup > 0)
        {
            await FetchAllAsync(loop, client, parser, options with { First = options.First + options.Count, Count = options.Warmup }, null, cancellationToken);
        }

        var watch = Stopwatch.StartNew();
        List<Page> pages;
        if (console.Profile.Capabilities.Interactive && !options.Quiet && options.Count > 0)
        {
            // On a terminal: a progress bar while the pages come in (in any order), then the titles in order.
            // Spectre.Console redraws it from its own thread; its task counter is thread-safe.
            pages = await console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async progress =>
                {
                    ProgressTask bar = progress.AddTask($"fetching {options.Count} pages", maxValue: options.Count);
                    return await FetchAllAsync(loop, client, parser, options, null, cancellationToken, () => bar.Increment(1));
                });
            foreach (Page page in pages)
            {
                PrintPage(console, page, quiet: false);
            }
        }
        else
        {
            pages = await FetchAllAsync(loop, client, parser, options, page => PrintPage(console, page, options.Quiet), cancellationToken);
        }

        return Report(console, pages, watch.Elapsed);
    }

    /// <summary>The blocking scraper: one page after another on the calling thread.</summary>
    public static Result RunSync(IAnsiConsole console, ScraperOptions options)
    {
        Validate(options);
        console.MarkupLine($"[bold yellow]Scraper, sync[/] (blocking, one page at a time): {options.Count} pages from {Markup.Escape(options.BaseUrl)}");
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = ConnectTimeout }) { Timeout = TimeSpan.FromSeconds(30) };
        var parser = new HtmlParser();
        for (int i = 0; i < options.Warmup; i++)
        {
            FetchSync(client, parser, options, options.First + options.Count + i);
        }

        var watch = Stopwatch.StartNew();
        var pages = new List<Page>(options.Count);
        for (int i = 0; i < options.Count; i++)
        {
            Page page = FetchSync(client, parser, options, options.First + i);
            PrintPage(console, page, options.Quiet);
            pages.Add(page);
        }

        return Report(console, pages, watch.Elapsed);
    }

    /// <summary>Checks the options once, before any page: a bad base URL or number is one error, not one per page.</summary>
    private static void Validate(ScraperOptions options)
    {
        if (CheckNumbers(options) is { } numbers)
        {
            throw new ArgumentOutOfRangeException(nameof(options), numbers);
        }

        if (CheckBaseUrl(options.BaseUrl) is { } url)
        {
            throw new ArgumentException(url, nameof(options));
        }
    }

    private static async Task<List<Page>> FetchAllAsync(Loop loop, HttpClient client, HtmlParser parser, ScraperOptions options, Action<Page>? print, CancellationToken cancellationToken, Action? fetched = null)
    {
        // A sliding window of pages in flight, taken in page order, so the output is in order however the fetches
        // finish: the window runs ahead of the oldest page by twice the concurrency (so the semaphore always has
        // work queued while the oldest is awaited), and no more tasks than that exist at once, however many pages.
        var gate = new AsyncSemaphore(options.Concurrency, loop: loop);
        int window = options.Concurrency * 2;
        var inFlight = new Queue<Task<Page>>(window);
        var pages = new List<Page>(Math.Min(options.Count, 1024));
        int started = 0;
        while (started < options.Count || inFlight.Count > 0)
        {
            while (started < options.Count && inFlight.Count < window)
            {
                inFlight.Enqueue(FetchGatedAsync(options.First + started));
                started++;
            }

            Page page = await inFlight.Dequeue();
            print?.Invoke(page);
            pages.Add(page);
        }

        return pages;

        async Task<Page> FetchGatedAsync(int number)
        {
            await gate.WaitAsync(cancellationToken);
            try
            {
                return await FetchAsync(loop, client, parser, options, number, cancellationToken);
            }
            finally
            {
                gate.Release();
                fetched?.Invoke();
            }
        }
    }

    private static async Task<Page> FetchAsync(Loop loop, HttpClient client, HtmlParser parser, ScraperOptions options, int number, CancellationToken cancellationToken)
    {
        string url = options.PageUrl(number);
        try
        {
            // The page's deadline is a loop timer: the scope's token cancels the request and the read when it passes,
            // and FailAfterAsync turns that cancellation (and only that one) into a TimeoutException.
            return await loop.FailAfterAsync(options.Timeout, async token =>
            {
                using HttpResponseMessage response = await client.GetAsync(url, HttpCompletionOption.ResponseContentRead, token);
                if (!response.IsSuccessStatusCode)
                {
                    return new Page(number, url, null, HttpError(response));
                }

                string html = await response.Content.ReadAsStringAsync(token);
                return TitleOf(parser, number, url, html);
            }, cancellationToken);
        }
        catch (TimeoutException)
        {
            return new Page(number, url, null, $"timed out after {options.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s");
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            return new Page(number, url, null, Describe(ex, url));
        }
    }

    private static Page FetchSync(HttpClient client, HtmlParser parser, ScraperOptions options, int number)
    {
        string url = options.PageUrl(number);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            using HttpResponseMessage response = client.Send(request, HttpCompletionOption.ResponseContentRead);
            if (!response.IsSuccessStatusCode)
            {
                return new Page(number, url, null, HttpError(response));
            }

            using var reader = new StreamReader(response.Content.ReadAsStream());
            return TitleOf(parser, number, url, reader.ReadToEnd());
        }
        catch (Exception ex) // one page's failure, whatever it is, is reported and the run goes on
        {
            return new Page(number, url, null, Describe(ex, url));
        }
    }

    private static Page TitleOf(HtmlParser parser, int number, string url, string html)
    {
        using var document = parser.ParseDocument(html);
        string? title = document.QuerySelector("h1")?.TextContent.Trim();
        return string.IsNullOrEmpty(title) ? new Page(number, url, null, "no <h1> on the page") : new Page(number, url, title, null);
    }

    private static string HttpError(HttpResponseMessage response) =>
        $"HTTP {(int)response.StatusCode} {response.ReasonPhrase ?? response.StatusCode.ToString()}";

    /// <summary>One clear phrase for a failed fetch: the socket error when there is one (refused, unreachable, DNS).</summary>
    private static string Describe(Exception ex, string url)
    {
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => "host not found",
                    SocketError.TimedOut => "connection timed out",
                    SocketError.HostUnreachable or SocketError.NetworkUnreachable => "host unreachable",
                    _ => $"cannot connect: {socket.Message}",
                };
            }
        }

        // SocketsHttpHandler's ConnectTimeout (which covers the TLS handshake) ends in a TimeoutException.
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            if (e is TimeoutException)
            {
                return url.StartsWith("https:", StringComparison.OrdinalIgnoreCase)
                    ? $"no connection within {ConnectTimeout.TotalSeconds:0} s (the TLS handshake got no answer: is that port plain HTTP?)"
                    : $"no connection within {ConnectTimeout.TotalSeconds:0} s";
            }
        }

        return ex is TaskCanceledException ? "timed out" : ex.Message;
    }

    private static void PrintPage(IAnsiConsole console, Page page, bool quiet)
    {
        string number = page.Number.ToString(CultureInfo.InvariantCulture).PadLeft(5);
        if (page.Title is not null)
        {
            if (!quiet)
            {
                console.MarkupLine($"  [grey]{number}[/]  [cyan]{Markup.Escape(page.Title)}[/]");
            }
        }
        else
        {
            console.MarkupLine($"  [grey]{number}[/]  [red]ERROR {Markup.Escape(page.Url)}: {Markup.Escape(page.Error ?? "failed")}[/]");
        }
    }

    private static Result Report(IAnsiConsole console, List<Page> pages, TimeSpan elapsed)
    {
        var result = new Result(pages, elapsed);
        if (result.Failed > 0)
        {
            console.MarkupLine($"[red]{result.Failed} of {pages.Count} pages failed[/]");
        }

        double seconds = Math.Max(elapsed.TotalSeconds, 1e-9);
        console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"[bold]Fetched {result.Fetched} pages in {elapsed.TotalSeconds:F2} sec ({result.Fetched / seconds:F0} pages/s)[/]"));
        return result;
    }
}
