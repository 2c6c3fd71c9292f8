using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using EventLoop.Benchmarking;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.ScraperBenchmark;

/// <summary>One measured run of one client.</summary>
/// <param name="Client">The client's name.</param>
/// <param name="PagesPerSecond">As the client reported it (0 when it failed).</param>
/// <param name="Fetched">Pages fetched in the measured part.</param>
/// <param name="Window">CPU times over the measured part (its end is when the client's last line arrived).</param>
/// <param name="Note">What went wrong, if anything.</param>
internal sealed record ClientRun(string Client, double PagesPerSecond, int Fetched, CpuSampler.Window? Window, string? Note)
{
    /// <summary>The client's CPU time per page fetched, in microseconds.</summary>
    public double? ClientMicrosPerPage => Window?.Processes[0] is { } cpu && Fetched > 0 ? cpu.Total * 1e6 / Fetched : null;

    /// <summary>The site's CPU time per page fetched, in microseconds.</summary>
    public double? SiteMicrosPerPage => Window?.Processes[1] is { } cpu && Fetched > 0 ? cpu.Total * 1e6 / Fetched : null;

    /// <summary>How the client's core spent the window.</summary>
    public CoreSplit? ClientCore(int? core) => Window is { Processes: [{ } cpu, _] } w ? CoreSplit.Of(w.Seconds, cpu, CoreSplit.Pick(w.Cores, core)) : null;

    /// <summary>How the site's core spent the window.</summary>
    public CoreSplit? SiteCore(int? core) => Window is { Processes: [_, { } cpu] } w ? CoreSplit.Of(w.Seconds, cpu, CoreSplit.Pick(w.Cores, core)) : null;
}

/// <summary>Every client's runs at one page size.</summary>
/// <param name="Size">The site's <c>--page-size</c> (0: the small classic page).</param>
/// <param name="Served">The pages' size as served, e.g. "80,397–80,608 bytes".</param>
/// <param name="Runs">Each client's runs, by name.</param>
internal sealed record SizeRun(int Size, string Served, Dictionary<string, List<ClientRun>> Runs);

/// <summary>How to start one client, given the site's base URL.</summary>
internal sealed record ClientSpec(string Name, string Description, Func<string, (string File, string[] Args)> Command);

/// <summary>Starts the site on core 0, runs each client on core 1 against it, and writes the report.</summary>
internal static partial class Orchestrator
{
    private const string Host = "127.0.0.1";
    private const string Baseline = "aiohttp";

    /// <summary>The cores the site and the clients are pinned to.</summary>
    private const int SiteCore = 0, ClientCore = 1;

    public static async Task<int> RunAsync(Options options)
    {
        string loadBefore = LoadAverage();
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

        // One site per page size (the pages change with it), and at each size the same rounds of every client.
        var sizes = new List<SizeRun>();
        foreach (int size in options.PageSizes)
        {
            int port = FreePort();
            string baseUrl = $"http://{Host}:{port.ToString(CultureInfo.InvariantCulture)}";
            using Process? site = await StartSiteAsync(samples, options.SiteLoop, port, size, pin, notes);
            if (site is null)
            {
                Console.Error.WriteLine(string.Join('\n', notes));
                return 1;
            }

            string pageSize = await PageSizeAsync(baseUrl, options.Pages);
            await WarmUpSiteAsync(baseUrl, options);
            // Every client runs once per round, in an order that rotates from round to round, and the report gives
            // each client's median: a shared machine's speed drifts, and a client always measured in the same slot
            // would carry that drift into its ratio.
            var runs = specs.ToDictionary(spec => spec.Name, _ => new List<ClientRun>());
            try
            {
                for (int round = 0; round < options.Runs; round++)
                {
                    foreach (ClientSpec spec in specs.Skip(round % specs.Count).Concat(specs.Take(round % specs.Count)))
                    {
                        ClientRun run = await RunClientAsync(spec, baseUrl, site.Id, pin, options);
                        runs[spec.Name].Add(run);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"size {size,6} round {round + 1}/{options.Runs} {spec.Name,-10} {run.PagesPerSecond,9:N0} pages/s, client {run.ClientMicrosPerPage,6:N0} us/page, site {run.SiteMicrosPerPage,6:N0} us/page {run.Note}"));
                    }
                }
            }
            finally
            {
                StopProcess(site);
            }

            sizes.Add(new SizeRun(size, pageSize, runs));
        }

        string markdown = Markdown(sizes, specs, notes, options, pin, loadBefore);
        string path = Path.Combine(outDir, "scraper.md");
        await File.WriteAllTextAsync(path, markdown);
        Console.WriteLine();
        Console.WriteLine(markdown);
        Console.WriteLine($"Wrote {path}");
        return sizes.All(size => size.Runs.Values.Any(list => list.Any(r => r.PagesPerSecond > 0))) ? 0 : 1;
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
                return new ClientSpec(name, $"samples runner `scraper --loop {name} --quiet`: HttpClient over the loop's own TCP connections, AsyncSemaphore; each body read as a stream, decoded read by read and scanned only up to its first `</h1>` (AngleSharp on that element alone when it holds markup), the rest read off the connection undecoded",
                    url => (dotnet, [samples, "scraper", "--loop", name, "--quiet", .. common(url)]));
            case "threadpool":
                return new ClientSpec(name, "plain HttpClient on the thread pool, SemaphoreSlim, each whole page as one string parsed by AngleSharp (the demo's old way; `client threadpool` in this harness)",
                    url => (dotnet, [self, "client", "threadpool", .. common(url)]));
            case "aiohttp" or "aiohttp-stream":
                string? python = FindPythonWith("import aiohttp, uvloop");
                if (python is null)
                {
                    notes.Add($"{name}: not measured, no python3 that imports both aiohttp and uvloop (apt-get install -y python3-aiohttp python3-uvloop).");
                    return null;
                }

                string script = Path.Combine(repo, "benchmarks", "scraper", "aiohttp_scraper.py");
                string versions = Capture(python, "-c", "import sys, aiohttp, uvloop; print(f'Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, uvloop {uvloop.__version__}')");
                bool stream = name == "aiohttp-stream";
                return new ClientSpec(name, stream
                        ? $"{versions}: `benchmarks/scraper/aiohttp_scraper.py --stream` (asyncio.Semaphore; each body read chunk by chunk, decoded incrementally and fed to html.parser only until its first </h1>, the rest read and dropped: the demo's approach in Python, for a like-for-like comparison; not the issue's baseline)"
                        : $"{versions}: `benchmarks/scraper/aiohttp_scraper.py` (asyncio.Semaphore, `response.text()`, each whole page fed to the standard library's html.parser for the <h1>: the baseline the goal is set against)",
                    url => (python, [script, "--quiet", .. (stream ? ["--stream"] : Array.Empty<string>()), .. common(url)]));
            default:
                throw new ArgumentException($"Unknown client '{name}' (managed, libuv, threadpool, aiohttp, aiohttp-stream).");
        }
    }

    private static async Task<Process?> StartSiteAsync(string samples, string loop, int port, int pageSize, bool pin, List<string> notes)
    {
        Process process = Start(DotnetHost(), [samples, "site", "--loop", loop, "--host", Host, "--port", Str(port), "--latency-ms", "0", "--page-size", Str(pageSize)], pin ? "0" : null, DotnetRuntimeSettings);
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

    private static async Task<ClientRun> RunClientAsync(ClientSpec spec, string baseUrl, int sitePid, bool pin, Options options)
    {
        (string file, string[] args) = spec.Command(baseUrl);
        using Process client = Start(file, args, pin ? Str(ClientCore) : null, DotnetRuntimeSettings);
        // The client's and the site's CPU time are sampled all along; the measured part is known only at the
        // end, from the client's last line: it ended when that line arrived and lasted pages / (pages/s).
        using var sampler = new CpuSampler([client.Id, sitePid], TimeSpan.FromMilliseconds(10));
        var lastLine = new TaskCompletionSource<(string Line, long At)>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && FetchedLine().IsMatch(line))
            {
                lastLine.TrySetResult((line, Stopwatch.GetTimestamp()));
            }
        };
        client.BeginOutputReadLine();
        Task<string> stderr = client.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120 + ((options.Pages + options.Warmup) / 100.0)));
        try
        {
            await client.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            StopProcess(client);
            return new ClientRun(spec.Name, 0, 0, null, "timed out");
        }

        if (!lastLine.Task.IsCompleted)
        {
            string error = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? $"exit code {client.ExitCode}";
            return new ClientRun(spec.Name, 0, 0, null, $"failed: {error}");
        }

        (string text, long at) = await lastLine.Task;
        Match match = FetchedLine().Match(text);
        int fetched = int.Parse(match.Groups["fetched"].Value, CultureInfo.InvariantCulture);
        double rate = double.Parse(match.Groups["rate"].Value, CultureInfo.InvariantCulture);
        CpuSampler.Window? window = rate > 0 ? sampler.Between(at - (long)(fetched / rate * Stopwatch.Frequency), at) : null;
        string? note = fetched < options.Pages ? $"{options.Pages - fetched} pages failed" : null;
        return new ClientRun(spec.Name, rate, fetched, window, note);
    }

    /// <summary>
    /// Serves the site some pages before the first round, unmeasured: without it the clients of round 1 met a
    /// site whose code was still being compiled (2 to 3 times its later CPU time per page, in a run of this harness).
    /// </summary>
    private static async Task WarmUpSiteAsync(string baseUrl, Options options)
    {
        using var http = new HttpClient();
        using var gate = new SemaphoreSlim(options.Concurrency);
        int count = Math.Max(options.Warmup, 2000);
        await Task.WhenAll(Enumerable.Range(options.Pages + 1, count).Select(async page =>
        {
            await gate.WaitAsync();
            try
            {
                await http.GetByteArrayAsync($"{baseUrl}/{page.ToString(CultureInfo.InvariantCulture)}");
            }
            finally
            {
                gate.Release();
            }
        }));
        await Task.Delay(TimeSpan.FromSeconds(1)); // the runtime moves hot methods to optimised code after a short delay
    }

    /// <summary>The size of the site's pages: the body of the first, middle and last measured page.</summary>
    private static async Task<string> PageSizeAsync(string baseUrl, int pages)
    {
        using var http = new HttpClient();
        var sizes = new List<int>();
        foreach (int page in new[] { 1, Math.Max(1, pages / 2), pages }.Distinct())
        {
            sizes.Add((await http.GetByteArrayAsync($"{baseUrl}/{page.ToString(CultureInfo.InvariantCulture)}")).Length);
        }

        return sizes.Min() == sizes.Max()
            ? $"{sizes.Min():N0} bytes"
            : string.Create(CultureInfo.InvariantCulture, $"{sizes.Min():N0}–{sizes.Max():N0} bytes");
    }

    /// <summary>The same runtime settings for every .NET process: workstation, non-concurrent GC.</summary>
    private static readonly Dictionary<string, string> DotnetRuntimeSettings = new() { ["DOTNET_gcServer"] = "0", ["DOTNET_gcConcurrent"] = "0" };

    [GeneratedRegex(@"Fetched (?<fetched>\d+) pages in (?<seconds>[\d.]+) sec \((?<rate>[\d.]+) pages/s\)")]
    private static partial Regex FetchedLine();

    private static string Markdown(List<SizeRun> sizes, List<ClientSpec> specs, List<string> notes, Options options, bool pinned, string loadBefore)
    {
        CultureInfo inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Scraper benchmark");
        md.AppendLine();
        md.AppendLine(inv, $"Made {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {CpuModel()} (`nproc`: {Environment.ProcessorCount}), .NET {Environment.Version}; load average (1, 5, 15 min) before the run {loadBefore}, after it {LoadAverage()}. Command:");
        md.AppendLine();
        md.AppendLine("```");
        string arguments = string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
        md.AppendLine(("dotnet build EventLoop.sln -c Release && dotnet benchmarks/EventLoop.ScraperBenchmark/bin/Release/net10.0/EventLoop.ScraperBenchmark.dll " + arguments).TrimEnd());
        md.AppendLine("```");
        md.AppendLine();
        string pinning = pinned ? "The site is pinned to core 0 and each client to core 1 with `taskset`." : "Not pinned (no taskset, or --no-pin).";
        string rounds = options.Runs == 1
            ? "One round (no spread to judge a difference by)."
            : $"Each figure is the median of {options.Runs} rounds; every round runs every client once, in an order that rotates from round to round.";
        md.AppendLine(inv, $"Each client fetches {options.Pages:N0} episode pages (`/1` ... `/{options.Pages}`) from the local stand-in podcast site at zero latency (`EventLoop.Samples site --loop {options.SiteLoop} --page-size N`), {options.Concurrency} at a time over keep-alive HTTP/1.1 connections, takes each page's `<h1>`, and collects the titles in page order. {options.Warmup:N0} other pages are fetched first, unmeasured, by every client; before the first round at each size the harness itself fetches {Math.Max(options.Warmup, 2000):N0}, so that no client meets a site still compiling its code. {rounds} {pinning}");
        md.AppendLine();
        md.AppendLine("Page sizes: `--page-size 0` is the small classic page (about 550 bytes: per-request overhead, not bytes); 20,000 and 80,000 are real-sized episode pages (`samples/EventLoop.Samples/Demos/EpisodePage.cs`: a large `<head>` with inline CSS, JSON-LD and scripts, a header and navigation, the `<h1>` about 22% into the page, then show notes, links and a transcript; about 1,650 start tags at 80 KB, entities, some non-ASCII text, decoy `<h1>`s in a comment and a script string).");
        if (options.Quick)
        {
            md.AppendLine();
            md.AppendLine("**Quick (smoke) run**: too short for figures worth quoting.");
        }

        foreach (SizeRun sizeRun in sizes)
        {
            Dictionary<string, List<ClientRun>> runs = sizeRun.Runs;
            md.AppendLine();
            md.AppendLine(inv, $"### `--page-size {sizeRun.Size}`: {sizeRun.Served} of HTML per page");
            md.AppendLine();
            md.AppendLine("| client | pages/s | rounds' range | vs aiohttp on uvloop | client CPU µs/page (range) | aiohttp's CPU per page / this one's | site CPU µs/page | client core: client / others / idle | site core: site / others / idle |");
            md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            double[] Rates(string name) => runs.TryGetValue(name, out List<ClientRun>? list) ? list.Select(r => r.PagesPerSecond).ToArray() : [];
            double? baseline = Stats.Median(Rates(Baseline).Select(r => (double?)r)) is > 0 and var b ? b : null;
            double? baselineCpu = runs.TryGetValue(Baseline, out List<ClientRun>? baseRuns) ? Stats.Median(baseRuns.Select(r => r.ClientMicrosPerPage)) : null;
            foreach (ClientSpec spec in specs)
            {
                List<ClientRun> list = runs[spec.Name];
                double median = Stats.Median(list.Select(r => (double?)r.PagesPerSecond)) ?? 0;
                string ratio = "";
                if (baseline is { } bl && median > 0)
                {
                    ratio = (median / bl).ToString("0.00x", inv);
                    ratio = spec.Name != Baseline && Stats.DifferBeyondSpread(Rates(spec.Name), Rates(Baseline)) ? $"**{ratio}**" : ratio;
                }

                double?[] clientCpu = list.Select(r => r.ClientMicrosPerPage).ToArray();
                string cpu = Stats.Median(clientCpu) is { } us
                    ? clientCpu.All(c => c is not null) && list.Count > 1 ? string.Create(inv, $"{us:N0} ({clientCpu.Min():N0}–{clientCpu.Max():N0})") : us.ToString("N0", inv)
                    : "n/a";
                string cpuRatio = Stats.Median(clientCpu) is > 0 and var mine && baselineCpu is { } theirs ? (theirs / mine).ToString("0.00x", inv) : "";
                string site = Stats.Median(list.Select(r => r.SiteMicrosPerPage)) is { } siteUs ? siteUs.ToString("N0", inv) : "n/a";
                string clientCore = CoreSplit.Median(list.Select(r => r.ClientCore(pinned ? ClientCore : null)))?.Format() ?? "n/a";
                string siteCore = CoreSplit.Median(list.Select(r => r.SiteCore(pinned ? SiteCore : null)))?.Format() ?? "n/a";
                string note = string.Join("; ", list.Select(r => r.Note).OfType<string>().Distinct()) is { Length: > 0 } n ? $" ({n})" : "";
                md.AppendLine(inv, $"| {spec.Name}{note} | {median:N0} | {list.Min(r => r.PagesPerSecond):N0}–{list.Max(r => r.PagesPerSecond):N0} | {ratio} | {cpu} | {cpuRatio} | {site} | {clientCore} | {siteCore} |");
            }
        }

        AppendBullets(md, "How to read it:",
        [
            "**pages/s**: as each client reports it for its measured part; **rounds' range**: its slowest and fastest round.",
            "**vs aiohttp on uvloop**: the ratio of medians; **bold** only where every round of the one beat every round of the other (the ranges do not overlap), so a plain ratio is within the round-to-round spread.",
            "**aiohttp's CPU per page / this one's**: aiohttp's median client CPU µs/page over this client's: how many times less CPU this client spends on a page. On a shared, loaded machine this is the steadier figure (pages/s depends on how much of its core the client got).",
            "**client / site CPU µs/page**: each process's CPU time (utime + stime, `/proc/<pid>/stat`, sampled every 10 ms) over the client's measured part, per page. The part's end is when the client's last line arrived and its length is pages / (pages/s), so each figure is good to a sample or a 10 ms tick, a few per cent of a run this short.",
            "**client core, site core**: how each pinned process's core spent that part, as shares of wall-clock time: the process itself, **others** (time the hypervisor stole, other processes on the shared machine, interrupts) and **idle**, each the median of its rounds (so the three need not add up to exactly 100%). A site core with no idle time means the site, not the client, set the pace.",
        ]);
        AppendBullets(md, "Clients:", specs.Select(spec => $"**{spec.Name}**: {spec.Description}"));
        AppendBullets(md, "Notes:", notes);
        return md.ToString();
    }
}
