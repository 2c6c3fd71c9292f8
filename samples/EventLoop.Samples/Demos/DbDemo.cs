using System.Diagnostics;
using EventLoop.Samples.Db;
using Npgsql;
using NpgsqlTypes;
using Spectre.Console;
using StackExchange.Redis;

namespace EventLoop.Samples.Demos;

/// <summary>Where the demo's servers are: connection strings, as given by --pg and --redis or of servers it started.</summary>
/// <param name="Postgres">An Npgsql connection string.</param>
/// <param name="Redis">A StackExchange.Redis configuration string (host:port).</param>
/// <param name="Queries">How many queries run at once (asyncpg's demo: 100).</param>
/// <param name="PoolSize">The Npgsql pool's maximum size.</param>
internal sealed record DbOptions(string Postgres, string Redis, int Queries = 100, int PoolSize = 10);

/// <summary>
/// asyncpg's "100 queries at once", with Npgsql and StackExchange.Redis on the chosen loop, against real servers:
/// a pool of connections, many parameterised <c>SELECT</c>s at once, a transaction, a bulk insert by <c>COPY</c>,
/// a failing query, Redis <c>SET</c>/<c>GET</c> one by one and pipelined, and pub/sub. Every continuation of this
/// code is checked to run on the loop thread, and a 10 ms ticker on the loop's timers measures the longest the
/// loop was kept from them while the drivers ran.
/// </summary>
internal static class DbDemo
{
    private const string Table = "eventloop_demo_items";

    /// <summary>What the demo measured.</summary>
    /// <param name="Checks">Continuations checked.</param>
    /// <param name="OffLoop">Checks that found themselves off the loop thread (0 when all is well).</param>
    /// <param name="FirstOffLoop">Where the first of those was.</param>
    /// <param name="LargestGap">The ticker's largest delay beyond its period while the queries and commands ran.</param>
    /// <param name="Rows">Rows the concurrent queries read (each checked).</param>
    /// <param name="RedisReplies">Redis replies checked.</param>
    /// <param name="Messages">Pub/sub messages received (each checked).</param>
    public sealed record Result(long Checks, long OffLoop, string? FirstOffLoop, TimeSpan LargestGap, int Rows, int RedisReplies, int Messages);

    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, DbOptions options)
    {
        await using var watch = new LoopWatch(loop);
        var builder = new NpgsqlConnectionStringBuilder(options.Postgres) { MaxPoolSize = options.PoolSize };
        await using NpgsqlDataSource pg = NpgsqlDataSource.Create(builder.ConnectionString);
        await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(options.Redis);
        watch.Check("after connecting");

        string version;
        await using (NpgsqlCommand command = pg.CreateCommand("SHOW server_version"))
        {
            version = (string)(await command.ExecuteScalarAsync())!;
        }

        var redisVersion = redis.GetServer(redis.GetEndPoints()[0]).Version;
        console.MarkupLine($"[bold yellow]Databases[/] on the {loop.PolicyName} loop: PostgreSQL {Markup.Escape(version)} " +
                           $"({Markup.Escape(builder.Host ?? "")}:{builder.Port}), Redis {redisVersion} ({Markup.Escape(options.Redis)})");

        int rows = await BulkInsertAsync(pg, console, watch);

        // Two rounds of the same queries and commands: the first runs each driver path for the first time, so the
        // loop thread also JIT-compiles the drivers' code as it goes (a one-off stall the ticker sees); the second
        // shows the steady state. Connecting and the COPY are not measured (ResetGap).
        var gaps = new TimeSpan[2];
        int read = 0, replies = 0, messages = 0;
        for (int round = 0; round < gaps.Length; round++)
        {
            IAnsiConsole? say = round == 0 ? console : null;
            watch.ResetGap();
            read = await ConcurrentQueriesAsync(pg, say, watch, options);
            await TransactionAsync(pg, say, watch, rows, round);
            await FailingQueryAsync(pg, say, watch);
            replies = await RedisCommandsAsync(redis, say, watch);
            messages = await PubSubAsync(redis, say, watch);
            gaps[round] = watch.LargestGap;
        }

        TimeSpan gap = gaps[^1];

        await using (NpgsqlCommand drop = pg.CreateCommand($"DROP TABLE IF EXISTS {Table}"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        watch.Check("at the end");
        string where = watch.OffLoop == 0 ? "all on the loop thread" : $"{watch.OffLoop} OFF the loop thread, first {watch.FirstOffLoop}";
        console.MarkupLine($"db: {watch.Checks} continuations checked, {Markup.Escape(where)}; " +
                           $"largest 10 ms ticker gap while the queries ran {gaps[0].TotalMilliseconds:F1} ms on the first round (the drivers' code compiled as it first runs), {gap.TotalMilliseconds:F1} ms on the second");
        return new Result(watch.Checks, watch.OffLoop, watch.FirstOffLoop, gap, read, replies, messages);
    }

    private static string GapNote(LoopWatch watch) => $" [grey](ticker gap {watch.TakePhaseGap().TotalMilliseconds:F1} ms)[/]";

    /// <summary>A fresh table, filled by a binary <c>COPY</c>; returns the row count.</summary>
    private static async Task<int> BulkInsertAsync(NpgsqlDataSource pg, IAnsiConsole console, LoopWatch watch)
    {
        const int count = 10_000;
        var time = Stopwatch.StartNew();
        await using NpgsqlConnection connection = await pg.OpenConnectionAsync();
        watch.Check("open");
        await using (var create = new NpgsqlCommand(
            $"DROP TABLE IF EXISTS {Table}; CREATE TABLE {Table} (id int PRIMARY KEY, name text NOT NULL, balance int NOT NULL)", connection))
        {
            await create.ExecuteNonQueryAsync();
            watch.Check("create table");
        }

        await using (NpgsqlBinaryImporter copy = await connection.BeginBinaryImportAsync($"COPY {Table} (id, name, balance) FROM STDIN (FORMAT BINARY)"))
        {
            for (int id = 1; id <= count; id++)
            {
                await copy.StartRowAsync();
                await copy.WriteAsync(id, NpgsqlDbType.Integer);
                await copy.WriteAsync($"item {id}", NpgsqlDbType.Text);
                await copy.WriteAsync(100, NpgsqlDbType.Integer);
            }

            ulong written = await copy.CompleteAsync();
            watch.Check("copy");
            if (written != count)
            {
                throw new InvalidOperationException($"COPY wrote {written} rows, not {count}");
            }
        }

        console.MarkupLine($"  COPY: {count:N0} rows bulk-inserted in {time.Elapsed.TotalMilliseconds:F0} ms");
        return count;
    }

    /// <summary>asyncpg's "100 queries at once": parameterised SELECTs sharing the pool, each row checked.</summary>
    private static async Task<int> ConcurrentQueriesAsync(NpgsqlDataSource pg, IAnsiConsole? console, LoopWatch watch, DbOptions options)
    {
        var time = Stopwatch.StartNew();
        int[] found = await Task.WhenAll(Enumerable.Range(1, options.Queries).Select(async i =>
        {
            int id = i * 7 % 10_000 + 1;
            await using NpgsqlCommand command = pg.CreateCommand($"SELECT id, name, balance FROM {Table} WHERE id = $1");
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            watch.Check("select");
            if (!await reader.ReadAsync() || reader.GetInt32(0) != id || reader.GetString(1) != $"item {id}")
            {
                throw new InvalidOperationException($"query {i}: row {id} missing or wrong");
            }

            watch.Check("read");
            return 1;
        }));
        console?.MarkupLine($"  {options.Queries} parameterised SELECTs at once over a pool of {options.PoolSize}: " +
                           $"{time.Elapsed.TotalMilliseconds:F0} ms, every row checked{GapNote(watch)}");
        return found.Sum();
    }

    /// <summary>Moves a balance between two rows in a transaction; the total stays the same.</summary>
    private static async Task TransactionAsync(NpgsqlDataSource pg, IAnsiConsole? console, LoopWatch watch, int rows, int round)
    {
        await using NpgsqlConnection connection = await pg.OpenConnectionAsync();
        await using (NpgsqlTransaction transaction = await connection.BeginTransactionAsync())
        {
            foreach ((int id, int delta) in new[] { (1, -25), (2, 25) })
            {
                await using var move = new NpgsqlCommand($"UPDATE {Table} SET balance = balance + $2 WHERE id = $1", connection, transaction);
                move.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
                move.Parameters.Add(new NpgsqlParameter<int> { TypedValue = delta });
                await move.ExecuteNonQueryAsync();
                watch.Check("update");
            }

            await transaction.CommitAsync();
            watch.Check("commit");
        }

        await using var check = new NpgsqlCommand($"SELECT sum(balance), min(balance), max(balance) FROM {Table}", connection);
        await using NpgsqlDataReader reader = await check.ExecuteReaderAsync();
        await reader.ReadAsync();
        watch.Check("sum");
        long total = reader.GetInt64(0);
        if (total != rows * 100L || reader.GetInt32(1) != 100 - 25 * (round + 1) || reader.GetInt32(2) != 100 + 25 * (round + 1))
        {
            throw new InvalidOperationException($"after the transaction the total is {total}, not {rows * 100L}");
        }

        console?.MarkupLine($"  transaction: 25 moved from row 1 to row 2 and committed; total still {total:N0}{GapNote(watch)}");
    }

    /// <summary>A query that fails: the server's error surfaces as a <see cref="PostgresException"/>, on the loop.</summary>
    private static async Task FailingQueryAsync(NpgsqlDataSource pg, IAnsiConsole? console, LoopWatch watch)
    {
        try
        {
            await using NpgsqlCommand command = pg.CreateCommand("SELECT * FROM no_such_table");
            await command.ExecuteNonQueryAsync();
            throw new InvalidOperationException("a query on a missing table succeeded");
        }
        catch (PostgresException ex)
        {
            watch.Check("catch");
            console?.MarkupLine($"  failing query: PostgresException {ex.SqlState} ({Markup.Escape(ex.MessageText)}), caught on the loop{GapNote(watch)}");
        }
    }

    /// <summary>SET and GET one by one, then pipelined (many commands in flight, one flush); every reply checked.</summary>
    private static async Task<int> RedisCommandsAsync(ConnectionMultiplexer redis, IAnsiConsole? console, LoopWatch watch)
    {
        IDatabase db = redis.GetDatabase();
        const int oneByOne = 200, pipelined = 10_000;
        var time = Stopwatch.StartNew();
        for (int i = 0; i < oneByOne; i++)
        {
            await db.StringSetAsync($"demo:{i}", i);
            RedisValue value = await db.StringGetAsync($"demo:{i}");
            watch.Check("redis get");
            if ((int)value != i)
            {
                throw new InvalidOperationException($"GET demo:{i} returned {value}");
            }
        }

        double oneByOneMs = time.Elapsed.TotalMilliseconds;
        time.Restart();
        // Pipelined: a batch of commands written together and awaited together. In chunks, so the loop thread,
        // which builds and queues each command itself, goes back to its other work between chunks.
        const int chunk = 1_000;
        for (int start = 0; start < pipelined; start += chunk)
        {
            IBatch batch = db.CreateBatch();
            var sets = new Task<bool>[chunk];
            var gets = new Task<RedisValue>[chunk];
            for (int i = 0; i < chunk; i++)
            {
                sets[i] = batch.StringSetAsync($"demo:p:{start + i}", start + i);
                gets[i] = batch.StringGetAsync($"demo:p:{start + i}");
            }

            batch.Execute();
            bool[] set = await Task.WhenAll(sets);
            RedisValue[] values = await Task.WhenAll(gets);
            watch.Check("redis pipeline");
            for (int i = 0; i < chunk; i++)
            {
                if (!set[i] || (int)values[i] != start + i)
                {
                    throw new InvalidOperationException($"pipelined GET demo:p:{start + i} returned {values[i]}");
                }
            }
        }

        console?.MarkupLine($"  Redis: {oneByOne} SET+GET pairs one by one in {oneByOneMs:F0} ms; " +
                           $"{pipelined:N0} SET+GET pairs pipelined ({chunk:N0} a batch) in {time.Elapsed.TotalMilliseconds:F0} ms; every reply checked{GapNote(watch)}");
        return oneByOne * 2 + pipelined * 2;
    }

    /// <summary>Pub/sub: messages published, each read back in order on the loop thread.</summary>
    private static async Task<int> PubSubAsync(ConnectionMultiplexer redis, IAnsiConsole? console, LoopWatch watch)
    {
        const int count = 100;
        ISubscriber subscriber = redis.GetSubscriber();
        RedisChannel channel = RedisChannel.Literal("eventloop-demo");
        ChannelMessageQueue queue = await subscriber.SubscribeAsync(channel);
        watch.Check("subscribe");
        var time = Stopwatch.StartNew();
        Task<long>[] publishes = Enumerable.Range(0, count).Select(i => subscriber.PublishAsync(channel, $"message {i}")).ToArray();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        for (int i = 0; i < count; i++)
        {
            ChannelMessage message = await queue.ReadAsync(timeout.Token);
            watch.Check("message");
            if (message.Message != $"message {i}")
            {
                throw new InvalidOperationException($"pub/sub message {i} was '{message.Message}'");
            }
        }

        await Task.WhenAll(publishes);
        await queue.UnsubscribeAsync();
        console?.MarkupLine($"  pub/sub: {count} messages published and received in order in {time.Elapsed.TotalMilliseconds:F0} ms, each on the loop thread{GapNote(watch)}");
        return count;
    }
}
