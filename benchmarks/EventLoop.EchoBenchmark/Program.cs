using System.Globalization;
using EventLoop.EchoBenchmark;

// The echo benchmark (issue 4). Three roles in one program:
//   run     (default) the orchestrator: starts each server pinned to core 0, drives it with the load generator
//           pinned to core 1, for each message size; writes benchmarks/results/echo.md, echo.png and echo-cpu.png.
//           The load generator is benchmarks/echo/echo_client.c (epoll, every reply byte checked), compiled
//           with the machine's C compiler; without one, the `client` role below stands in, said so in the report.
//   client  the .NET fallback load generator: N connections doing request/response ping-pong of M-byte
//           messages; prints the same RESULT line as the C client.
//   server  threadpool | loop --loop managed|libuv: an echo server; prints one line naming its address.
//   chart   --csv FILE --out PREFIX: the web benchmark's charts (benchmarks/web/run.sh), drawn as the echo charts are.
// See Options.Usage for the flags.
try
{
    string role = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "run";
    string[] rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
    switch (role)
    {
        case "run":
            return await Orchestrator.RunAsync(Options.Parse(rest));
        case "client":
            return await EchoClient.RunFromArgsAsync(rest);
        case "server":
            return await EchoServers.RunFromArgsAsync(rest);
        case "file-read":
            return FileRead.Run(rest);
        case "tls-server":
            return await TlsEcho.RunServerFromArgsAsync(rest);
        case "chart":
            return WebChart.RunFromArgs(rest);
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

namespace EventLoop.EchoBenchmark
{
    /// <summary>The orchestrator's options.</summary>
    internal sealed record Options
    {
        public const string Usage = """
            Usage: EventLoop.EchoBenchmark [run] [options]
              --servers LIST      comma-separated: threadpool,managed,libuv,uvloop,node (default: all that are available),
                                  and the loop groups managed-group,libuv-group (one SO_REUSEPORT listener per loop) and
                                  managed-group-handoff,libuv-group-handoff (one acceptor handing sockets to the loops),
                                  managed-copy,libuv-copy (the echo copying each read into the output pipe, as before
                                  direct writes: the same run shows what WriteAsync's direct send saves)
              --loops N           loops of the *-group servers (default 2)
              --server-cores LIST the cores the server is pinned to, a taskset list (default 0; e.g. 0-1 for a group)
              --client-core N     the core the client is pinned to (default 1)
              --baseline NAME     the server the ratio column compares with (default threadpool)
              --messages-per-connection K  the C client closes each connection after K echoes and opens a new one
                                  (default 0: connections live for the whole run); with 1, every message is a new
                                  connection, so accepting is measured as much as echoing
              --hash-rounds N     the harness's own servers hash every byte they receive N times (SHA-256) before echoing
                                  it: CPU work in the server, so it, not the client, sets the pace (default 0: a pure echo;
                                  above 0 the loop servers are this harness's, not the samples runner's)
              --sizes LIST        message sizes in bytes (default 1024,10240,102400)
              --connections N     client connections (default 32)
              --duration SECONDS  measured time per case (default 5)
              --warmup SECONDS    unmeasured time before each case (default 3: .NET servers are still tiering up their JIT code after 1 s)
              --warmup-server-cpu SECONDS  with the C client, the warm-up also lasts until the server has used this much CPU
                                  time since the client started, at most 60 s more (default 2; 0: wall time only). On a
                                  shared core 3 s can be a few hundred ms of the server's CPU, and a .NET server then
                                  still compiles its hot code optimised (tiered JIT) inside the measured window
              --rounds N          measure every server N times, in rotating order, and report medians (default 3)
              --client c|dotnet   the load generator: c (default; benchmarks/echo/echo_client.c, built with gcc/cc)
                                  or dotnet (the `client` role, which runs near 100% of its core)
              --quick             duration 1 s, warm-up 0.3 s (wall time only), one round (a smoke run)
              --server-inproc     serve managed/libuv from this harness's own loop echo server instead of the samples runner
              --out DIR           results folder (default benchmarks/results under the repository)
              --no-pin            do not pin with taskset (server on core 0, client on core 1)
              --inline-completions  run every .NET server with DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1
                                  (socket completions on the epoll thread instead of a thread-pool hop)
              --tls               TLS echo instead (TlsEcho.cs): servers threadpool (SslStream), managed, libuv (ListenTlsAsync),
                                  uvloop (ssl=); client benchmarks/echo/tls_echo_client.c (OpenSSL); default sizes 1024,65536;
                                  writes echo-tls.md
              --unix              Unix domain socket echo instead: servers managed, libuv (this harness's `server loop --unix`,
                                  ListenUnixAsync) and uvloop (create_unix_server); the C client with --unix; writes echo-unix.md
            Roles used by the orchestrator:
              client --host H --port N --connections N --size BYTES --duration S --warmup S [--server-pid PID]
              server threadpool|loop [--loop managed|libuv] [--loops N] [--hash-rounds N] --host H --port N | --unix PATH
              tls-server threadpool|loop [--loop managed|libuv] --host H --port N --cert PEM
            Other roles:
              chart --csv FILE --out PREFIX   the web benchmark's charts from benchmarks/web/run.sh's CSV: PREFIX.png, PREFIX-cpu.png
            The file-read benchmark (benchmarks/files/run.sh runs it beside uvloop's):
              file-read --loop managed|libuv --file PATH [--chunk BYTES] [--in-flight N] [--passes N]
            """;

        public string[] Servers { get; init; } = ["threadpool", "managed", "libuv", "uvloop", "node"];
        public int[] Sizes { get; init; } = [1024, 10 * 1024, 100 * 1024];
        public int Connections { get; init; } = 32;
        public double Duration { get; init; } = 5;
        public double Warmup { get; init; } = 3;
        public double WarmupServerCpu { get; init; } = 2;
        public int Rounds { get; init; } = 3;
        public bool ServerInProc { get; init; }
        public bool Pin { get; init; } = true;
        public string? OutDir { get; init; }
        public bool ServersGiven { get; init; }
        public bool InlineCompletions { get; init; }
        public string Client { get; init; } = "c";
        public int Loops { get; init; } = 2;
        public string ServerCores { get; init; } = "0";
        public int ClientCore { get; init; } = 1;
        public string Baseline { get; init; } = "threadpool";
        public int HashRounds { get; init; }
        public int MessagesPerConnection { get; init; }

        /// <summary>The one core the server is pinned to, or null when it may run on several.</summary>
        public int? SingleServerCore => int.TryParse(ServerCores, NumberStyles.None, CultureInfo.InvariantCulture, out int core) ? core : null;
        public bool Tls { get; init; }

        /// <summary>The Unix domain socket echo (<c>--unix</c>): each server listens on a socket file named after its free port.</summary>
        public bool Unix { get; init; }

        /// <summary>The report's file name, without extension.</summary>
        public string ReportName => Tls ? "echo-tls" : Unix ? "echo-unix" : "echo";

        public static Options Parse(string[] args)
        {
            var o = new Options();
            bool sizesGiven = false;
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                switch (args[i])
                {
                    case "--servers": o = o with { Servers = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), ServersGiven = true }; break;
                    case "--sizes": o = o with { Sizes = Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray() }; sizesGiven = true; break;
                    case "--connections": o = o with { Connections = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--duration": o = o with { Duration = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--warmup": o = o with { Warmup = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--warmup-server-cpu": o = o with { WarmupServerCpu = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--rounds": o = o with { Rounds = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--quick": o = o with { Duration = 1, Warmup = 0.3, WarmupServerCpu = 0, Rounds = 1 }; break;
                    case "--server-inproc": o = o with { ServerInProc = true }; break;
                    case "--no-pin": o = o with { Pin = false }; break;
                    case "--inline-completions": o = o with { InlineCompletions = true }; break;
                    case "--out": o = o with { OutDir = Next() }; break;
                    case "--client": o = o with { Client = Next() }; break;
                    case "--loops": o = o with { Loops = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--server-cores": o = o with { ServerCores = Next() }; break;
                    case "--client-core": o = o with { ClientCore = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--baseline": o = o with { Baseline = Next() }; break;
                    case "--hash-rounds": o = o with { HashRounds = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--messages-per-connection": o = o with { MessagesPerConnection = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                    case "--tls": o = o with { Tls = true }; break;
                    case "--unix": o = o with { Unix = true }; break;
                    default: throw new ArgumentException($"Unknown option '{args[i]}'.");
                }
            }

            if (o.Tls)
            {
                o = o with { Sizes = sizesGiven ? o.Sizes : [1024, 64 * 1024], Servers = o.ServersGiven ? o.Servers : ["threadpool", "managed", "libuv", "uvloop"] };
            }

            if (o.Unix)
            {
                if (o.Tls || o.Client == "dotnet")
                {
                    throw new ArgumentException("--unix goes with neither --tls nor --client dotnet.");
                }

                o = o with { Servers = o.ServersGiven ? o.Servers : ["managed", "libuv", "uvloop"], Baseline = o.Baseline == "threadpool" ? "uvloop" : o.Baseline };
                if (o.Servers.FirstOrDefault(s => s is not ("managed" or "libuv" or "uvloop")) is { } notUnix)
                {
                    throw new ArgumentException($"--unix measures managed, libuv and uvloop, not '{notUnix}'.");
                }
            }

            string[] known = ["threadpool", "managed", "libuv", "uvloop", "node", "managed-copy", "libuv-copy", "managed-group", "libuv-group", "managed-group-handoff", "libuv-group-handoff"];
            if (o.Servers.FirstOrDefault(s => !known.Contains(s)) is { } unknown)
            {
                throw new ArgumentException($"Unknown server '{unknown}' ({string.Join(", ", known)}).");
            }

            if (o.MessagesPerConnection < 0 || (o.MessagesPerConnection > 0 && o.Client == "dotnet"))
            {
                throw new ArgumentException("--messages-per-connection must not be negative, and only the C client supports it.");
            }

            if (o.Client is not ("c" or "dotnet"))
            {
                throw new ArgumentException($"--client must be c or dotnet, not '{o.Client}'.");
            }

            if (o.Connections <= 0 || o.Duration <= 0 || o.Rounds <= 0 || o.Warmup < 0 || o.WarmupServerCpu < 0 || o.Sizes.Any(s => s <= 0) || o.Loops <= 0 || o.HashRounds < 0)
            {
                throw new ArgumentException("--connections, --duration, --rounds, --loops and --sizes must be positive, --warmup and --hash-rounds not negative.");
            }

            return o;
        }

        /// <summary>The command line as given, for the report.</summary>
        public static string CommandLine(string[] args) => string.Join(' ', args);
    }
}
