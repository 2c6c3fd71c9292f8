using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
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
/// <param name="Parse">How much of each page is parsed (<see cref="TitleParse"/>); the demo's way is <see cref="TitleParse.Scan"/>.</param>
/// <param name="PageSize">The local site's page size in bytes (0: the small classic page); unused with a <paramref name="BaseUrl"/>.</param>
internal sealed record ScraperOptions(string BaseUrl, int First = 150, int Count = 20, int Concurrency = 10, bool Quiet = false, int Warmup = 0, TimeSpan? PageTimeout = null,
    TitleParse Parse = TitleParse.Scan, int PageSize = 0)
{
    public static readonly TimeSpan DefaultPageTimeout = TimeSpan.FromSeconds(10);

    public TimeSpan Timeout => PageTimeout ?? DefaultPageTimeout;

    public string PageUrl(int page) => $"{BaseUrl.TrimEnd('/')}/{page.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>How the scraper gets a page's <c>&lt;h1&gt;</c> (the others are kept to measure the choice against).</summary>
internal enum TitleParse
{
    /// <summary>
    /// The default: the body is read as a stream and decoded read by read into a small buffer, a
    /// <see cref="FirstH1Scanner"/> finds the first h1 in it, and AngleSharp parses that element alone (when it
    /// holds markup or entities); the rest of the body is read off the connection, not decoded.
    /// </summary>
    Scan,

    /// <summary>Decoded the same way, but everything up to the first <c>&lt;/h1&gt;</c> goes to AngleSharp as a document.</summary>
    Prefix,

    /// <summary>The whole body as one string, parsed whole by AngleSharp (what the demo did first).</summary>
    Full,
}

/// <summary>
/// The talk's web scraper: fetch a run of episode pages and print each page's <c>&lt;h1&gt;</c>, in order.
/// The sync version fetches one page after another with a blocking <see cref="HttpClient.Send(HttpRequestMessage)"/>;
/// the async version fetches <see cref="ScraperOptions.Concurrency"/> at a time on the loop, through an
/// <see cref="HttpClient"/> whose connections are the loop's own TCP connections (<see cref="LoopHttp"/>), each
/// page within a fail scope (<see cref="CancelScopeLoopExtensions.FailAfterAsync{T}"/>, asyncio's <c>timeout</c>): a
/// page slower than <see cref="ScraperOptions.PageTimeout"/> is cancelled and reported as timed out.
/// Each body is read as a stream and parsed only as far as its first <c>&lt;/h1&gt;</c> (<see cref="TitleParse.Scan"/>),
/// with AngleSharp for the heading's own markup. A page that fails (bad URL, refused, HTTP error, no title) prints one
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


    /// <summary>The size of each read from a body: also what is decoded at a time, so no page becomes one big string.</summary>
    internal const int ReadBufferBytes = 16 * 1024;

    /// <summary>One page's outcome: its title, or why there is none; <paramref name="BodyBytes"/> is how much of the body was read.</summary>
    public sealed record Page(int Number, string Url, string? Title, string? Error, long BodyBytes = 0);

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
        await using PodcastSite site = await PodcastSite.StartAsync(loop, latency, cancellationToken: cancellationToken, pageSize: options.PageSize);
        string size = options.PageSize > 0 ? $", pages of about {options.PageSize / 1024.0:0.#} KiB" : "";
        console.MarkupLine($"[grey]Local stand-in podcast site on the {loop.PolicyName} loop at {site.BaseUrl.ToString().TrimEnd('/')} ({latency.TotalMilliseconds:0} ms per page{size})[/]");
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
        var printer = new PagePrinter(console);
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
                printer.Print(page, quiet: false);
            }
        }
        else
        {
            pages = await FetchAllAsync(loop, client, parser, options, page => printer.Print(page, options.Quiet), cancellationToken);
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
        var printer = new PagePrinter(console);
        for (int i = 0; i < options.Warmup; i++)
        {
            FetchSync(client, parser, options, options.First + options.Count + i);
        }

        var watch = Stopwatch.StartNew();
        var pages = new List<Page>(options.Count);
        for (int i = 0; i < options.Count; i++)
        {
            Page page = FetchSync(client, parser, options, options.First + i);
            printer.Print(page, options.Quiet);
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
                // Headers only: the body is read below as it arrives, and parsed only as far as it needs to be.
                using HttpResponseMessage response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, token);
                if (!response.IsSuccessStatusCode)
                {
                    return new Page(number, url, null, HttpError(response));
                }

                if (options.Parse == TitleParse.Full)
                {
                    string html = await response.Content.ReadAsStringAsync(token);
                    return TitleOf(parser, number, url, html, response.Content.Headers.ContentLength ?? html.Length);
                }

                await using Stream body = await response.Content.ReadAsStreamAsync(token);
                var reader = new TitleReader(EncodingOf(response), options.Parse);
                try
                {
                    int read;
                    while ((read = await body.ReadAsync(reader.Buffer, token)) > 0)
                    {
                        reader.Consume(read);
                    }

                    return reader.ToPage(parser, number, url);
                }
                finally
                {
                    reader.Dispose();
                }
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
            using HttpResponseMessage response = client.Send(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
            {
                return new Page(number, url, null, HttpError(response));
            }

            using Stream body = response.Content.ReadAsStream();
            using var reader = new TitleReader(EncodingOf(response), options.Parse);
            int read;
            while ((read = body.Read(reader.Buffer.Span)) > 0)
            {
                reader.Consume(read);
            }

            return reader.ToPage(parser, number, url);
        }
        catch (Exception ex) // one page's failure, whatever it is, is reported and the run goes on
        {
            return new Page(number, url, null, Describe(ex, url));
        }
    }

    /// <summary>Why a URL cannot be fetched at all, or null when it is a fine http(s) URL.</summary>
    private static string? CheckUrl(string url) =>
        !Uri.TryCreate(url, UriKind.Absolute, out Uri? uri) ? "bad URL (not a valid absolute URL)"
        : uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps ? $"bad URL (scheme '{uri.Scheme}', expected http or https)"
        : null;

    private static Page TitleOf(HtmlParser parser, int number, string url, string html, long bodyBytes)
    {
        using var document = parser.ParseDocument(html);
        return PageOf(number, url, document.QuerySelector("h1")?.TextContent.Trim(), bodyBytes);
    }

    private static Page PageOf(int number, string url, string? title, long bodyBytes) =>
        string.IsNullOrEmpty(title) ? new Page(number, url, null, "no <h1> on the page", bodyBytes) : new Page(number, url, title, null, bodyBytes);

    /// <summary>The body's encoding from its Content-Type charset; UTF-8 when there is none or it is unknown.</summary>
    private static Encoding EncodingOf(HttpResponseMessage response)
    {
        string? charset = response.Content.Headers.ContentType?.CharSet?.Trim('"');
        if (charset is null || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return Encoding.UTF8;
        }

        try
        {
            return Encoding.GetEncoding(charset);
        }
        catch (ArgumentException)
        {
            return Encoding.UTF8;
        }
    }

    /// <summary>
    /// One body, read by read: each read is decoded into a pooled buffer (a decoder carries a character split
    /// between reads) and fed to a <see cref="FirstH1Scanner"/> until it has the h1; later reads are only counted,
    /// so the connection is left at the end of the response and goes back to the pool for the next page.
    /// </summary>
    private sealed class TitleReader : IDisposable
    {
        private readonly Decoder _decoder;
        private readonly TitleParse _parse;
        private readonly FirstH1Scanner _scanner = new();
        private readonly StringBuilder? _prefix;
        private byte[]? _bytes;
        private char[]? _chars;
        private long _total;
        private bool _found;

        public TitleReader(Encoding encoding, TitleParse parse)
        {
            _decoder = encoding.GetDecoder();
            _parse = parse;
            _prefix = parse == TitleParse.Prefix ? new StringBuilder() : null;
            _bytes = ArrayPool<byte>.Shared.Rent(ReadBufferBytes);
            _chars = ArrayPool<char>.Shared.Rent(encoding.GetMaxCharCount(ReadBufferBytes));
        }

        public Memory<byte> Buffer => _bytes.AsMemory(0, ReadBufferBytes);

        /// <summary>The h1 is in: what is left of the body is read only to leave the connection at its end.</summary>
        public bool Found => _found;

        public void Consume(int read)
        {
            _total += read;
            if (!_found)
            {
                int chars = _decoder.GetChars(_bytes!, 0, read, _chars!, 0, flush: false);
                _prefix?.Append(_chars, 0, chars);
                _found = _scanner.Feed(_chars.AsSpan(0, chars));
            }
        }

        public Page ToPage(HtmlParser parser, int number, string url)
        {
            if (!_found)
            {
                int chars = _decoder.GetChars([], 0, 0, _chars!, 0, flush: true);
                _prefix?.Append(_chars, 0, chars);
                _scanner.Feed(_chars.AsSpan(0, chars));
            }

            if (_prefix is not null)
            {
                using var document = parser.ParseDocument(_prefix.ToString());
                return PageOf(number, url, document.QuerySelector("h1")?.TextContent.Trim(), _total);
            }

            return PageOf(number, url, _scanner.Title(parser), _total);
        }

        public void Dispose()
        {
            if (_bytes is not null)
            {
                ArrayPool<byte>.Shared.Return(_bytes);
                ArrayPool<char>.Shared.Return(_chars!);
                _bytes = null;
                _chars = null;
            }
        }
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

    /// <summary>
    /// Writes result lines straight to the console's writer, as plain text, coloured with fixed ANSI codes when
    /// the console takes colour: no markup is parsed and nothing is laid out per line (Spectre's markup parser
    /// was 9-17% of the client's time per page on real-sized pages, issue 11).
    /// </summary>
    private sealed class PagePrinter(IAnsiConsole console)
    {
        private readonly TextWriter _out = console.Profile.Out.Writer;
        private readonly bool _colour = console.Profile.Capabilities.Ansi && console.Profile.Capabilities.ColorSystem != ColorSystem.NoColors;

        public void Print(Page page, bool quiet)
        {
            if (page.Title is not null && quiet)
            {
                return;
            }

            Span<char> number = stackalloc char[16];
            page.Number.TryFormat(number, out int digits, default, CultureInfo.InvariantCulture);
            _out.Write("  ");
            _out.Write(Grey);
            _out.Write("     ".AsSpan(0, Math.Max(0, 5 - digits)));
            _out.Write(number[..digits]);
            _out.Write(Reset);
            _out.Write("  ");
            if (page.Title is not null)
            {
                _out.Write(Cyan);
                _out.Write(Printable(page.Title));
            }
            else
            {
                _out.Write(Red);
                _out.Write("ERROR ");
                _out.Write(Printable(page.Url));
                _out.Write(": ");
                _out.Write(Printable(page.Error ?? "failed"));
            }

            _out.Write(Reset);
            _out.WriteLine();
        }

        private string Grey => _colour ? "\e[90m" : "";

        private string Cyan => _colour ? "\e[36m" : "";

        private string Red => _colour ? "\e[31m" : "";

        private string Reset => _colour ? "\e[0m" : "";

        /// <summary>A page's text with control characters (an escape sequence from a hostile page) made spaces.</summary>
        private static string Printable(string text) =>
            text.AsSpan().IndexOfAnyInRange('\0', '\x1f') < 0 ? text : string.Create(text.Length, text, static (span, t) =>
            {
                for (int i = 0; i < t.Length; i++)
                {
                    span[i] = t[i] < ' ' ? ' ' : t[i];
                }
            });
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
