using System.Diagnostics;
using System.Globalization;
using AngleSharp.Html.Parser;

namespace EventLoop.ScraperBenchmark;

/// <summary>
/// The .NET baseline: the same scraper as the samples' async one (same concurrency bound, AngleSharp, results
/// taken in order) but with a plain <see cref="HttpClient"/> on the thread pool, no event loop.
/// </summary>
internal static class ThreadPoolClient
{
    public static async Task<int> RunFromArgsAsync(string[] args)
    {
        if (args.Length == 0 || args[0] != "threadpool")
        {
            throw new ArgumentException("client needs a kind: threadpool.");
        }

        string? baseUrl = null;
        int first = 1, count = 100, concurrency = 32, warmup = 0;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--base-url": baseUrl = Next().TrimEnd('/'); break;
                case "--first": first = Options.Int(Next()); break;
                case "--count": count = Options.Int(Next()); break;
                case "--concurrency": concurrency = Options.Int(Next()); break;
                case "--warmup": warmup = Options.Int(Next()); break;
                default: throw new ArgumentException($"Unknown client option '{args[i]}'.");
            }
        }

        if (baseUrl is null || count < 0 || concurrency <= 0 || warmup < 0)
        {
            throw new ArgumentException("client threadpool needs --base-url, a --count not negative and a positive --concurrency.");
        }

        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        if (warmup > 0)
        {
            await FetchAllAsync(client, baseUrl, first + count, warmup, concurrency);
        }

        var watch = Stopwatch.StartNew();
        (int fetched, int failed) = await FetchAllAsync(client, baseUrl, first, count, concurrency);
        double seconds = watch.Elapsed.TotalSeconds;
        if (failed > 0)
        {
            Console.WriteLine($"{failed} of {count} pages failed");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Fetched {fetched} pages in {seconds:F2} sec ({fetched / seconds:F0} pages/s)"));
        return 0;
    }

    private static async Task<(int Fetched, int Failed)> FetchAllAsync(HttpClient client, string baseUrl, int first, int count, int concurrency)
    {
        using var gate = new SemaphoreSlim(concurrency);
        var fetches = new Task<string?>[count];
        for (int i = 0; i < count; i++)
        {
            fetches[i] = FetchAsync(client, gate, $"{baseUrl}/{(first + i).ToString(CultureInfo.InvariantCulture)}");
        }

        int fetched = 0, failed = 0;
        foreach (Task<string?> fetch in fetches)
        {
            if (await fetch is not null)
            {
                fetched++;
            }
            else
            {
                failed++;
            }
        }

        return (fetched, failed);
    }

    [ThreadStatic]
    private static HtmlParser? t_parser;

    private static async Task<string?> FetchAsync(HttpClient client, SemaphoreSlim gate, string url)
    {
        await gate.WaitAsync();
        try
        {
            using HttpResponseMessage response = await client.GetAsync(url);
            if (!response.IsSuccessStatusCode)
            {
                Console.WriteLine($"ERROR {url}: HTTP {(int)response.StatusCode}");
                return null;
            }

            string html = await response.Content.ReadAsStringAsync();
            using var document = (t_parser ??= new HtmlParser()).ParseDocument(html);
            return document.QuerySelector("h1")?.TextContent.Trim();
        }
        catch (HttpRequestException ex)
        {
            Console.WriteLine($"ERROR {url}: {ex.Message}");
            return null;
        }
        finally
        {
            gate.Release();
        }
    }
}
