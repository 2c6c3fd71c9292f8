using EventLoop.Samples.Db;
using Npgsql;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace EventLoop.Tests.Db;

/// <summary>
/// Npgsql and StackExchange.Redis on the loop, against the real servers of <see cref="DbServersFixture"/>. Every
/// test watches the loop with <see cref="LoopWatch"/> (a 10 ms ticker and a record of where each continuation
/// ran) and runs with a blocking-wait limit of 250 ms, a quarter of the default: with the ticker's timer always
/// about to fall due, a synchronous wait inside a driver on the loop thread of that long would throw and fail the
/// test, so these tests also show that normal async use never trips the loop's deadlock check. The ticker's
/// largest gap is printed for each test; only <see cref="Awaiting_a_long_query_leaves_the_loop_free"/> asserts on
/// it, with a bound that a loop blocked for the query could not meet and a loaded machine does not break.
/// </summary>
public abstract class DbTests : LoopTestBase
{
    private static readonly TimeSpan BlockingLimit = TimeSpan.FromMilliseconds(250);

    private readonly DbServersFixture _servers;
    private readonly ITestOutputHelper _output;

    protected DbTests(DbServersFixture servers, ITestOutputHelper output)
    {
        _servers = servers;
        _output = output;
    }

    protected override LoopOptions CreateOptions()
    {
        LoopOptions options = base.CreateOptions();
        options.BlockingWaitLimit = BlockingLimit;
        return options;
    }

    private string Postgres(int poolSize = 10) =>
        new NpgsqlConnectionStringBuilder(_servers.Postgres.ConnectionString) { MaxPoolSize = poolSize }.ConnectionString;

    /// <summary>Runs <paramref name="test"/> on a loop under a <see cref="LoopWatch"/>, checks nothing ran off the loop, prints the gap.</summary>
    private void RunWatched(Func<Loop, LoopWatch, Task> test)
    {
        RunLoop(async loop =>
        {
            await using var watch = new LoopWatch(loop);
            using var timeout = new CancellationTokenSource(TestPipes.TestTimeout * 3);
            await test(loop, watch).WaitAsync(timeout.Token);
            watch.Check("end of test");
            _output.WriteLine($"{loop.PolicyName} loop: {watch.Checks} continuations checked, largest ticker gap {watch.LargestGap.TotalMilliseconds:F1} ms over {watch.Ticks} ticks");
            Assert.True(watch.OffLoop == 0, $"{watch.OffLoop} of {watch.Checks} continuations ran off the loop thread, first: {watch.FirstOffLoop}");
        });
    }

    [Fact]
    public void Concurrent_parameterised_queries_return_their_rows_on_the_loop()
    {
        RunWatched(async (loop, watch) =>
        {
            await using NpgsqlDataSource pg = NpgsqlDataSource.Create(Postgres(poolSize: 10));
            int[] values = await Task.WhenAll(Enumerable.Range(1, 200).Select(async i =>
            {
                int id = i * 37 % DbServersFixture.ItemCount + 1;
                await using NpgsqlCommand command = pg.CreateCommand("SELECT id, name, value FROM items WHERE id = $1");
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
                await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
                watch.Check("execute");
                Assert.True(await reader.ReadAsync(), $"no row {id}");
                watch.Check("read");
                Assert.Equal(id, reader.GetInt32(0));
                Assert.Equal($"item {id}", reader.GetString(1));
                int value = reader.GetInt32(2);
                Assert.False(await reader.ReadAsync());
                return value == id * 10 || (id == 1 && value == 11) ? 1 : 0;
            }));
            Assert.Equal(200, values.Sum());

            // A transaction rolled back leaves the table as it was; the same one committed changes it.
            await using NpgsqlConnection connection = await pg.OpenConnectionAsync();
            foreach (bool commit in new[] { false, true })
            {
                await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync();
                await using var update = new NpgsqlCommand("UPDATE items SET value = value + 1 WHERE id = 1", connection, transaction);
                Assert.Equal(1, await update.ExecuteNonQueryAsync());
                watch.Check("update");
                if (commit)
                {
                    await transaction.CommitAsync();
                }
                else
                {
                    await transaction.RollbackAsync();
                }

                watch.Check("end of transaction");
            }

            await using var check = new NpgsqlCommand("SELECT value FROM items WHERE id = 1", connection);
            Assert.Equal(11, (int)(await check.ExecuteScalarAsync())!);
            await using var restore = new NpgsqlCommand("UPDATE items SET value = 10 WHERE id = 1", connection);
            await restore.ExecuteNonQueryAsync();
        });
    }

    [Fact]
    public void A_failing_query_surfaces_as_a_PostgresException_on_the_loop()
    {
        RunWatched(async (loop, watch) =>
        {
            await using NpgsqlDataSource pg = NpgsqlDataSource.Create(Postgres());
            await using NpgsqlCommand command = pg.CreateCommand("SELECT value FROM no_such_table");
            PostgresException error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteScalarAsync());
            watch.Check("catch");
            Assert.Equal(PostgresErrorCodes.UndefinedTable, error.SqlState);

            await using NpgsqlCommand divide = pg.CreateCommand("SELECT 1 / (id - id) FROM items WHERE id = 1");
            error = await Assert.ThrowsAsync<PostgresException>(() => divide.ExecuteScalarAsync());
            watch.Check("catch");
            Assert.Equal(PostgresErrorCodes.DivisionByZero, error.SqlState);

            // The connection that carried the errors goes back to the pool and works.
            await using NpgsqlCommand ok = pg.CreateCommand("SELECT count(*) FROM items");
            Assert.Equal((long)DbServersFixture.ItemCount, (long)(await ok.ExecuteScalarAsync())!);
        });
    }

    [Fact]
    public void A_long_query_is_cancelled_by_its_token()
    {
        RunWatched(async (loop, watch) =>
        {
            await using NpgsqlDataSource pg = NpgsqlDataSource.Create(Postgres(poolSize: 1));
            await using NpgsqlConnection connection = await pg.OpenConnectionAsync();
            await using var sleep = new NpgsqlCommand("SELECT pg_sleep(60)", connection);
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200), loop.TimeProvider);
            TimeSpan start = loop.Time;
            var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sleep.ExecuteNonQueryAsync(cancel.Token));
            watch.Check("cancelled");
            Assert.True(loop.Time - start < TimeSpan.FromSeconds(30), "the query ran to its end instead of being cancelled");
            // Npgsql asks the server to cancel: the server's error (57014 query_canceled) is the inner exception.
            Assert.Equal(PostgresErrorCodes.QueryCanceled, Assert.IsType<PostgresException>(error.InnerException).SqlState);

            // The server cancelled the query, not the connection: it serves the next query.
            await using var next = new NpgsqlCommand("SELECT 42", connection);
            Assert.Equal(42, (int)(await next.ExecuteScalarAsync())!);
        });
    }

    [Fact]
    public void A_connection_dropped_mid_query_fails_the_query_on_the_loop_and_the_pool_recovers()
    {
        const int inFlight = 4;
        RunWatched(async (loop, watch) =>
        {
            await using NpgsqlDataSource pg = NpgsqlDataSource.Create(Postgres(poolSize: inFlight));
            Task[] sleeps = Enumerable.Range(0, inFlight).Select(async _ =>
            {
                await using NpgsqlCommand command = pg.CreateCommand("SELECT pg_sleep(60)");
                await command.ExecuteNonQueryAsync();
            }).ToArray();

            // Wait until the server runs all of them, then kill it (as a crash would) and start it again.
            await using (var observer = new NpgsqlConnection(_servers.Postgres.ConnectionString + ";Pooling=false"))
            {
                await observer.OpenAsync();
                await using var running = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'", observer);
                while ((long)(await running.ExecuteScalarAsync())! < inFlight)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(20));
                }
            }

            await loop.RunInExecutor(() => _servers.Postgres.Restart(immediate: true));
            watch.Check("restarted");
            foreach (Task sleep in sleeps)
            {
                await Assert.ThrowsAnyAsync<NpgsqlException>(() => sleep);
                watch.Check("query failed");
            }

            // The broken connections left the pool: the same data source serves new queries at once.
            long[] counts = await Task.WhenAll(Enumerable.Range(0, inFlight * 2).Select(async _ =>
            {
                await using NpgsqlCommand command = pg.CreateCommand("SELECT count(*) FROM items");
                long count = (long)(await command.ExecuteScalarAsync())!;
                watch.Check("after restart");
                return count;
            }));
            Assert.All(counts, count => Assert.Equal(DbServersFixture.ItemCount, count));
        });
    }

    [Fact]
    public void Awaiting_a_long_query_leaves_the_loop_free()
    {
        RunWatched(async (loop, watch) =>
        {
            await using NpgsqlDataSource pg = NpgsqlDataSource.Create(Postgres());
            await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(_servers.Redis.ConnectionString);
            await using (NpgsqlCommand warm = pg.CreateCommand("SELECT pg_sleep(0.01)"))
            {
                await warm.ExecuteNonQueryAsync(); // open the connection and compile the path first
            }

            watch.ResetGap();
            long ticksBefore = watch.Ticks;
            await using NpgsqlCommand sleep = pg.CreateCommand("SELECT pg_sleep(1.5)");
            Task query = sleep.ExecuteNonQueryAsync();
            // A blocking Redis command on a connection of its own meanwhile (BLPOP waits 1 s for a list that stays empty).
            RedisResult popped = await redis.GetDatabase().ExecuteAsync("BLPOP", "eventloop:test:empty", "1");
            watch.Check("blpop");
            Assert.True(popped.IsNull);
            await query;
            watch.Check("query");

            // A loop blocked for the 1.5 s query (a synchronous driver path) would show a gap of about that long, and
            // about 150 fewer ticks. The bound leaves room for a loaded 2-core machine; the real gap is printed.
            _output.WriteLine($"largest ticker gap while the 1.5 s query ran: {watch.LargestGap.TotalMilliseconds:F1} ms, {watch.Ticks - ticksBefore} ticks");
            Assert.True(watch.LargestGap < TimeSpan.FromMilliseconds(750), $"the loop stalled for {watch.LargestGap.TotalMilliseconds:F0} ms while a query was awaited");
            Assert.True(watch.Ticks - ticksBefore >= 10, $"only {watch.Ticks - ticksBefore} ticks of 10 ms in 1.5 s");
        });
    }

    [Fact]
    public void A_thousand_concurrent_redis_commands_each_get_their_own_reply_on_the_loop()
    {
        const int count = 1_000;
        RunWatched(async (loop, watch) =>
        {
            await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(_servers.Redis.ConnectionString);
            IDatabase db = redis.GetDatabase();
            string prefix = $"eventloop:test:{loop.PolicyName}:{Guid.NewGuid():N}:";
            await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
            {
                Assert.True(await db.StringSetAsync(prefix + i, $"value {i}"));
                watch.Check("set");
                RedisValue value = await db.StringGetAsync(prefix + i);
                watch.Check("get");
                Assert.Equal($"value {i}", (string?)value);
            }));

            // INCR from a thousand tasks at once: every reply is a different count, 1..1000.
            long[] counts = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
            {
                long n = await db.StringIncrementAsync(prefix + "counter");
                watch.Check("incr");
                return n;
            }));
            Assert.Equal(Enumerable.Range(1, count).Select(n => (long)n), counts.Order());

            // Pipelined: one batch, written together.
            IBatch batch = db.CreateBatch();
            Task<RedisValue>[] gets = Enumerable.Range(0, count).Select(i => batch.StringGetAsync(prefix + i)).ToArray();
            batch.Execute();
            RedisValue[] values = await Task.WhenAll(gets);
            watch.Check("batch");
            Assert.Equal(Enumerable.Range(0, count).Select(i => $"value {i}"), values.Select(v => (string?)v));
            await db.KeyDeleteAsync(Enumerable.Range(0, count).Select(i => (RedisKey)(prefix + i)).Append(prefix + "counter").ToArray());
        });
    }

    [Fact]
    public void Pub_sub_messages_arrive_on_the_loop_thread()
    {
        const int count = 200;
        RunWatched(async (loop, watch) =>
        {
            await using ConnectionMultiplexer redis = await ConnectionMultiplexer.ConnectAsync(_servers.Redis.ConnectionString);
            ISubscriber subscriber = redis.GetSubscriber();
            RedisChannel channel = RedisChannel.Literal($"eventloop:test:{Guid.NewGuid():N}");

            // The queue form: awaited from the loop, so each message is read on the loop thread, in order.
            ChannelMessageQueue queue = await subscriber.SubscribeAsync(channel);
            // The callback form: the driver calls it on a thread of its own; a hop puts the message on the loop.
            var hopped = new AsyncQueue<(string Message, bool OnLoop)>();
            int callbacksOnLoop = 0;
            await subscriber.SubscribeAsync(channel, (_, message) =>
            {
                if (loop.IsOnLoopThread)
                {
                    Interlocked.Increment(ref callbacksOnLoop);
                }

                loop.CallSoonThreadSafe(() => hopped.TryPut(((string)message!, loop.IsOnLoopThread)));
            });
            watch.Check("subscribed");

            Task<long>[] published = Enumerable.Range(0, count).Select(i => subscriber.PublishAsync(channel, $"message {i}")).ToArray();
            for (int i = 0; i < count; i++)
            {
                ChannelMessage message = await queue.ReadAsync();
                watch.Check("queue message");
                Assert.Equal($"message {i}", (string?)message.Message);
            }

            var seen = new HashSet<string>();
            for (int i = 0; i < count; i++)
            {
                (string message, bool onLoop) = await hopped.GetAsync();
                watch.Check("hopped message");
                Assert.True(onLoop);
                Assert.True(seen.Add(message), $"{message} twice");
            }

            Assert.Equal(count, seen.Count);
            Assert.All(await Task.WhenAll(published), receivers => Assert.Equal(1, receivers)); // one connection subscribed
            Assert.Equal(0, callbacksOnLoop); // documented in the README: the callback form runs off the loop
            await subscriber.UnsubscribeAllAsync();
        });
    }

    [Fact]
    public void The_db_demo_runs_every_step_on_the_loop()
    {
        var text = new StringWriter();
        Spectre.Console.IAnsiConsole console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.No,
            Out = new Spectre.Console.AnsiConsoleOutput(text),
        });
        var options = new EventLoop.Samples.Demos.DbOptions(_servers.Postgres.ConnectionString, _servers.Redis.ConnectionString, Queries: 100, PoolSize: 10);
        var result = RunLoop(loop => EventLoop.Samples.Demos.DbDemo.RunAsync(loop, console, options));
        _output.WriteLine(text.ToString());
        Assert.True(result.OffLoop == 0, $"off the loop: {result.FirstOffLoop}");
        Assert.True(result.Checks > 1000, $"only {result.Checks} continuations checked");
        Assert.Equal(100, result.Rows);
        Assert.Equal(100, result.Messages);
        Assert.Equal(200 * 2 + 10_000 * 2, result.RedisReplies);
        Assert.Contains("PostgresException 42P01", text.ToString());
    }

    [Fact]
    public void A_synchronous_open_on_an_exhausted_pool_throws_instead_of_deadlocking_the_loop()
    {
        RunWatched(async (loop, watch) =>
        {
            await using NpgsqlDataSource pg = NpgsqlDataSource.Create(Postgres(poolSize: 1));
            NpgsqlConnection held = await pg.OpenConnectionAsync();
            // The only connection goes back to the pool from a loop callback, 50 ms from now...
            LoopHandle release = loop.CallLater(TimeSpan.FromMilliseconds(50), () => held.Dispose());
            // Should the check not fire, a release from another thread ends the deadlock after a while, so the test
            // fails (nothing thrown) instead of hanging.
            using var valve = new CancellationTokenSource();
            Task safetyValve = Task.Delay(TimeSpan.FromSeconds(10), valve.Token).ContinueWith(
                t => { if (!t.IsCanceled) held.Close(); }, TaskScheduler.Default);

            // ...which a synchronous Open on the loop thread would wait for for ever: Npgsql's sync path blocks on an
            // event until the pool hands it a connection, and only this (blocked) thread can return one. The loop's
            // check turns the deadlock into an exception once the wait passes the limit with loop work due.
            var error = Assert.Throws<InvalidOperationException>(() => pg.OpenConnection());
            watch.Check("thrown");
            Assert.Contains("loop thread has been blocked", error.Message);
            while (release.IsPending)
            {
                await loop.DelayAsync(TimeSpan.FromMilliseconds(10)); // the release runs now that the loop is free
            }

            Assert.Equal(System.Data.ConnectionState.Closed, held.State);
            valve.Cancel();
            await safetyValve;
        });
    }
}

[Collection(DbServersCollection.Name)]
public sealed class ManagedDbTests(DbServersFixture servers, ITestOutputHelper output) : DbTests(servers, output)
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

[Collection(DbServersCollection.Name)]
public sealed class LibuvDbTests(DbServersFixture servers, ITestOutputHelper output) : DbTests(servers, output)
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
