using System.Diagnostics;
using Npgsql;
using StackExchange.Redis;

namespace EventLoop.DbBenchmark;

/// <summary>
/// The .NET side of the benchmark, run as a child process pinned to one core: Npgsql or StackExchange.Redis on one
/// of our loops, the same workloads as benchmarks/db/py_clients.py. Prints 'result NAME OPS SECONDS CPU' per
/// workload; CPU is the whole process's (every thread: the drivers' internals run on the thread pool) over the
/// measured window. Every reply is checked.
/// </summary>
internal static class Clients
{
    private sealed record Settings(int Port, int Concurrency, double Seconds, double Warmup, int Rows, int Batch, bool Tunnel = false);

    public static int Run(string[] args)
    {
        string target = args[1];
        var values = new Dictionary<string, string>();
        for (int i = 2; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        var settings = new Settings(int.Parse(values["port"]), int.Parse(values.GetValueOrDefault("concurrency", "32")),
            double.Parse(values.GetValueOrDefault("seconds", "5")), double.Parse(values.GetValueOrDefault("warmup", "2")),
            int.Parse(values.GetValueOrDefault("rows", "10000")), int.Parse(values.GetValueOrDefault("batch", "32")), values.GetValueOrDefault("tunnel", "no") == "yes");
        LoopPolicy policy = EventLoopPolicy.FromName(values.GetValueOrDefault("loop", "managed"));
        Loop.Run(() => target == "pg" ? PostgresAsync(Loop.Current, settings) : RedisAsync(Loop.Current, settings), policy);
        return 0;
    }

    private static async Task MeasureAsync(Loop loop, string name, Func<Task<int>> worker, Settings settings)
    {
        bool measuring = false, stop = false;
        long ops = 0;
        Task[] workers = Enumerable.Range(0, settings.Concurrency).Select(async _ =>
        {
            while (!stop)
            {
                int n = await worker();
                if (measuring)
                {
                    ops += n; // on the loop thread: no lock
                }
            }
        }).ToArray();
        await loop.DelayAsync(TimeSpan.FromSeconds(settings.Warmup));
        using Process self = Process.GetCurrentProcess();
        measuring = true;
        long t0 = Stopwatch.GetTimestamp();
        self.Refresh();
        TimeSpan c0 = self.TotalProcessorTime;
        await loop.DelayAsync(TimeSpan.FromSeconds(settings.Seconds));
        measuring = false;
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        self.Refresh();
        TimeSpan c1 = self.TotalProcessorTime;
        long counted = ops;
        stop = true;
        await Task.WhenAll(workers);
        Console.WriteLine($"result {name} {counted} {seconds:F4} {(c1 - c0).TotalSeconds:F4}");
    }

    private static async Task PostgresAsync(Loop loop, Settings settings)
    {
        // Auto-prepare, as asyncpg prepares (and caches) every statement it runs.
        string connection = $"Host=127.0.0.1;Port={settings.Port};Username=postgres;Database=postgres;" +
                            $"Minimum Pool Size={settings.Concurrency};Maximum Pool Size={settings.Concurrency};Max Auto Prepare=8;Auto Prepare Min Usages=1";
        await using NpgsqlDataSource pg = NpgsqlDataSource.Create(connection);
        var random = new Random(1);
        await MeasureAsync(loop, "select", async () =>
        {
            int id = random.Next(1, settings.Rows + 1);
            await using NpgsqlCommand command = pg.CreateCommand("SELECT id, name, value FROM items WHERE id = $1");
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            if (!await reader.ReadAsync() || reader.GetInt32(0) != id || reader.GetString(1) != $"item {id}")
            {
                throw new InvalidOperationException($"wrong row for {id}");
            }

            return 1;
        }, settings);
    }

    private static async Task RedisAsync(Loop loop, Settings settings)
    {
        const int keys = 1000;
        ConfigurationOptions config = ConfigurationOptions.Parse($"127.0.0.1:{settings.Port}");
        if (settings.Tunnel)
        {
            config.Tunnel = new LoopTunnel(loop);
        }

        await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(config);
        IDatabase db = redis.GetDatabase();
        RedisKey[] names = Enumerable.Range(0, keys).Select(i => (RedisKey)$"bench:{i}").ToArray();
        RedisValue[] expected = Enumerable.Range(0, keys).Select(i => (RedisValue)$"value {i}").ToArray();
        await db.StringSetAsync(names.Zip(expected, (k, v) => new KeyValuePair<RedisKey, RedisValue>(k, v)).ToArray());
        var random = new Random(1);

        await MeasureAsync(loop, "get", async () =>
        {
            int i = random.Next(keys);
            RedisValue value = await db.StringGetAsync(names[i]);
            if (value != expected[i])
            {
                throw new InvalidOperationException($"GET bench:{i} returned {value}");
            }

            return 1;
        }, settings);
        await MeasureAsync(loop, "set", async () =>
        {
            int i = random.Next(keys);
            if (!await db.StringSetAsync(names[i], expected[i]))
            {
                throw new InvalidOperationException("SET failed");
            }

            return 1;
        }, settings);
        await MeasureAsync(loop, "get-pipelined", async () =>
        {
            int first = random.Next(keys);
            IBatch batch = db.CreateBatch();
            var gets = new Task<RedisValue>[settings.Batch];
            for (int k = 0; k < gets.Length; k++)
            {
                gets[k] = batch.StringGetAsync(names[(first + k) % keys]);
            }

            batch.Execute();
            RedisValue[] values = await Task.WhenAll(gets);
            for (int k = 0; k < values.Length; k++)
            {
                if (values[k] != expected[(first + k) % keys])
                {
                    throw new InvalidOperationException($"GET returned {values[k]}");
                }
            }

            return settings.Batch;
        }, settings);
        await MeasureAsync(loop, "set-pipelined", async () =>
        {
            int first = random.Next(keys);
            IBatch batch = db.CreateBatch();
            var sets = new Task<bool>[settings.Batch];
            for (int k = 0; k < sets.Length; k++)
            {
                sets[k] = batch.StringSetAsync(names[(first + k) % keys], expected[(first + k) % keys]);
            }

            batch.Execute();
            foreach (bool ok in await Task.WhenAll(sets))
            {
                if (!ok)
                {
                    throw new InvalidOperationException("SET failed");
                }
            }

            return settings.Batch;
        }, settings);
    }
}
