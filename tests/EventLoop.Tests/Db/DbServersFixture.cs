using EventLoop.Samples.Db;
using Npgsql;

namespace EventLoop.Tests.Db;

/// <summary>
/// Real PostgreSQL and Redis servers for the database tests, started once for the collection (the same
/// <see cref="LocalPostgres"/> and <see cref="LocalRedis"/> the db demo and the benchmark use) and stopped at the end.
/// The servers are required, not optional: when they are missing the fixture fails every test of the collection
/// with a message saying how to install them (<c>.ci/run</c> does), rather than skipping.
/// </summary>
public sealed class DbServersFixture : IDisposable
{
    /// <summary>Rows of the table <c>items</c> the fixture creates: id 1..N, name 'item N', value N * 10.</summary>
    public const int ItemCount = 1_000;

    private readonly LocalPostgres _postgres;
    private readonly LocalRedis _redis;

    public DbServersFixture()
    {
        _postgres = LocalPostgres.Start();
        try
        {
            _redis = LocalRedis.Start();
        }
        catch
        {
            _postgres.Dispose();
            throw;
        }

        // Seeded synchronously: the fixture runs on a test thread, not on a loop.
        using var connection = new NpgsqlConnection(_postgres.ConnectionString);
        connection.Open();
        using var seed = new NpgsqlCommand(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, value int NOT NULL); " +
            $"INSERT INTO items SELECT i, 'item ' || i, i * 10 FROM generate_series(1, {ItemCount}) AS i", connection);
        seed.ExecuteNonQuery();
    }

    internal LocalPostgres Postgres => _postgres;

    internal LocalRedis Redis => _redis;

    public void Dispose()
    {
        _redis.Dispose();
        _postgres.Dispose();
    }
}

/// <summary>The database tests share one pair of servers, and run one class at a time (one restarts the server).</summary>
[CollectionDefinition(Name)]
public sealed class DbServersCollection : ICollectionFixture<DbServersFixture>
{
    public const string Name = "db servers";
}
