using System.Globalization;
using EventLoop.ScraperBenchmark;

// The scraper benchmark (issue 5; page sizes, issue 11). Two roles in one program:
//   run     (default) the orchestrator: starts the local podcast site (`EventLoop.Samples site`) pinned to
//           core 0, runs each scraper client pinned to core 1 against it in rounds, and writes
//           benchmarks/results/scraper.md: median pages/s with the rounds' range, CPU time per page of client
//           and site, and the page size served.
//   client  threadpool: a plain HttpClient on the thread pool (the .NET baseline); prints the scraper's
//           `Fetched N pages in X.XX sec (R pages/s)` line.
// The loop clients are the samples runner's own `scraper --base-url ...`; aiohttp on uvloop is
// benchmarks/scraper/aiohttp_scraper.py. See Options.Usage for the flags.
try
{
    string role = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "run";
    string[] rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
    switch (role)
    {
        case "run":
            return await Orchestrator.RunAsync(Options.Parse(rest));
        case "client":
            return await ThreadPoolClient.RunFromArgsAsync(rest);
        case "help" or "--help" or "-h":
            Console.WriteLine(Options.Usage);
            return 0;
        default:
            Console.Error.WriteLine($"Unknown role '{role}'.\n{Options.Usage}");
            return 2;
    }
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"{ex.Message}\n{Options.Usage}");
    return 2;
}

namespace EventLoop.ScraperBenchmark
{
    /// <summary>The orchestrator's options.</summary>
    internal sealed record Options
    {
        public const string Usage = """
            Usage: EventLoop.ScraperBenchmark [run] [options]
              --clients LIST      comma-separated: managed,libuv,threadpool,aiohttp,aiohttp-stream (default: all that are available)
              --pages N           pages per measured run (default 5000)
              --concurrency N     pages fetched at once (default 32)
              --warmup N          pages fetched first, unmeasured, by every client (default 500)
              --runs N            measured rounds; each round runs every client once, in rotating order, and the
                                  report gives each client's median and range (default 3; --rounds is the same)
              --site-loop NAME    the loop the site runs on: managed|libuv (default libuv)
              --page-size LIST    comma-separated page sizes in bytes, each measured in turn with a site of its own;
                                  0 is the small classic page (default 0,20000,80000)
              --quick             1500 pages, 500 warm-up, 1 run (a smoke run)
              --out DIR           results folder (default benchmarks/results under the repository)
              --no-pin            do not pin with taskset (site on core 0, client on core 1)
            Role used by the orchestrator:
              client threadpool --base-url URL --first N --count N --concurrency N [--warmup N]
            """;

        public string[] Clients { get; init; } = ["managed", "libuv", "threadpool", "aiohttp", "aiohttp-stream"];
        public int Pages { get; init; } = 5000;
        public int Concurrency { get; init; } = 32;
        public int Warmup { get; init; } = 500;
        public int Runs { get; init; } = 3;
        public string SiteLoop { get; init; } = "libuv";
        public int[] PageSizes { get; init; } = [0, 20_000, 80_000];
        public bool Pin { get; init; } = true;
        public bool Quick { get; init; }
        public string? OutDir { get; init; }

        public static Options Parse(string[] args)
        {
            var o = new Options();
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                switch (args[i])
                {
                    case "--clients": o = o with { Clients = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }; break;
                    case "--pages": o = o with { Pages = Int(Next()) }; break;
                    case "--concurrency": o = o with { Concurrency = Int(Next()) }; break;
                    case "--warmup": o = o with { Warmup = Int(Next()) }; break;
                    case "--runs" or "--rounds": o = o with { Runs = Int(Next()) }; break;
                    case "--site-loop": o = o with { SiteLoop = Next() }; break;
                    case "--page-size" or "--page-sizes": o = o with { PageSizes = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Int).ToArray() }; break;
                    case "--quick": o = o with { Pages = 1500, Warmup = 500, Runs = 1, Quick = true }; break;
                    case "--no-pin": o = o with { Pin = false }; break;
                    case "--out": o = o with { OutDir = Next() }; break;
                    default: throw new ArgumentException($"Unknown option '{args[i]}'.");
                }
            }

            if (o.Pages <= 0 || o.Concurrency <= 0 || o.Warmup < 0 || o.Runs <= 0 || o.PageSizes.Length == 0 || o.PageSizes.Any(size => size < 0))
            {
                throw new ArgumentException("--pages, --concurrency and --runs must be positive, --warmup and every --page-size not negative.");
            }

            if (o.SiteLoop is not ("managed" or "libuv"))
            {
                throw new ArgumentException($"--site-loop must be managed or libuv, not '{o.SiteLoop}'.");
            }

            return o;
        }

        internal static int Int(string value) => int.Parse(value, NumberStyles.Integer, CultureInfo.InvariantCulture);
    }
}
