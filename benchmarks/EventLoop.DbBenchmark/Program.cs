using System.Diagnostics;
using System.Globalization;
using System.Text;
using EventLoop.DbBenchmark;
using EventLoop.Samples.Db;
using Npgsql;

// Npgsql and StackExchange.Redis on our managed and libuv loops against asyncpg and redis.asyncio on uvloop, in the
// same rounds: servers (our own PostgreSQL and Redis, started by the code the demo and tests use) on core 0, each
// client on core 1. 'client ...' is the child-process entry point of the .NET clients.
if (args.Length > 0 && args[0] == "client")
{
    return Clients.Run(args);
}

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
int rounds = 3;
double seconds = 5, warmup = 2;
string? output = null;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--rounds": rounds = int.Parse(args[i + 1]); break;
        case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--warmup": warmup = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--output": output = args[i + 1]; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

const int rows = 10_000, concurrency = 32, batch = 32;
string repo = FindRepo();
string python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
string pyClients = Path.Combine(repo, "benchmarks", "db", "py_clients.py");
string self = typeof(Clients).Assembly.Location;

using LocalPostgres postgres = LocalPostgres.Start(cores: "0");
using LocalRedis redis = LocalRedis.Start(cores: "0");
using (var connection = new NpgsqlConnection(postgres.ConnectionString))
{
    connection.Open();
    using var seed = new NpgsqlCommand(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, value int NOT NULL); " +
        $"INSERT INTO items SELECT i, 'item ' || i, i * 10 FROM generate_series(1, {rows}) AS i", connection);
    seed.ExecuteNonQuery();
    using var analyze = new NpgsqlCommand("VACUUM ANALYZE items", connection);
    analyze.ExecuteNonQuery();
}

string common = $"--concurrency {concurrency} --seconds {seconds.ToString(CultureInfo.InvariantCulture)} --warmup {warmup.ToString(CultureInfo.InvariantCulture)} --rows {rows} --batch {batch}";
var clients = new (string Name, string Target, string File, string Args)[]
{
    ("asyncpg (uvloop)", "pg", python, $"{pyClients} pg --port {postgres.Port} {common}"),
    ("Npgsql (managed loop)", "pg", "dotnet", $"{self} client pg --loop managed --port {postgres.Port} {common}"),
    ("Npgsql (libuv loop)", "pg", "dotnet", $"{self} client pg --loop libuv --port {postgres.Port} {common}"),
    ("redis.asyncio (uvloop)", "redis", python, $"{pyClients} redis --port {redis.Port} {common}"),
    ("SE.Redis (managed loop)", "redis", "dotnet", $"{self} client redis --loop managed --port {redis.Port} {common}"),
    ("SE.Redis (libuv loop)", "redis", "dotnet", $"{self} client redis --loop libuv --port {redis.Port} {common}"),
    ("SE.Redis over loop TCP (Tunnel, managed)", "redis", "dotnet", $"{self} client redis --loop managed --tunnel yes --port {redis.Port} {common}"),
    ("SE.Redis over loop TCP (Tunnel, libuv)", "redis", "dotnet", $"{self} client redis --loop libuv --tunnel yes --port {redis.Port} {common}"),
};

// (client, workload) -> per-round (ops/s, CPU µs/op)
var results = new Dictionary<(string Client, string Workload), List<(double Rate, double CpuUs)>>();
string load0 = File.ReadAllText("/proc/loadavg").Trim();
for (int round = 0; round < rounds; round++)
{
    for (int k = 0; k < clients.Length; k++)
    {
        var client = clients[(k + round) % clients.Length];
        Console.Error.WriteLine($"round {round + 1}/{rounds}: {client.Name}");
        foreach ((string workload, long ops, double secs, double cpu) in RunClient(client.File, client.Args))
        {
            var key = (client.Name, workload);
            if (!results.TryGetValue(key, out var list))
            {
                results[key] = list = [];
            }

            list.Add((ops / secs, cpu / ops * 1e6));
        }
    }
}

string load1 = File.ReadAllText("/proc/loadavg").Trim();
string report = Report();
Console.WriteLine(report);
if (output is not null)
{
    File.WriteAllText(output, report);
}

return 0;

string Report()
{
    var text = new StringBuilder();
    text.AppendLine("# Databases on the loop: Npgsql and StackExchange.Redis vs asyncpg and redis.asyncio on uvloop");
    text.AppendLine();
    text.AppendLine($"- command: `dotnet benchmarks/EventLoop.DbBenchmark/bin/Release/net10.0/EventLoop.DbBenchmark.dll {string.Join(' ', args)}`");
    text.AppendLine($"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; cores: {Environment.ProcessorCount} (nproc); load average before / after: {load0} / {load1}");
    text.AppendLine($"- servers (PostgreSQL, Redis: started by `LocalPostgres`/`LocalRedis`, fsync off) pinned to core 0; each client pinned to core 1, run alone; " +
                    $"{rounds} rounds in rotating order, {seconds} s measured after {warmup} s of warm-up; figures are medians with the rounds' range");
    text.AppendLine($"- {concurrency} concurrent tasks per client; PostgreSQL: `SELECT id, name, value FROM items WHERE id = $1` on a random one of {rows:N0} rows " +
                    $"(a pool of {concurrency}; statements prepared: asyncpg always, Npgsql by auto-prepare); Redis: GET/SET of 1,000 keys, pipelined = batches of {batch} commands");
    text.AppendLine("- CPU µs/op: the client process's CPU time (user + system, all its threads) over the measured window, per operation");
    text.AppendLine();
    foreach (string target in new[] { "pg", "redis" })
    {
        text.AppendLine("| client | workload | ops/s | rounds' range | vs Python | client CPU µs/op (range) |");
        text.AppendLine("| --- | --- | ---: | ---: | ---: | ---: |");
        var ofTarget = clients.Where(c => c.Target == target).Select(c => c.Name).ToArray();
        foreach (string workload in results.Keys.Where(k => ofTarget.Contains(k.Client)).Select(k => k.Workload).Distinct())
        {
            double? baseline = null;
            foreach (string name in ofTarget)
            {
                if (!results.TryGetValue((name, workload), out var list))
                {
                    continue;
                }

                double rate = Median(list.Select(r => r.Rate)), cpu = Median(list.Select(r => r.CpuUs));
                baseline ??= rate;
                text.AppendLine($"| {name} | {workload} | {rate:N0} | {list.Min(r => r.Rate):N0}–{list.Max(r => r.Rate):N0} | {rate / baseline:F2}x | " +
                                $"{cpu:F1} ({list.Min(r => r.CpuUs):F1}–{list.Max(r => r.CpuUs):F1}) |");
            }
        }

        text.AppendLine();
    }

    return text.ToString();
}

static double Median(IEnumerable<double> values)
{
    double[] sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

static List<(string Workload, long Ops, double Seconds, double Cpu)> RunClient(string file, string arguments)
{
    var info = new ProcessStartInfo("taskset") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    info.ArgumentList.Add("-c");
    info.ArgumentList.Add("1");
    info.ArgumentList.Add(file);
    foreach (string arg in arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
    {
        info.ArgumentList.Add(arg);
    }

    info.Environment["DOTNET_TieredPGO"] = "1";
    using Process process = Process.Start(info)!;
    Task<string> stderr = process.StandardError.ReadToEndAsync();
    var lines = new List<(string, long, double, double)>();
    string? line;
    while ((line = process.StandardOutput.ReadLine()) is not null)
    {
        string[] parts = line.Split(' ');
        if (parts.Length == 5 && parts[0] == "result")
        {
            lines.Add((parts[1], long.Parse(parts[2]), double.Parse(parts[3], CultureInfo.InvariantCulture), double.Parse(parts[4], CultureInfo.InvariantCulture)));
        }
    }

    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} {arguments} exited with {process.ExitCode}: {stderr.Result}");
    }

    return lines;
}

static string FindRepo()
{
    for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
    {
        if (File.Exists(Path.Combine(dir, "EventLoop.sln")))
        {
            return dir;
        }
    }

    return Directory.GetCurrentDirectory();
}
