using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.ScraperBenchmark;

/// <summary>One client's measured result: the best of its runs.</summary>
internal sealed record ClientResult(string Client, double PagesPerSecond, int Fetched, string? Note);

/// <summary>How to start one client, given the site's base URL.</summary>
internal sealed record ClientSpec(string Name, string Description, Func<string, (string File, string[] Args)> Command);

/// <summary>Starts the site on core 0, runs each client on core 1 against it, and writes the report.</summary>
internal static partial class Orchestrator
{
    private const string Host = "127.0.0.1";
    private const string Baseline = "aiohttp";

    public static async Task<int> RunAsync(Options options)
    {
        string repo = FindRepositoryRoot();
        string outDir = PrepareOutputDirectory(repo, options.OutDir);
        bool pin = CanPin(options.Pin);
        var notes = new List<string>();
        string samples = FindSamples(repo, notes);
        var specs = new List<ClientSpec>();
        foreach (string name in options.Clients)
        {
            if (Candidate(name, repo, samples, options, notes) is { } spec)
            {
                specs.Add(spec);
            }
        }

        int port = FreePort();
        string baseUrl = $"http://{Host}:{port.ToString(CultureInfo.InvariantCulture)}";
        using Process? site = await StartSiteAsync(samples, options.SiteLoop, port, pin, notes);
        if (site is null)
        {
            Console.Error.WriteLine(string.Join('\n', notes));
            return 1;
        }

        var results = new List<ClientResult>();
        try
        {
            foreach (ClientSpec spec in specs)
            {
                ClientResult? best = null;
                for (int run = 0; run < options.Runs; run++)
                {
                    ClientResult result = await RunClientAsync(spec, baseUrl, pin, options);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{spec.Name,-10} run {run + 1}: {result.PagesPerSecond,9:N0} pages/s {result.Note}"));
                    if (best is null || result.PagesPerSecond > best.PagesPerSecond)
                    {
                        best = result;
                    }
                }

                results.Add(best!);
            }
        }
        finally
        {
            StopProcess(site);
        }

        string markdown = Markdown(results, specs, notes, options, pin);
        string path = Path.Combine(outDir, "scraper.md");
        await File.WriteAllTextAsync(path, markdown);
        Console.WriteLine();
        Console.WriteLine(markdown);
        Console.WriteLine($"Wrote {path}");
        return results.Any(r => r.PagesPerSecond > 0) ? 0 : 1;
    }

    /// <summary>The samples runner (site and loop clients), preferring the configuration this harness was built in.</summary>
    private static string FindSamples(string repo, List<string> notes)
    {
        string mine = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        foreach (string configuration in new[] { mine, mine == "Release" ? "Debug" : "Release" })
        {
            string path = Path.Combine(repo, "samples", "EventLoop.Samples", "bin", configuration, "net10.0", "EventLoop.Samples.dll");
            if (File.Exists(path))
            {
                if (configuration != "Release")
                {
                    notes.Add($"The samples runner was a {configuration} build: build with -c Release for figures worth quoting.");
                }

                return path;
            }
        }

        throw new ArgumentException("EventLoop.Samples is not built: run `dotnet build EventLoop.sln -c Release` first.");
    }

    private static ClientSpec? Candidate(string name, string repo, string samples, Options options, List<string> notes)
    {
        string dotnet = DotnetHost();
        string self = typeof(Orchestrator).Assembly.Location;
        string[] common(string baseUrl) =>
        [
            "--base-url", baseUrl, "--first", "1", "--count", Str(options.Pages), "--concurrency", Str(options.Concurrency), "--warmup", Str(options.Warmup),
        ];
        switch (name)
        {
            case "managed" or "libuv":
                return new ClientSpec(name, $"samples runner `scraper --loop {name} --quiet`: HttpClient over the loop's own TCP connections, AsyncSemaphore, AngleSharp",
                    url => (dotnet, [samples, "scraper", "--loop", name, "--quiet", .. common(url)]));
            case "threadpool":
                return new ClientSpec(name, "plain HttpClient on the thread pool, SemaphoreSlim, AngleSharp (`client threadpool` in this harness)",
                    url => (dotnet, [self, "client", "threadpool", .. common(url)]));
            case "aiohttp":
                string? python = FindPythonWith("import aiohttp, uvloop");
                if (python is null)
                {
                    notes.Add("aiohttp: not measured, no python3 that imports both aiohttp and uvloop (apt-get install -y python3-aiohttp python3-uvloop).");
                    return null;
                }

                string script = Path.Combine(repo, "benchmarks", "scraper", "aiohttp_scraper.py");
                string versions = Capture(python, "-c", "import sys, aiohttp, uvloop; print(f'Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, uvloop {uvloop.__version__}')");
                return new ClientSpec(name, $"{versions}: `benchmarks/scraper/aiohttp_scraper.py` (asyncio.Semaphore, html.parser for the <h1>)",
                    url => (python, [script, "--quiet", .. common(url)]));
            default:
                throw new ArgumentException($"Unknown client '{name}' (managed, libuv, threadpool, aiohttp).");
        }
    }

    private static async Task<Process?> StartSiteAsync(string samples, string loop, int port, bool pin, List<string> notes)
    {
        Process process = Start(DotnetHost(), [samples, "site", "--loop", loop, "--host", Host, "--port", Str(port), "--latency-ms", "0"], pin ? "0" : null, DotnetRuntimeSettings);
        Task<string?> firstLine = process.StandardOutput.ReadLineAsync();
        await Task.WhenAny(firstLine, Task.Delay(TimeSpan.FromSeconds(30)));
        string? line = firstLine.IsCompleted ? await firstLine : null;
        if (line is null || !line.Contains(Str(port), StringComparison.Ordinal) || !await CanConnectAsync(port))
        {
            string why = process.HasExited ? $"exited with code {process.ExitCode}" : line is null ? "printed nothing" : $"printed '{line}'";
            notes.Add($"The site (`EventLoop.Samples site --loop {loop}`) did not start: {why}.");
            StopProcess(process);
            process.Dispose();
            return null;
        }

        _ = process.StandardOutput.ReadToEndAsync(); // keep its pipe drained
        _ = process.StandardError.ReadToEndAsync();
        Console.WriteLine($"site: {line}");
        return process;
    }

    private static async Task<ClientResult> RunClientAsync(ClientSpec spec, string baseUrl, bool pin, Options options)
    {
        (string file, string[] args) = spec.Command(baseUrl);
        using Process client = Start(file, args, pin ? "1" : null, DotnetRuntimeSettings);
        Task<string> stdout = client.StandardOutput.ReadToEndAsync();
        Task<string> stderr = client.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120 + ((options.Pages + options.Warmup) / 100.0)));
        try
        {
            await client.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            StopProcess(client);
            return new ClientResult(spec.Name, 0, 0, "timed out");
        }

        string output = await stdout;
        Match match = FetchedLine().Match(output);
        if (!match.Success)
        {
            string error = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? $"exit code {client.ExitCode}";
            return new ClientResult(spec.Name, 0, 0, $"failed: {error}");
        }

        int fetched = int.Parse(match.Groups["fetched"].Value, CultureInfo.InvariantCulture);
        double seconds = double.Parse(match.Groups["seconds"].Value, CultureInfo.InvariantCulture);
        double rate = double.Parse(match.Groups["rate"].Value, CultureInfo.InvariantCulture);
        string? note = fetched < options.Pages ? $"{options.Pages - fetched} pages failed" : null;
        return new ClientResult(spec.Name, seconds > 0 ? rate : 0, fetched, note);
    }

    /// <summary>The same runtime settings for every .NET process: workstation, non-concurrent GC.</summary>
    private static readonly Dictionary<string, string> DotnetRuntimeSettings = new() { ["DOTNET_gcServer"] = "0", ["DOTNET_gcConcurrent"] = "0" };

    [GeneratedRegex(@"Fetched (?<fetched>\d+) pages in (?<seconds>[\d.]+) sec \((?<rate>[\d.]+) pages/s\)")]
    private static partial Regex FetchedLine();

    private static string Markdown(List<ClientResult> results, List<ClientSpec> specs, List<string> notes, Options options, bool pinned)
    {
        CultureInfo inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Scraper benchmark");
        md.AppendLine();
        md.AppendLine(inv, $"Made {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {CpuModel()} ({Environment.ProcessorCount} cores), .NET {Environment.Version}, with:");
        md.AppendLine();
        md.AppendLine("```");
        string arguments = string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
        md.AppendLine(("dotnet build EventLoop.sln -c Release && dotnet benchmarks/EventLoop.ScraperBenchmark/bin/Release/net10.0/EventLoop.ScraperBenchmark.dll " + arguments).TrimEnd());
        md.AppendLine("```");
        md.AppendLine();
        string pinning = pinned ? "The site is pinned to core 0 and each client to core 1 with `taskset`." : "Not pinned (no taskset, or --no-pin).";
        md.AppendLine(inv, $"Each client fetches {options.Pages:N0} episode pages (`/1` ... `/{options.Pages}`, about 0.5 KB of HTML each) from the local stand-in podcast site at zero latency (`EventLoop.Samples site --loop {options.SiteLoop}`), {options.Concurrency} at a time over keep-alive HTTP/1.1 connections, takes each page's `<h1>`, and collects the titles in page order. {options.Warmup:N0} other pages are fetched first, unmeasured. Best of {options.Runs} run(s). {pinning}");
        if (options.Quick)
        {
            md.AppendLine();
            md.AppendLine("**Quick (smoke) run**: too short for figures worth quoting.");
        }

        md.AppendLine();
        md.AppendLine("| client | pages/s | vs aiohttp on uvloop |");
        md.AppendLine("| --- | ---: | ---: |");
        double? baseline = results.FirstOrDefault(r => r.Client == Baseline && r.PagesPerSecond > 0)?.PagesPerSecond;
        foreach (ClientResult r in results)
        {
            string ratio = baseline is { } b && r.PagesPerSecond > 0 ? (r.PagesPerSecond / b).ToString("0.00x", inv) : "";
            string note = r.Note is null ? "" : $" ({r.Note})";
            md.AppendLine(inv, $"| {r.Client}{note} | {r.PagesPerSecond:N0} | {ratio} |");
        }

        AppendBullets(md, "Clients:", specs.Select(spec => $"**{spec.Name}**: {spec.Description}"));
        AppendBullets(md, "Notes:", notes);
        return md.ToString();
    }

    /// <summary>A python3 where <paramref name="imports"/> works: the one on PATH, else the system one (where apt installs).</summary>
}
