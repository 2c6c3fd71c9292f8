using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using EventLoop;
using EventLoop.Libuv;
using static EventLoop.Benchmarking.BenchProcess;

// The UDP echo benchmark (issue 12): datagrams per second and server CPU time per datagram, for our two loops and
// uvloop in the same run. Two roles:
//   run     (default) builds benchmarks/udp/udp_echo_client.c, then for each round and each server (rotating order)
//           starts the server pinned to core 0, drives it with the C client pinned to core 1, and writes
//           benchmarks/results/udp.md with the medians.
//   server  --loop managed|managed-sockets|libuv --port N: a UDP echo server on one of our loops.
// Options of run: --servers LIST (libuv,managed,managed-sockets,uvloop) --flows F (16) --window W (1) --size BYTES (64)
//                 --duration S (5) --warmup S (2) --rounds N (3) --out DIR
var inv = CultureInfo.InvariantCulture;
string role = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "run";
string[] rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
string Option(string name, string fallback)
{
    int i = Array.IndexOf(rest, name);
    return i >= 0 && i + 1 < rest.Length ? rest[i + 1] : fallback;
}

if (role == "server")
{
    string loopName = Option("--loop", "libuv");
    int port = int.Parse(Option("--port", "0"), inv);
    LoopPolicy policy = loopName switch
    {
        "libuv" => new LibuvLoopPolicy(),
        "managed" => new ManagedLoopPolicy(),
        "managed-sockets" => new ManagedLoopPolicy(), // started with EVENTLOOP_MANAGED_IO=sockets
        _ => throw new ArgumentException($"Unknown loop '{loopName}'."),
    };
    Loop.Run(async () =>
    {
        Loop loop = Loop.Current;
        await using DatagramEndpoint endpoint = await loop.OpenDatagramEndpointAsync(new IPEndPoint(IPAddress.Loopback, port));
        Console.WriteLine($"{loopName} UDP echo server on {endpoint.LocalEndPoint}");
        while (true)
        {
            using Datagram datagram = await endpoint.ReceiveAsync();
            await endpoint.SendToAsync(datagram.Data, datagram.RemoteEndPoint);
        }
    }, policy);
    return 0;
}

string repo = FindRepositoryRoot();
string[] servers = Option("--servers", "libuv,managed,managed-sockets,uvloop").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
int flows = int.Parse(Option("--flows", "16"), inv);
int window = int.Parse(Option("--window", "1"), inv);
int size = int.Parse(Option("--size", "64"), inv);
double duration = double.Parse(Option("--duration", "5"), inv);
double warmup = double.Parse(Option("--warmup", "2"), inv);
int rounds = int.Parse(Option("--rounds", "3"), inv);
string outDir = PrepareOutputDirectory(repo, rest.Contains("--out") ? Option("--out", "") : null);
string? core0 = CanPin(true) ? "0" : null;
string? core1 = CanPin(true) ? "1" : null;

// The C client.
string source = Path.Combine(repo, "benchmarks", "udp", "udp_echo_client.c");
string binary = Path.Combine(repo, "benchmarks", "EventLoop.UdpBenchmark", "obj", "native", "udp_echo_client");
string compiler = FindOnPath("gcc") ?? FindOnPath("cc") ?? throw new InvalidOperationException("No C compiler: apt-get install -y gcc");
const string Flags = "-O2 -std=c11 -Wall -Wextra";
Directory.CreateDirectory(Path.GetDirectoryName(binary)!);
if (!File.Exists(binary) || File.GetLastWriteTimeUtc(binary) < File.GetLastWriteTimeUtc(source))
{
    using Process cc = Process.Start(compiler, [.. Flags.Split(' '), "-o", binary, source])!;
    cc.WaitForExit();
    if (cc.ExitCode != 0)
    {
        throw new InvalidOperationException($"{compiler} could not build {source}.");
    }
}

string? python = FindPythonWith("import uvloop");
string self = typeof(Program).Assembly.Location;
string loadBefore = LoadAverage();
var results = servers.ToDictionary(s => s, _ => new List<(double Rate, double ServerCpu, double ClientCpu, long Lost, long Wrong)>());
var notes = new List<string>();
for (int round = 0; round < rounds; round++)
{
    for (int k = 0; k < servers.Length; k++)
    {
        string server = servers[(k + round) % servers.Length];
        (string file, string[] serverArgs) = server == "uvloop"
            ? (python ?? throw new InvalidOperationException("No python3 with uvloop."), new[] { Path.Combine(repo, "benchmarks", "udp", "uvloop_udp_echo.py"), "--port", "0" })
            : (DotnetHost(), new[] { self, "server", "--loop", server, "--port", "0" });
        Process process = Start(file, serverArgs, core0, server == "managed-sockets" ? new Dictionary<string, string> { ["EVENTLOOP_MANAGED_IO"] = "sockets" } : null);
        try
        {
            string line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) ?? throw new InvalidOperationException($"{server} did not start: {process.StandardError.ReadToEnd()}");
            string port = line[(line.LastIndexOf(':') + 1)..].Trim();
            Process client = Start(binary, ["--port", port, "--flows", Str(flows), "--window", Str(window), "--size", Str(size),
                "--duration", duration.ToString(inv), "--warmup", warmup.ToString(inv), "--server-pid", Str(process.Id)], core1);
            string output = await client.StandardOutput.ReadToEndAsync();
            await client.WaitForExitAsync();
            string? result = output.Split('\n').FirstOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
            if (result is null)
            {
                notes.Add($"{server} round {round + 1}: no result ({client.StandardError.ReadToEnd().Trim()})");
                continue;
            }

            Dictionary<string, string> fields = result[7..].Split(' ').Select(f => f.Split('=')).ToDictionary(p => p[0], p => p[1]);
            results[server].Add((double.Parse(fields["rate"], inv), double.Parse(fields["server_cpu_us"], inv), double.Parse(fields["client_cpu_us"], inv),
                long.Parse(fields["lost"], inv), long.Parse(fields["wrong"], inv)));
            Console.WriteLine($"round {round + 1} {server}: {result}");
        }
        finally
        {
            StopProcess(process);
        }
    }
}

static double Median(IEnumerable<double> values)
{
    double[] sorted = values.Order().ToArray();
    return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}

double uvloopRate = results.TryGetValue("uvloop", out var uv) && uv.Count > 0 ? Median(uv.Select(r => r.Rate)) : double.NaN;
double uvloopCpu = results.TryGetValue("uvloop", out uv) && uv.Count > 0 ? Median(uv.Select(r => r.ServerCpu)) : double.NaN;
var md = new StringBuilder();
md.AppendLine("# UDP echo benchmark");
md.AppendLine();
md.AppendLine(inv, $"Made {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {CpuModel()} (`nproc`: {Environment.ProcessorCount}), .NET {Environment.Version}; load average (1, 5, 15 min) before the run {loadBefore}, after it {LoadAverage()}. Command:");
md.AppendLine();
md.AppendLine("```");
md.AppendLine(("dotnet build benchmarks/EventLoop.UdpBenchmark -c Release && dotnet benchmarks/EventLoop.UdpBenchmark/bin/Release/net10.0/EventLoop.UdpBenchmark.dll " + string.Join(' ', args)).TrimEnd());
md.AppendLine("```");
md.AppendLine();
md.AppendLine(inv, $"Load generator: C epoll client `benchmarks/udp/udp_echo_client.c` built with `{Flags}`: {flows} connected UDP sockets (flows), each keeping {window} datagram(s) of {size} bytes in flight and sending the next as each echo arrives, every echo byte checked; {duration:0.#} s measured after {warmup:0.#} s of warm-up. Each figure is the median of {rounds} rounds; every round measures every server, in an order that rotates. Server {(core0 is null ? "not pinned" : "pinned to core 0 and client to core 1 with `taskset`")}.");
md.AppendLine();
md.AppendLine("| server | datagrams/s | rounds' range | vs uvloop | server CPU µs/datagram (range) | vs uvloop | client CPU µs/datagram | lost / wrong |");
md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (string server in servers)
{
    var runs = results[server];
    if (runs.Count == 0)
    {
        md.AppendLine(inv, $"| {server} | n/a | | | | | | |");
        continue;
    }

    double rate = Median(runs.Select(r => r.Rate));
    double cpu = Median(runs.Select(r => r.ServerCpu));
    md.AppendLine(inv, $"| {server} | {rate:N0} | {runs.Min(r => r.Rate):N0}–{runs.Max(r => r.Rate):N0} | {rate / uvloopRate:0.00}x | {cpu:0.00} ({runs.Min(r => r.ServerCpu):0.00}–{runs.Max(r => r.ServerCpu):0.00}) | {cpu / uvloopCpu:0.00}x | {Median(runs.Select(r => r.ClientCpu)):0.00} | {runs.Sum(r => r.Lost)} / {runs.Sum(r => r.Wrong)} |");
}

md.AppendLine();
md.AppendLine("Servers (each echoes every datagram to its sender, one receive and one send per datagram):");
md.AppendLine();
md.AppendLine("- **libuv**: `DatagramEndpoint` on the libuv loop (`uv_udp_t`: `uv_udp_recv_start`, `uv_udp_try_send`), this harness's `server` role");
md.AppendLine("- **managed**: `DatagramEndpoint` on the managed loop's epoll I/O (`recvfrom`/`sendto` on the loop thread)");
md.AppendLine("- **managed-sockets**: the managed loop with `EVENTLOOP_MANAGED_IO=sockets` (.NET `Socket` operations posted back to the loop)");
md.AppendLine(inv, $"- **uvloop**: uvloop {(python is null ? "n/a" : Capture(python, "-c", "import uvloop; print(uvloop.__version__)"))} asyncio `DatagramProtocol` echo (`benchmarks/udp/uvloop_udp_echo.py`)");
md.AppendLine();
md.AppendLine("**server CPU µs/datagram** is the server process's CPU time (utime + stime from `/proc/<pid>/stat`, read by the client at the start and end of its window) per echoed datagram: the steadier figure on a shared machine. **lost**: datagrams the client resent after 200 ms without an echo (summed over rounds); **wrong**: echoes whose bytes differed.");
foreach (string note in notes)
{
    md.AppendLine(inv, $"- {note}");
}

string path = Path.Combine(outDir, "udp.md");
File.WriteAllText(path, md.ToString());
Console.WriteLine(md.ToString());
Console.WriteLine($"wrote {path}");
return 0;
