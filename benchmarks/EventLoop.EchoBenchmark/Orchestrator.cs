using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.EchoBenchmark;

/// <summary>How to start one server: a command line, given the port.</summary>
internal sealed record ServerSpec(string Name, string Description, Func<int, (string File, string[] Args)> Command, IReadOnlyDictionary<string, string>? Environment = null);

/// <summary>Starts each server pinned to its cores (default core 0), drives it with the client pinned to its core (default 1), and reports.</summary>
internal static class Orchestrator
{
    private const string Host = "127.0.0.1";

    public static async Task<int> RunAsync(Options options)
    {
        string loadBefore = LoadAverage();
        string repo = FindRepositoryRoot();
        string outDir = PrepareOutputDirectory(repo, options.OutDir);
        bool pin = CanPin(options.Pin);
        var notes = new List<string>();
        var results = new List<CaseSummary>();
        var described = new List<ServerSpec>();
        TlsEcho.CertificateFiles? certificate = options.Tls ? TlsEcho.WriteCertificate(repo) : null;
        ClientSpec? client = certificate is null ? ChooseClient(repo, options, notes) : TlsEcho.ChooseClient(repo, certificate);
        if (client is null)
        {
            return 1; // no TLS client: said why on stderr
        }
        int? serverCore = options.SingleServerCore; // null when the server may use several cores
        int clientCore = options.ClientCore;

        // Every server is measured in each round, in an order that rotates from round to round, and the report
        // gives each case's median: a shared machine's speed drifts, and a server measured only once, always
        // in the same slot, would carry that drift into its ratio.
        var samples = new Dictionary<(string Server, int Size), List<CaseResult>>();
        var chosen = new Dictionary<string, ServerSpec>();
        string[] order = options.Servers;
        for (int round = 0; round < options.Rounds; round++)
        {
            IEnumerable<string> roundOrder = order.Skip(round % order.Length).Concat(order.Take(round % order.Length));
            foreach (string name in roundOrder)
            {
                List<ServerSpec> candidates = round == 0
                    ? certificate is null ? Candidates(name, repo, options, notes) : TlsEcho.Candidates(name, repo, options, certificate, notes)
                    : chosen.TryGetValue(name, out ServerSpec? known) ? [known] : [];
                foreach (ServerSpec spec in candidates)
                {
                    int port = FreePort();
                    using Process? server = await StartServerAsync(spec, port, pin ? options.ServerCores : null, options.InlineCompletions, notes, options.Unix);
                    if (server is null)
                    {
                        continue; // try the next way of starting this server
                    }

                    if (chosen.TryAdd(name, spec))
                    {
                        described.Add(spec);
                    }

                    try
                    {
                        foreach (int size in options.Sizes)
                        {
                            CaseResult result = await RunClientAsync(client, spec.Name, server.Id, port, size, options, pin ? clientCore : null);
                            if (!samples.TryGetValue((name, size), out List<CaseResult>? list))
                            {
                                samples[(name, size)] = list = [];
                            }

                            list.Add(result);
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"round {round + 1}/{options.Rounds} {spec.Name,-10} {Report.FormatSize(size),7}: {result.MessagesPerSecond,12:N0} msg/s, server {result.ServerMicrosPerMessage,6:N1} us/msg, {result.ServerCore(pin ? serverCore : null)?.Own,4:P0} of its core ({result.ServerCore(pin ? serverCore : null)?.Idle,4:P0} idle), client {result.ClientCore(pin ? clientCore : null)?.Own,4:P0} of its core ({result.ClientCore(pin ? clientCore : null)?.Idle,4:P0} idle) {result.Note}"));
                        }
                    }
                    finally
                    {
                        StopProcess(server);
                    }

                    break;
                }

                if (round == 0 && !chosen.ContainsKey(name) && candidates.Count > 0)
                {
                    notes.Add($"{name}: could not be started (see above).");
                }
            }
        }

        foreach (string name in options.Servers)
        {
            foreach (int size in options.Sizes)
            {
                if (samples.TryGetValue((name, size), out List<CaseResult>? list))
                {
                    results.Add(new CaseSummary(name, size, list, pin ? serverCore : null, pin ? clientCore : null));
                }
            }
        }

        string markdownPath = Path.Combine(outDir, $"{options.ReportName}.md");
        string chartPath = Path.Combine(outDir, $"{options.ReportName}.png");
        string markdown = Report.Markdown(results, described, client, notes, options, pin, loadBefore);
        await File.WriteAllTextAsync(markdownPath, markdown);
        Report.Chart(results, options, client, chartPath);
        Console.WriteLine();
        Console.WriteLine(markdown);
        Console.WriteLine($"Wrote {markdownPath}, {chartPath} and {Path.ChangeExtension(chartPath, null)}-cpu.png");
        return results.Count > 0 ? 0 : 1;
    }

    /// <summary>
    /// The C client unless --client dotnet was asked for; the .NET client, said so in the notes, when the C one
    /// cannot be built.
    /// </summary>
    private static ClientSpec ChooseClient(string repo, Options options, List<string> notes)
    {
        var dotnetClient = new ClientSpec("dotnet", DotnetHost(), [typeof(Orchestrator).Assembly.Location, "client"],
            ".NET client (`client` role of this harness: async sockets on the thread pool, every reply byte checked); it runs near 100% of its core against the faster servers, so its figures measure the client as much as the server");
        if (options.Client == "dotnet")
        {
            return dotnetClient;
        }

        (ClientSpec? native, string? problem) = NativeClient.Build(repo);
        if (native is not null)
        {
            return native;
        }

        string message = $"The C client could not be used: {problem}. FELL BACK to the .NET client, which runs near 100% of its core: these figures measure the client as much as the servers.";
        Console.Error.WriteLine(message);
        notes.Add($"**{message}**");
        return dotnetClient;
    }

    private static List<ServerSpec> Candidates(string name, string repo, Options options, List<string> notes)
    {
        string self = typeof(Orchestrator).Assembly.Location;
        string dotnet = DotnetHost();
        var list = new List<ServerSpec>();
        string[] hash = options.HashRounds > 0 ? ["--hash-rounds", Str(options.HashRounds)] : [];
        string hashText = options.HashRounds > 0 ? $"; hashes every received byte {options.HashRounds} times (SHA-256) before echoing it" : "";
        switch (name)
        {
            case "threadpool":
                list.Add(new ServerSpec(name, $".NET thread-pool Socket echo server (async accept loop, one task per connection; this harness){hashText}",
                    port => (dotnet, [self, "server", "threadpool", "--host", Host, "--port", Str(port), .. hash])));
                break;
            case "managed" or "libuv" or "managed-group" or "libuv-group" or "managed-group-handoff" or "libuv-group-handoff":
                string policy = name.StartsWith("libuv", StringComparison.Ordinal) ? "libuv" : "managed";
                int loops = name.Contains("group", StringComparison.Ordinal) ? options.Loops : 1;
                bool handOff = name.EndsWith("handoff", StringComparison.Ordinal);
                string[] loopArgs = loops > 1 ? ["--loops", Str(loops)] : [];
                string what = loops > 1
                    ? $"a group of {loops} {policy} loops, each on its own thread, {(handOff ? "one acceptor handing sockets to the loops (EVENTLOOP_GROUP_SPREADING=handoff)" : "one SO_REUSEPORT listener per loop")}"
                    : $"the {policy} loop";
                Dictionary<string, string>? environment = loops > 1 ? new() { ["EVENTLOOP_GROUP_SPREADING"] = handOff ? "handoff" : "reuseport" } : null;
                string samples = Path.Combine(repo, "samples", "EventLoop.Samples", "bin", "Release", "net10.0", "EventLoop.Samples.dll");
                if (!options.ServerInProc && options.HashRounds == 0 && !options.Unix && File.Exists(samples))
                {
                    list.Add(new ServerSpec(name, $"samples runner `echo-server --loop {policy}{(loops > 1 ? $" --loops {loops}" : "")}`: {what}",
                        port => (dotnet, [samples, "echo-server", "--loop", policy, .. loopArgs, "--host", Host, "--port", Str(port)]), environment));
                }

                list.Add(new ServerSpec(name, $"this harness's loop echo server (`server loop --loop {policy}{(loops > 1 ? $" --loops {loops}" : "")}`): {what}{hashText}",
                    port => (dotnet, [self, "server", "loop", "--loop", policy, .. loopArgs, .. Address(options, port), .. hash]), environment));
                break;
            case "managed-copy" or "libuv-copy":
                string copyPolicy = name.StartsWith("libuv", StringComparison.Ordinal) ? "libuv" : "managed";
                list.Add(new ServerSpec(name, $"this harness's loop echo server copying each read into the output pipe (`server loop --loop {copyPolicy} --copy`): the {copyPolicy} loop as the echo wrote before direct writes",
                    port => (dotnet, [self, "server", "loop", "--loop", copyPolicy, "--copy", .. Address(options, port), .. hash])));
                break;
            case "uvloop":
                string? python = FindPythonWith("import uvloop");
                if (python is null)
                {
                    notes.Add("uvloop: not measured, no python3 with uvloop (apt-get install -y python3-uvloop).");
                    break;
                }

                string script = Path.Combine(repo, "benchmarks", "echo", "uvloop_echo.py");
                list.Add(new ServerSpec(name, $"uvloop {UvloopVersion(python)} asyncio.Protocol echo (`benchmarks/echo/uvloop_echo.py`)",
                    port => (python, [script, .. Address(options, port)])));
                break;
            case "node":
                string? node = FindOnPath("node");
                if (node is null)
                {
                    notes.Add("node: not measured, node is not installed (apt-get install -y nodejs).");
                    break;
                }

                string js = Path.Combine(repo, "benchmarks", "echo", "node_echo.js");
                list.Add(new ServerSpec(name, $"Node.js {Capture(node, "--version")} net echo (`benchmarks/echo/node_echo.js`)",
                    port => (node, [js, "--host", Host, "--port", Str(port)])));
                break;
            default:
                throw new ArgumentException($"Unknown server '{name}' (threadpool, managed, libuv, managed-copy, libuv-copy, uvloop, node).");
        }

        return list;
    }

    /// <summary>Where a server listens and the client connects: the port on loopback, or with <c>--unix</c> a socket file named after it.</summary>
    private static string[] Address(Options options, int port) =>
        options.Unix ? ["--unix", UnixPath(port)] : ["--host", Host, "--port", Str(port)];

    private static string UnixPath(int port) => Path.Combine(Path.GetTempPath(), $"evl-echo-{Str(port)}.sock");

    private static async Task<bool> CanConnectUnixAsync(string path)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(100);
            }
        }

        return false;
    }

    private static async Task<Process?> StartServerAsync(ServerSpec spec, int port, string? cores, bool inlineCompletions, List<string> notes, bool unix = false)
    {
        (string file, string[] args) = spec.Command(port);
        var environment = new Dictionary<string, string>(spec.Environment ?? new Dictionary<string, string>());
        if (inlineCompletions)
        {
            environment["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "1";
        }

        Process process = Start(file, args, cores, environment);
        var firstLine = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => firstLine.TrySetResult(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (errors)
                {
                    errors.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        Task finished = await Task.WhenAny(firstLine.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(30)));
        string? line = firstLine.Task.IsCompleted ? firstLine.Task.Result : null;
        if (line is null)
        {
            await Task.WhenAny(process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(2))); // closed its output: dying?
        }

        if (line is null || !line.Contains(Str(port), StringComparison.Ordinal) || !await (unix ? CanConnectUnixAsync(UnixPath(port)) : CanConnectAsync(port)))
        {
            string why = process.HasExited ? $"exited with code {process.ExitCode}" : line is null ? "printed nothing" : $"printed '{line}'";
            string stderr;
            lock (errors)
            {
                stderr = errors.ToString().Trim();
            }

            // The line that says what went wrong: an exception's message, or Python's last traceback line.
            string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string firstError = lines.FirstOrDefault(l => l.Contains("Exception", StringComparison.Ordinal)) ?? lines.LastOrDefault() ?? "";
            string message = $"{spec.Name} via {spec.Description}: {why}. {firstError}".Trim();
            notes.Add(message);
            Console.Error.WriteLine(message);
            StopProcess(process);
            process.Dispose();
            return null;
        }

        _ = finished;
        Console.WriteLine($"{spec.Name}: {line}");
        return process;
    }

    private static async Task<CaseResult> RunClientAsync(ClientSpec client, string server, int serverPid, int port, int size, Options options, int? clientCore)
    {
        string[] args =
        [
            .. client.Prefix, .. Address(options, port), "--connections", Str(options.Connections), "--size", Str(size),
            "--duration", options.Duration.ToString(CultureInfo.InvariantCulture), "--warmup", options.Warmup.ToString(CultureInfo.InvariantCulture),
            "--server-pid", Str(serverPid),
            .. (client.Name == "c" && options.WarmupServerCpu > 0 ? ["--warmup-server-cpu", options.WarmupServerCpu.ToString(CultureInfo.InvariantCulture)] : Array.Empty<string>()),
            .. (options.MessagesPerConnection > 0 ? ["--messages-per-connection", Str(options.MessagesPerConnection)] : Array.Empty<string>()),
        ];
        using Process process = Start(client.File, args, clientCore is { } core ? Str(core) : null);
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(options.Duration + options.Warmup + (client.Name == "c" && options.WarmupServerCpu > 0 ? 120 : 60)));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            StopProcess(process);
            return new CaseResult(server, size, null, "client timed out");
        }

        Measurement? measured = Measurement.Parse(await stdout);
        if (measured is null)
        {
            string error = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? $"exit code {process.ExitCode}";
            return new CaseResult(server, size, null, $"client failed: {error}");
        }

        string? note = measured.Errors > 0 || measured.MismatchedBytes > 0
            ? $"{measured.Errors} connection errors, {measured.MismatchedBytes} mismatched bytes"
            : measured.Server is null ? "the server's CPU time could not be read" : null;
        return new CaseResult(server, size, measured, note);
    }

    private static string UvloopVersion(string python) => Capture(python, "-c", "import uvloop; print(uvloop.__version__)");

}
