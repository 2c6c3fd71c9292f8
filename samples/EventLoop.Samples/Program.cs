using System.CommandLine;
using EventLoop;
using EventLoop.Samples.Demos;
using Spectre.Console;

// The classic async demos, each on whichever loop is selected (--loop managed|libuv, or EVENTLOOP_POLICY).
// With no demo named, a short tour of all of them.
// Blocking work handed to RunInExecutor runs on the thread pool, which starts with one thread per core and adds
// more slowly. asyncio sizes its default executor min(32, cores + 4); give the pool that many from the start, so
// two blocking downloads do not starve the pool's other work (HttpClient opens connections from pool work items).
ThreadPool.GetMinThreads(out int minWorkers, out int minIo);
int executorThreads = Math.Min(32, Environment.ProcessorCount + 4);
if (minWorkers < executorThreads)
{
    ThreadPool.SetMinThreads(executorThreads, minIo);
}

var loopOption = new Option<string>("--loop")
{
    Description = "The loop policy: managed (pure .NET) or libuv (the fast loop).",
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable) ?? "managed",
    Recursive = true,
};
var syncOption = new Option<bool>("--sync") { Description = "Run the blocking version instead." };
var timeScaleOption = new Option<double>("--time-scale")
{
    Description = "Multiply every pause by this factor (1 = the talk's timings).",
    DefaultValueFactory = _ => 1.0,
};

var root = new RootCommand("EventLoop samples: the classic async demos on a single-threaded event loop. With no demo, a short tour: on both loops, or on the one --loop (or EVENTLOOP_POLICY) picks.");
root.Options.Add(loopOption);

var generator = new Command("generator", "Fibonacci as a lazy generator, then as an async stream awaited on the loop.");
generator.SetAction(parse => Run(parse.GetValue(loopOption)!, loop => GeneratorDemo.RunAsync(loop, AnsiConsole.Console)));

var producerConsumer = new Command("producer-consumer", "Two producers and four consumers: blocking (--sync) vs. async on the loop.");
producerConsumer.Options.Add(syncOption);
producerConsumer.Options.Add(timeScaleOption);
producerConsumer.SetAction(parse =>
{
    double scale = parse.GetValue(timeScaleOption);
    if (scale <= 0)
    {
        AnsiConsole.MarkupLine("[red]--time-scale must be greater than 0.[/]");
        return 2;
    }

    if (parse.GetValue(syncOption))
    {
        ProducerConsumerDemo.RunSync(AnsiConsole.Console, scale);
        return 0;
    }

    return Run(parse.GetValue(loopOption)!, loop => ProducerConsumerDemo.RunAsync(loop, AnsiConsole.Console, scale));
});

var unsync = new Command("unsync",
    "CPU-bound work on the thread pool, blocking calls in the executor and loop sleeps, all at once; then async functions on a loop in a background thread while the main thread goes on.");
unsync.SetAction(parse =>
{
    int status = Run(parse.GetValue(loopOption)!, loop => UnsyncDemo.RunAsync(loop, AnsiConsole.Console));
    if (status != 0)
    {
        return status;
    }

    AnsiConsole.WriteLine();
    return RunOffLoop(parse.GetValue(loopOption)!, policy =>
    {
        UnsyncDemo.RunInBackground(policy, AnsiConsole.Console);
        return Task.CompletedTask;
    });
});

var hostOption = new Option<string>("--host") { Description = "Address to listen on.", DefaultValueFactory = _ => "127.0.0.1" };
var portOption = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8888 };
var loopsOption = new Option<int>("--loops")
{
    Description = "Serve on a group of N loops, each on its own thread (connections spread across them); 1 is a single loop on the main thread.",
    DefaultValueFactory = _ => 1,
};
var echoServer = new Command("echo-server", "A TCP echo server on the loop; prints the address it listens on and serves until Ctrl+C.");
echoServer.Options.Add(hostOption);
echoServer.Options.Add(portOption);
echoServer.Options.Add(loopsOption);
echoServer.SetAction(parse =>
{
    if (!System.Net.IPAddress.TryParse(parse.GetValue(hostOption), out var host))
    {
        AnsiConsole.MarkupLine($"[red]--host must be an IP address, not '{Markup.Escape(parse.GetValue(hostOption) ?? "")}'.[/]");
        return 2;
    }

    int port = parse.GetValue(portOption);
    if (port is < 0 or > 65535)
    {
        AnsiConsole.MarkupLine("[red]--port must be between 0 and 65535.[/]");
        return 2;
    }

    int loops = parse.GetValue(loopsOption);
    if (loops < 1)
    {
        AnsiConsole.MarkupLine("[red]--loops must be at least 1.[/]");
        return 2;
    }

    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
        System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
    if (loops > 1)
    {
        return RunOffLoop(parse.GetValue(loopOption)!, policy => EchoServer.RunGroupAsync(policy, loops, host, port, AnsiConsole.Console, stop.Token));
    }

    return Run(parse.GetValue(loopOption)!, loop => EchoServer.RunAsync(loop, host, port, AnsiConsole.Console, stop.Token));
});

var baseUrlOption = new Option<string?>("--base-url") { Description = "The site to scrape (pages {base-url}/N). Default: a local stand-in podcast site started on the loop." };
var firstOption = new Option<int>("--first") { Description = "The first page number.", DefaultValueFactory = _ => 150 };
var countOption = new Option<int>("--count") { Description = "How many pages to fetch.", DefaultValueFactory = _ => 20 };
var concurrencyOption = new Option<int>("--concurrency") { Description = "Pages fetched at once (async).", DefaultValueFactory = _ => 10 };
var latencyOption = new Option<int>("--latency-ms") { Description = "The local site's delay per page, in milliseconds.", DefaultValueFactory = _ => 15 };
var quietOption = new Option<bool>("--quiet") { Description = "Print only errors and the summary line (for benchmarks)." };
var warmupOption = new Option<int>("--warmup") { Description = "Pages fetched first, unmeasured and unprinted (for benchmarks).", DefaultValueFactory = _ => 0 };
var scraper = new Command("scraper", "Fetch a run of episode pages and print their titles: blocking (--sync) vs. async on the loop.");
scraper.Options.Add(syncOption);
scraper.Options.Add(baseUrlOption);
scraper.Options.Add(firstOption);
scraper.Options.Add(countOption);
scraper.Options.Add(concurrencyOption);
scraper.Options.Add(latencyOption);
scraper.Options.Add(quietOption);
scraper.Options.Add(warmupOption);
scraper.SetAction(parse =>
{
    int count = parse.GetValue(countOption), concurrency = parse.GetValue(concurrencyOption);
    int latencyMs = parse.GetValue(latencyOption), warmup = parse.GetValue(warmupOption);
    if (count < 0 || concurrency < 1 || latencyMs < 0 || warmup < 0)
    {
        AnsiConsole.MarkupLine("[red]--count, --latency-ms and --warmup must not be negative, and --concurrency must be at least 1.[/]");
        return 2;
    }

    string? baseUrl = parse.GetValue(baseUrlOption);
    bool sync = parse.GetValue(syncOption);
    var options = new ScraperOptions(baseUrl ?? "", parse.GetValue(firstOption), count, concurrency, parse.GetValue(quietOption), warmup);
    if (baseUrl is null)
    {
        return Run(parse.GetValue(loopOption)!, loop =>
            ScraperDemo.RunWithLocalSiteAsync(loop, AnsiConsole.Console, options, TimeSpan.FromMilliseconds(latencyMs), sync));
    }

    if (sync)
    {
        ScraperDemo.RunSync(AnsiConsole.Console, options); // no loop needed: blocking calls against a real site
        return 0;
    }

    return Run(parse.GetValue(loopOption)!, loop => ScraperDemo.RunAsync(loop, AnsiConsole.Console, options));
});

var sitePortOption = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8000 };
var siteLatencyOption = new Option<int>("--latency-ms") { Description = "Delay per page, in milliseconds.", DefaultValueFactory = _ => 0 };
var site = new Command("site", "The local stand-in podcast site on the loop (pages /N with an <h1>); serves until Ctrl+C.");
site.Options.Add(hostOption);
site.Options.Add(sitePortOption);
site.Options.Add(siteLatencyOption);
site.SetAction(parse =>
{
    if (!System.Net.IPAddress.TryParse(parse.GetValue(hostOption), out var host))
    {
        AnsiConsole.MarkupLine($"[red]--host must be an IP address, not '{Markup.Escape(parse.GetValue(hostOption) ?? "")}'.[/]");
        return 2;
    }

    int port = parse.GetValue(sitePortOption), latencyMs = parse.GetValue(siteLatencyOption);
    if (port is < 0 or > 65535 || latencyMs < 0)
    {
        AnsiConsole.MarkupLine("[red]--port must be between 0 and 65535 and --latency-ms not negative.[/]");
        return 2;
    }

    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
        System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
    return Run(parse.GetValue(loopOption)!, async loop =>
    {
        await using PodcastSite podcast = await PodcastSite.StartAsync(loop, TimeSpan.FromMilliseconds(latencyMs), new System.Net.IPEndPoint(host, port));
        Console.WriteLine($"podcast site on {podcast.BaseUrl.ToString().TrimEnd('/')} ({loop.PolicyName} loop, {latencyMs} ms per page)");
        await podcast.RunUntilCancelledAsync(stop.Token);
        Console.WriteLine($"stopping after {podcast.RequestsServed} requests");
    });
});

var webPortOption = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8080 };
var webLoopsOption = new Option<int>("--loops") { Description = "Loops (threads) of the transport's group.", DefaultValueFactory = _ => 1 };
var transportOption = new Option<string>("--transport")
{
    Description = "eventloop (Kestrel on a loop group of --loop's policy) or sockets (Kestrel's own Sockets transport, the baseline).",
    DefaultValueFactory = _ => "eventloop",
};
var appOnLoopOption = new Option<bool>("--app-on-loop") { Description = "Run Kestrel and the app inline on the loop threads instead of the thread pool." };
var web = new Command("web", "A minimal-API web app (/plaintext, /json, /upload, /download/N) on Kestrel over the loop transport; prints its address and serves until Ctrl+C.");
web.Options.Add(hostOption);
web.Options.Add(webPortOption);
web.Options.Add(webLoopsOption);
web.Options.Add(transportOption);
web.Options.Add(appOnLoopOption);
web.SetAction(parse =>
{
    if (!System.Net.IPAddress.TryParse(parse.GetValue(hostOption), out var host))
    {
        AnsiConsole.MarkupLine($"[red]--host must be an IP address, not '{Markup.Escape(parse.GetValue(hostOption) ?? "")}'.[/]");
        return 2;
    }

    int port = parse.GetValue(webPortOption), loops = parse.GetValue(webLoopsOption);
    if (port is < 0 or > 65535 || loops < 1)
    {
        AnsiConsole.MarkupLine("[red]--port must be between 0 and 65535 and --loops at least 1.[/]");
        return 2;
    }

    WebTransport transport;
    switch (parse.GetValue(transportOption))
    {
        case "eventloop": transport = WebTransport.EventLoop; break;
        case "sockets": transport = WebTransport.Sockets; break;
        default:
            Console.Error.WriteLine($"--transport must be eventloop or sockets, not '{parse.GetValue(transportOption)}'.");
            return 2;
    }

    try
    {
        return WebDemo.Run(parse.GetValue(loopOption)!, loops, host, port, transport,
            parse.GetValue(appOnLoopOption) ? EventLoop.AspNetCore.EventLoopApplicationScheduling.Loop : EventLoop.AspNetCore.EventLoopApplicationScheduling.ThreadPool);
    }
    catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or IOException)
    {
        Console.Error.WriteLine($"web: {ex.Message}");
        return 1;
    }
});

root.Subcommands.Add(echoServer);
root.Subcommands.Add(generator);
root.Subcommands.Add(producerConsumer);
root.Subcommands.Add(scraper);
root.Subcommands.Add(site);
root.Subcommands.Add(unsync);
root.Subcommands.Add(web);
// With no demo and no loop chosen (no --loop, no EVENTLOOP_POLICY) the tour runs on both loops, one after
// the other; with a loop chosen, on that one.
root.SetAction(parse =>
{
    bool chosen = parse.GetResult(loopOption) is { Implicit: false }
                  || Environment.GetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable) is not null;
    string[] loops = chosen ? [parse.GetValue(loopOption)!] : ["managed", "libuv"];
    foreach (string name in loops)
    {
        int status = Run(name, TourAsync);
        if (status != 0)
        {
            return status;
        }

        AnsiConsole.WriteLine();
    }

    return 0;
});

return root.Parse(args).Invoke();

static int Run(string policyName, Func<Loop, Task> demo)
{
    LoopPolicy policy;
    try
    {
        policy = EventLoopPolicy.FromName(policyName);
    }
    catch (ArgumentException ex)
    {
        AnsiConsole.MarkupLine($"[red]{Markup.Escape(ex.Message)}[/]");
        return 2;
    }

    Loop.Run(() => demo(Loop.Current), policy);
    return 0;
}

// For demos that start their own loops (a group): the policy by name, and the demo run on this thread.
static int RunOffLoop(string policyName, Func<LoopPolicy, Task> demo)
{
    LoopPolicy policy;
    try
    {
        policy = EventLoopPolicy.FromName(policyName);
    }
    catch (ArgumentException ex)
    {
        AnsiConsole.MarkupLine($"[red]{Markup.Escape(ex.Message)}[/]");
        return 2;
    }

    demo(policy).GetAwaiter().GetResult();
    return 0;
}

static async Task TourAsync(Loop loop)
{
    AnsiConsole.Write(new Rule($"[bold]EventLoop tour[/] on the [aqua]{loop.PolicyName}[/] loop"));
    await GeneratorDemo.RunAsync(loop, AnsiConsole.Console);
    AnsiConsole.WriteLine();
    const double scale = 0.05;
    var sync = ProducerConsumerDemo.RunSync(AnsiConsole.Console, scale);
    var async = await ProducerConsumerDemo.RunAsync(loop, AnsiConsole.Console, scale);
    AnsiConsole.MarkupLine($"[bold green]async vs sync[/]: total {async.Total.TotalSeconds:F2} s vs {sync.Total.TotalSeconds:F2} s, " +
                           $"average latency {async.AverageLatency.TotalSeconds:F3} s vs {sync.AverageLatency.TotalSeconds:F3} s");
    AnsiConsole.WriteLine();
    var scraped = await ScraperDemo.RunWithLocalSiteAsync(loop, AnsiConsole.Console, new ScraperOptions("", First: 150, Count: 10, Concurrency: 10), TimeSpan.FromMilliseconds(20), sync: true);
    var scrapedAsync = await ScraperDemo.RunWithLocalSiteAsync(loop, AnsiConsole.Console, new ScraperOptions("", First: 150, Count: 10, Concurrency: 10), TimeSpan.FromMilliseconds(20), sync: false);
    AnsiConsole.MarkupLine($"[bold green]async vs sync[/]: {scrapedAsync.Elapsed.TotalSeconds:F2} s vs {scraped.Elapsed.TotalSeconds:F2} s for the same 10 pages");
    AnsiConsole.WriteLine();
    await UnsyncDemo.RunAsync(loop, AnsiConsole.Console, sleeps: 200);
    AnsiConsole.Write(new Rule("[bold]tour done[/]"));
}
