using System.CommandLine;
using EventLoop;
using EventLoop.Libuv;
using EventLoop.Samples;
using EventLoop.Samples.Demos;
using Spectre.Console;

// The classic async demos, each on whichever loop is selected (--loop managed|libuv, or EVENTLOOP_POLICY).
// With no demo named, a short tour of all of them.
// Errors a user can act on (bad input, a port in use, no libuv) are one line on stderr and a non-zero exit code:
// 2 for bad input, 1 for a failure while running (a page that failed, an address that cannot be listened on).

// Piped or redirected output is not wrapped at Spectre.Console's default 80 columns: one output line per line.
if (Console.IsOutputRedirected)
{
    AnsiConsole.Profile.Width = 10_000;
}

// Blocking work handed to RunInExecutor runs on the thread pool, which starts with one thread per core and adds
// more slowly. asyncio sizes its default executor min(32, cores + 4); give the pool that many from the start, so
// two blocking downloads do not starve the pool's other work (HttpClient opens connections from pool work items).
ThreadPool.GetMinThreads(out int minWorkers, out int minIo);
int executorThreads = Math.Min(32, Environment.ProcessorCount + 4);
if (minWorkers < executorThreads)
{
    ThreadPool.SetMinThreads(executorThreads, minIo);
}

const int MaxLatencyMs = 60_000;

// No DefaultValueFactory: help would show one default for every command, but the tour's is both loops.
var loopOption = new Option<string?>("--loop")
{
    Description = "The loop policy: managed (pure .NET) or libuv (the fast loop). Default: EVENTLOOP_POLICY if set, " +
                  "else managed (the tour: both loops, one after the other).",
    Recursive = true,
};
var syncOption = new Option<bool>("--sync") { Description = "Run the blocking version instead." };
var timeScaleOption = new Option<double>("--time-scale")
{
    Description = "Multiply every pause by this factor (1 = the talk's timings).",
    DefaultValueFactory = _ => 1.0,
};

string LoopName(ParseResult parse) =>
    parse.GetValue(loopOption) ?? Environment.GetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable) ?? "managed";

var root = new RootCommand("EventLoop samples: the classic async demos on a single-threaded event loop. With no demo, a short tour: on both loops, or on the one --loop (or EVENTLOOP_POLICY) picks.");
root.Options.Add(loopOption);

var generator = new Command("generator", "Fibonacci as a lazy generator, then as an async stream awaited on the loop.");
generator.SetAction(parse => Run(LoopName(parse), loop => GeneratorDemo.RunAsync(loop, AnsiConsole.Console)));

var producerConsumer = new Command("producer-consumer", "Two producers and four consumers: blocking (--sync) vs. async on the loop.");
producerConsumer.Options.Add(syncOption);
producerConsumer.Options.Add(timeScaleOption);
producerConsumer.SetAction(parse =>
{
    double scale = parse.GetValue(timeScaleOption);
    if (ProducerConsumerDemo.CheckTimeScale(scale) is { } error)
    {
        return Fail(error);
    }

    if (parse.GetValue(syncOption))
    {
        ProducerConsumerDemo.RunSync(AnsiConsole.Console, scale);
        return 0;
    }

    return Run(LoopName(parse), loop => ProducerConsumerDemo.RunAsync(loop, AnsiConsole.Console, scale));
});

var unsync = new Command("unsync",
    "CPU-bound work on the thread pool, blocking calls in the executor and loop sleeps, all at once; then async functions on a loop in a background thread while the main thread goes on.");
unsync.SetAction(parse =>
{
    int status = Run(LoopName(parse), loop => UnsyncDemo.RunAsync(loop, AnsiConsole.Console));
    if (status != 0)
    {
        return status;
    }

    AnsiConsole.WriteLine();
    return RunOffLoop(LoopName(parse), policy =>
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
var tlsOption = new Option<bool>("--tls") { Description = "Serve over TLS, with a self-signed certificate for localhost made at start-up unless --cert is given." };
var certOption = new Option<string?>("--cert") { Description = "With --tls: a PEM file holding the certificate and its private key, or a .pfx file." };
var echoServer = new Command("echo-server", "A TCP echo server on the loop; prints the address it listens on and serves until Ctrl+C.");
echoServer.Options.Add(hostOption);
echoServer.Options.Add(portOption);
echoServer.Options.Add(loopsOption);
echoServer.Options.Add(tlsOption);
echoServer.Options.Add(certOption);
echoServer.SetAction(parse =>
{
    if (!System.Net.IPAddress.TryParse(parse.GetValue(hostOption), out var host))
    {
        return Fail($"--host must be an IP address, not '{parse.GetValue(hostOption)}'");
    }

    int port = parse.GetValue(portOption);
    if (port is < 0 or > 65535)
    {
        return Fail($"--port must be between 0 and 65535, not {port}");
    }

    int loops = parse.GetValue(loopsOption);
    if (loops is < 1 or > 1024)
    {
        return Fail($"--loops must be between 1 and 1024, not {loops}");
    }

    System.Net.Security.SslServerAuthenticationOptions? tls = null;
    if (parse.GetValue(tlsOption) || parse.GetValue(certOption) is not null)
    {
        try
        {
            tls = TlsCertificate.ServerOptions(parse.GetValue(certOption));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            return Fail($"--cert: {ex.Message}");
        }
    }

    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
        System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
    if (loops > 1)
    {
        return RunOffLoop(LoopName(parse), policy => EchoServer.RunGroupAsync(policy, loops, host, port, AnsiConsole.Console, stop.Token, tls));
    }

    return Run(LoopName(parse), loop => EchoServer.RunAsync(loop, host, port, AnsiConsole.Console, stop.Token, tls));
});

var baseUrlOption = new Option<string?>("--base-url") { Description = "The site to scrape (pages {base-url}/N). Default: a local stand-in podcast site started on the loop." };
var firstOption = new Option<int>("--first") { Description = "The first page number.", DefaultValueFactory = _ => 150 };
var countOption = new Option<int>("--count") { Description = "How many pages to fetch.", DefaultValueFactory = _ => 20 };
var concurrencyOption = new Option<int>("--concurrency") { Description = "Pages fetched at once (async).", DefaultValueFactory = _ => 10 };
var latencyOption = new Option<int>("--latency-ms") { Description = "The local site's delay per page, in milliseconds.", DefaultValueFactory = _ => 15 };
var quietOption = new Option<bool>("--quiet") { Description = "Print only errors and the summary line (for benchmarks)." };
var warmupOption = new Option<int>("--warmup") { Description = "Pages fetched first, unmeasured and unprinted (for benchmarks).", DefaultValueFactory = _ => 0 };
var pageTimeoutOption = new Option<int>("--page-timeout-ms") { Description = "How long one page may take before it is reported as timed out (async).", DefaultValueFactory = _ => 10_000 };
var pageSizeOption = new Option<int>("--page-size")
{
    Description = "The local site's page size in bytes, roughly (real-sized pages of varied markup, e.g. 20000 or 80000); 0: the small classic page of about 550 bytes.",
    DefaultValueFactory = _ => 0,
};
var parseOption = new Option<TitleParse>("--parse")
{
    Description = "How much of each page is parsed: scan (read as a stream, stop at the first </h1>, AngleSharp on the h1 alone), prefix (AngleSharp on everything up to it) or full (the whole page as one string). For measuring; scan is the demo's way.",
    DefaultValueFactory = _ => TitleParse.Scan,
};
var scraper = new Command("scraper", "Fetch a run of episode pages and print their titles: blocking (--sync) vs. async on the loop.");
scraper.Options.Add(syncOption);
scraper.Options.Add(baseUrlOption);
scraper.Options.Add(firstOption);
scraper.Options.Add(countOption);
scraper.Options.Add(concurrencyOption);
scraper.Options.Add(latencyOption);
scraper.Options.Add(quietOption);
scraper.Options.Add(warmupOption);
scraper.Options.Add(pageTimeoutOption);
scraper.Options.Add(pageSizeOption);
scraper.Options.Add(parseOption);
scraper.SetAction(parse =>
{
    int latencyMs = parse.GetValue(latencyOption), pageTimeoutMs = parse.GetValue(pageTimeoutOption), pageSize = parse.GetValue(pageSizeOption);
    string? baseUrl = parse.GetValue(baseUrlOption);
    bool sync = parse.GetValue(syncOption);
    var options = new ScraperOptions(baseUrl ?? "", parse.GetValue(firstOption), parse.GetValue(countOption),
        parse.GetValue(concurrencyOption), parse.GetValue(quietOption), parse.GetValue(warmupOption), TimeSpan.FromMilliseconds(pageTimeoutMs),
        parse.GetValue(parseOption), pageSize);
    if (ScraperDemo.CheckNumbers(options) is { } badNumber)
    {
        return Fail(badNumber);
    }

    if (pageSize is < 0 or > PodcastSite.MaxPageSize)
    {
        return Fail($"--page-size must be between 0 and {PodcastSite.MaxPageSize}, not {pageSize}");
    }

    if (pageTimeoutMs is < 1 or > MaxLatencyMs)
    {
        return Fail($"--page-timeout-ms must be between 1 and {MaxLatencyMs}, not {pageTimeoutMs}");
    }

    if (latencyMs is < 0 or > MaxLatencyMs)
    {
        return Fail($"--latency-ms must be between 0 and {MaxLatencyMs}, not {latencyMs}");
    }

    if (baseUrl is not null && ScraperDemo.CheckBaseUrl(baseUrl) is { } badUrl)
    {
        return Fail(badUrl); // once, up front, not once per page
    }

    // Any page that failed makes the exit code 1 (the last line still counts the pages fetched).
    ScraperDemo.Result? result = null;
    int status;
    if (baseUrl is null)
    {
        status = Run(LoopName(parse), async loop =>
            result = await ScraperDemo.RunWithLocalSiteAsync(loop, AnsiConsole.Console, options, TimeSpan.FromMilliseconds(latencyMs), sync));
    }
    else if (sync)
    {
        result = ScraperDemo.RunSync(AnsiConsole.Console, options); // no loop needed: blocking calls against a real site
        status = 0;
    }
    else
    {
        status = Run(LoopName(parse), async loop => result = await ScraperDemo.RunAsync(loop, AnsiConsole.Console, options));
    }

    return status != 0 ? status : result is { Failed: > 0 } ? 1 : 0;
});

var sitePortOption = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8000 };
var siteLatencyOption = new Option<int>("--latency-ms") { Description = "Delay per page, in milliseconds.", DefaultValueFactory = _ => 0 };
var site = new Command("site", "The local stand-in podcast site on the loop (pages /N with an <h1>); serves until Ctrl+C.");
site.Options.Add(hostOption);
site.Options.Add(sitePortOption);
site.Options.Add(siteLatencyOption);
site.Options.Add(pageSizeOption);
site.SetAction(parse =>
{
    if (!System.Net.IPAddress.TryParse(parse.GetValue(hostOption), out var host))
    {
        return Fail($"--host must be an IP address, not '{parse.GetValue(hostOption)}'");
    }

    int port = parse.GetValue(sitePortOption), latencyMs = parse.GetValue(siteLatencyOption), pageSize = parse.GetValue(pageSizeOption);
    if (port is < 0 or > 65535)
    {
        return Fail($"--port must be between 0 and 65535, not {port}");
    }

    if (latencyMs is < 0 or > MaxLatencyMs)
    {
        return Fail($"--latency-ms must be between 0 and {MaxLatencyMs}, not {latencyMs}");
    }

    if (pageSize is < 0 or > PodcastSite.MaxPageSize)
    {
        return Fail($"--page-size must be between 0 and {PodcastSite.MaxPageSize}, not {pageSize}");
    }

    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
        System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
    return Run(LoopName(parse), async loop =>
    {
        await using PodcastSite podcast = await PodcastSite.StartAsync(loop, TimeSpan.FromMilliseconds(latencyMs), new System.Net.IPEndPoint(host, port), pageSize: pageSize);
        string size = pageSize > 0 ? $", pages of about {pageSize} bytes" : "";
        Console.WriteLine($"podcast site on {podcast.BaseUrl.ToString().TrimEnd('/')} ({loop.PolicyName} loop, {latencyMs} ms per page{size})");
        await podcast.RunUntilCancelledAsync(stop.Token);
        Console.WriteLine($"stopping after {podcast.RequestsServed} requests");
    });
});

var workersOption = new Option<int>("--workers")
{
    Description = "Chunks run at once, on the thread pool and in child processes (default: the core count).",
    DefaultValueFactory = _ => Environment.ProcessorCount,
};
var sizeOption = new Option<int>("--size") { Description = "How many numbers the job covers (1..N).", DefaultValueFactory = _ => CpuDemo.DefaultSize };
var cpu = new Command("cpu", "One CPU-bound job three ways: on the loop thread (a 10 ms ticker on the loop stalls), through " +
                             "RunInExecutor in N chunks at once, and in N child processes (the loop's own, Loop.StartProcess); " +
                             "times, speed-ups and the ticker's largest gap.");
cpu.Options.Add(workersOption);
cpu.Options.Add(sizeOption);
cpu.SetAction(parse =>
{
    int workers = parse.GetValue(workersOption), size = parse.GetValue(sizeOption);
    if (CpuDemo.Validate(workers, size) is { } error)
    {
        return Fail(error);
    }

    bool agree = true;
    int status = Run(LoopName(parse), async loop => agree = (await CpuDemo.RunAsync(loop, AnsiConsole.Console, workers, size)).Agree);
    return status != 0 ? status : agree ? 0 : 1;
});

// The cpu demo's child process: one chunk's sum on stdout. Hidden: not a demo.
var fromOption = new Option<long>("--from") { Description = "The chunk's first number.", Required = true };
var toOption = new Option<long>("--to") { Description = "One past the chunk's last number.", Required = true };
var cpuWorker = new Command("cpu-worker", "One chunk of the cpu demo's job; prints its sum.") { Hidden = true };
cpuWorker.Options.Add(fromOption);
cpuWorker.Options.Add(toOption);
cpuWorker.SetAction(parse =>
{
    long from = parse.GetValue(fromOption), to = parse.GetValue(toOption);
    if (from < 1 || to < from || to > CpuDemo.MaxSize + 1L)
    {
        Console.Error.WriteLine($"cpu-worker: need 1 <= --from <= --to <= {CpuDemo.MaxSize + 1L}, not {from}..{to}.");
        return 2;
    }

    Console.Out.WriteLine(CpuDemo.SumOfSteps(from, to).ToString(System.Globalization.CultureInfo.InvariantCulture));
    return 0;
});

root.Subcommands.Add(cpu);
root.Subcommands.Add(cpuWorker);

var childrenOption = new Option<int>("--children") { Description = "How many child processes run at once (1..32).", DefaultValueFactory = _ => 4 };
var linesOption = new Option<int>("--lines") { Description = "How many lines each child prints (1..1000).", DefaultValueFactory = _ => 5 };
var processes = new Command("processes", "Several child processes at once on the loop (asyncio's create_subprocess_shell): their output " +
                                         "streamed line by line as it comes, prefixed by child, then every exit code.");
processes.Options.Add(childrenOption);
processes.Options.Add(linesOption);
processes.SetAction(parse =>
{
    int children = parse.GetValue(childrenOption), lines = parse.GetValue(linesOption);
    if (children is < 1 or > 32)
    {
        return Fail($"--children must be between 1 and 32, not {children}");
    }

    if (lines is < 1 or > 1000)
    {
        return Fail($"--lines must be between 1 and 1000, not {lines}");
    }

    return Run(LoopName(parse), async loop => await ProcessesDemo.RunAsync(loop, AnsiConsole.Console, children, lines));
});
root.Subcommands.Add(processes);
var sizeMiBOption = new Option<int>("--size-mib") { Description = "The file's size in MiB.", DefaultValueFactory = _ => FilesDemo.DefaultSizeMiB };
var files = new Command("files", "The aiofiles slide: a large file copied with the loop's async file API while a 10 ms ticker runs on the loop; " +
                                 "--sync copies with blocking calls on the loop thread, and the ticker stops. Prints the ticker's largest gap.");
files.Options.Add(sizeMiBOption);
files.Options.Add(syncOption);
files.SetAction(parse =>
{
    int sizeMiB = parse.GetValue(sizeMiBOption);
    if (FilesDemo.Validate(sizeMiB) is { } error)
    {
        return Fail(error);
    }

    bool identical = true;
    int status = Run(LoopName(parse), async loop => identical = (await FilesDemo.RunAsync(loop, AnsiConsole.Console, sizeMiB, parse.GetValue(syncOption))).Identical);
    return status != 0 ? status : identical ? 0 : 1;
});
root.Subcommands.Add(files);

var pgOption = new Option<string?>("--pg") { Description = "An Npgsql connection string. Default: a PostgreSQL server of the demo's own, in a temporary directory." };
var redisOption = new Option<string?>("--redis") { Description = "A Redis host:port. Default: a redis-server of the demo's own, in a temporary directory." };
var queriesOption = new Option<int>("--queries") { Description = "How many SELECTs run at once.", DefaultValueFactory = _ => 100 };
var poolOption = new Option<int>("--pool-size") { Description = "The connection pool's maximum size.", DefaultValueFactory = _ => 10 };
var db = new Command("db", "PostgreSQL (Npgsql) and Redis (StackExchange.Redis) on the loop: 100 queries at once, a transaction, COPY, pipelined commands, pub/sub.");
db.Options.Add(pgOption);
db.Options.Add(redisOption);
db.Options.Add(queriesOption);
db.Options.Add(poolOption);
db.SetAction(parse =>
{
    int queries = parse.GetValue(queriesOption), poolSize = parse.GetValue(poolOption);
    if (queries < 1 || poolSize < 1)
    {
        AnsiConsole.MarkupLine("[red]--queries and --pool-size must be at least 1.[/]");
        return 2;
    }

    string? pg = parse.GetValue(pgOption), redis = parse.GetValue(redisOption);
    EventLoop.Samples.Db.LocalPostgres? ownPg = null;
    EventLoop.Samples.Db.LocalRedis? ownRedis = null;
    try
    {
        // Servers of our own when none were given, started before the loop (starting them blocks).
        if (pg is null)
        {
            ownPg = EventLoop.Samples.Db.LocalPostgres.Start();
            pg = ownPg.ConnectionString;
        }

        if (redis is null)
        {
            ownRedis = EventLoop.Samples.Db.LocalRedis.Start();
            redis = ownRedis.ConnectionString;
        }

        var options = new DbOptions(pg, redis, queries, poolSize);
        return Run(LoopName(parse), loop => DbDemo.RunAsync(loop, AnsiConsole.Console, options));
    }
    catch (EventLoop.Samples.Db.LocalServerUnavailableException ex)
    {
        Console.Error.WriteLine($"db: {ex.Message.Split('\n')[0]} (or pass --pg CONNECTION-STRING and --redis HOST:PORT)");
        return 1;
    }
    finally
    {
        ownRedis?.Dispose();
        ownPg?.Dispose();
    }
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
        return Fail($"--host must be an IP address, not '{parse.GetValue(hostOption)}'");
    }

    int port = parse.GetValue(webPortOption), loops = parse.GetValue(webLoopsOption);
    if (port is < 0 or > 65535 || loops is < 1 or > 1024)
    {
        return Fail($"--port must be between 0 and 65535 (not {port}) and --loops between 1 and 1024 (not {loops})");
    }

    WebTransport transport;
    switch (parse.GetValue(transportOption))
    {
        case "eventloop": transport = WebTransport.EventLoop; break;
        case "sockets": transport = WebTransport.Sockets; break;
        default:
            return Fail($"--transport must be eventloop or sockets, not '{parse.GetValue(transportOption)}'");
    }

    try
    {
        return WebDemo.Run(LoopName(parse), loops, host, port, transport,
            parse.GetValue(appOnLoopOption) ? EventLoop.AspNetCore.EventLoopApplicationScheduling.Loop : EventLoop.AspNetCore.EventLoopApplicationScheduling.ThreadPool);
    }
    catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or IOException)
    {
        Console.Error.WriteLine($"web: {ex.Message}");
        return 1;
    }
});

root.Subcommands.Add(echoServer);
root.Subcommands.Add(db);
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
    bool chosen = parse.GetValue(loopOption) is not null
                  || Environment.GetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable) is not null;
    string[] loops = chosen ? [LoopName(parse)] : ["managed", "libuv"];

    // Every loop the tour will use is checked before anything runs: no managed half, then a libuv error.
    var policies = new List<LoopPolicy>();
    foreach (string name in loops)
    {
        if (ResolvePolicy(name, out LoopPolicy? policy) is int failed)
        {
            return failed;
        }

        policies.Add(policy!);
    }

    foreach (LoopPolicy policy in policies)
    {
        int status = RunOn(policy, TourAsync);
        if (status != 0)
        {
            return status;
        }

        AnsiConsole.WriteLine();
    }

    return 0;
});

// Parse errors (an unknown option, a number that is not one) are bad input too: a line each on stderr, exit code 2,
// rather than System.CommandLine's default of the error, the whole help on stdout, and exit code 1.
ParseResult parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (System.CommandLine.Parsing.ParseError error in parsed.Errors)
    {
        Console.Error.WriteLine($"error: {error.Message} (see --help)");
    }

    return 2;
}

return parsed.Invoke();

// One line on stderr (plain text, so a script can read it) and the exit code for bad input.
static int Fail(string message, int exitCode = 2)
{
    Console.Error.WriteLine($"error: {message}");
    return exitCode;
}

// The policy named, with libuv loaded and checked now: null when it can be used, else the exit code after
// one line on stderr (an unknown name, or the libuv library's own message: what, where, how to install).
static int? ResolvePolicy(string policyName, out LoopPolicy? policy)
{
    policy = null;
    try
    {
        policy = EventLoopPolicy.FromName(policyName);
    }
    catch (ArgumentException)
    {
        return Fail($"unknown loop '{policyName}': --loop (or EVENTLOOP_POLICY) must be managed or libuv");
    }

    if (policy is LibuvLoopPolicy && !LibuvLoopPolicy.IsAvailable(out LibuvUnavailableException? error))
    {
        return Fail(error!.Message, exitCode: 1);
    }

    return null;
}

static int Run(string policyName, Func<Loop, Task> demo) =>
    ResolvePolicy(policyName, out LoopPolicy? policy) is int failed ? failed : RunOn(policy!, demo);

static int RunOn(LoopPolicy policy, Func<Loop, Task> demo)
{
    try
    {
        Loop.Run(() => demo(Loop.Current), policy);
        return 0;
    }
    catch (SampleFailure ex)
    {
        return Fail(ex.Message, exitCode: 1);
    }
}

// A rule across the terminal; a plain heading when the output is piped (a rule would be the 10,000-column width).
static void Heading(string markup)
{
    if (Console.IsOutputRedirected)
    {
        AnsiConsole.MarkupLine($"== {markup} ==");
    }
    else
    {
        AnsiConsole.Write(new Rule(markup));
    }
}

// For demos that start their own loops (a group): the policy by name, and the demo run on this thread.
static int RunOffLoop(string policyName, Func<LoopPolicy, Task> demo)
{
    if (ResolvePolicy(policyName, out LoopPolicy? policy) is int failed)
    {
        return failed;
    }

    try
    {
        demo(policy!).GetAwaiter().GetResult();
        return 0;
    }
    catch (SampleFailure ex)
    {
        return Fail(ex.Message, exitCode: 1);
    }
}

static async Task TourAsync(Loop loop)
{
    Heading($"[bold]EventLoop tour[/] on the [aqua]{loop.PolicyName}[/] loop");
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
    AnsiConsole.WriteLine();
    await ProcessesDemo.RunAsync(loop, AnsiConsole.Console, count: 3, lines: 3);
    AnsiConsole.WriteLine();
    await CpuDemo.RunAsync(loop, AnsiConsole.Console, workers: Environment.ProcessorCount, size: 1_000_000);
    AnsiConsole.WriteLine();
    await FilesDemo.RunAsync(loop, AnsiConsole.Console, sizeMiB: 16, sync: true);
    await FilesDemo.RunAsync(loop, AnsiConsole.Console, sizeMiB: 16, sync: false);
    Heading("[bold]tour done[/]");
}
