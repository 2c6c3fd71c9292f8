namespace EventLoop.Samples.Db;

/// <summary>
/// A PostgreSQL server of its own (Debian's <c>postgresql</c> package): <c>initdb</c> in a temporary directory,
/// <c>pg_ctl start</c> on a free port on 127.0.0.1 with its Unix socket in that directory, trust authentication
/// for the superuser <c>postgres</c>, durability off (<c>fsync=off</c>: a throwaway server). PostgreSQL refuses to
/// run as root, so when this process is root every server command runs as the <c>postgres</c> user the package
/// creates (<c>runuser -u postgres</c>), which owns the directory.
/// </summary>
internal sealed class LocalPostgres : IDisposable
{
    private const string Prefix = "eventloop-pg-";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    private readonly string _bin;
    private readonly string? _runAs;
    private readonly string? _cores;
    private int _disposed;

    private LocalPostgres(string bin, string? runAs, string directory, int port, string? cores)
    {
        _bin = bin;
        _runAs = runAs;
        Directory = directory;
        Port = port;
        _cores = cores;
    }

    /// <summary>The server's directory: <c>data/</c>, <c>server.log</c> and the Unix socket.</summary>
    public string Directory { get; }

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The directory of the Unix socket (<c>.s.PGSQL.{port}</c>), which Npgsql takes as a <c>Host</c>.</summary>
    public string SocketDirectory => Directory;

    /// <summary>An Npgsql connection string over TCP to database <c>postgres</c> as user <c>postgres</c>.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres";

    /// <summary>The same over the Unix socket.</summary>
    public string UnixSocketConnectionString => $"Host={SocketDirectory};Port={Port};Username=postgres;Database=postgres";

    /// <summary>The server's log so far (for failure messages).</summary>
    public string Log
    {
        get
        {
            try
            {
                return File.ReadAllText(Path.Combine(Directory, "server.log"));
            }
            catch (IOException)
            {
                return "";
            }
        }
    }

    /// <summary>
    /// Creates and starts a server. <paramref name="cores"/> pins it (<c>taskset -c</c>); throws
    /// <see cref="LocalServerUnavailableException"/> saying how to install PostgreSQL when it is missing.
    /// </summary>
    public static LocalPostgres Start(string? cores = null)
    {
        string bin = FindBinaries();
        string? runAs = Environment.IsPrivilegedProcess ? "postgres" : null;
        if (runAs is not null && LocalServers.FindInPath("runuser") is null)
        {
            throw new LocalServerUnavailableException("PostgreSQL cannot run as root and 'runuser' was not found to run it as the 'postgres' user.");
        }

        LocalServers.CleanUpOrphans(Prefix, dir => StopOrphan(bin, runAs, dir));
        string dir = LocalServers.CreateDirectory(Prefix);
        var server = new LocalPostgres(bin, runAs, dir, LocalServers.FreePort(), cores);
        try
        {
            if (runAs is not null)
            {
                LocalServers.Run(LocalServers.Command(null, "chown", "-R", $"{runAs}:", dir), CommandTimeout);
            }

            server.RunServerCommand("initdb", "-D", Path.Combine(dir, "data"), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions");
            server.StartServer();
            return server;
        }
        catch (Exception ex)
        {
            string log = server.Log;
            server.Dispose();
            if (ex is LocalServerUnavailableException)
            {
                throw;
            }

            throw new LocalServerUnavailableException($"PostgreSQL did not start: {ex.Message}{(log.Length > 0 ? Environment.NewLine + log : "")}", ex);
        }
    }

    /// <summary>
    /// Restarts the server. With <paramref name="immediate"/> its processes are killed at once, as a crash would
    /// (every client connection drops mid-query); otherwise it shuts down fast (sessions are told and closed).
    /// </summary>
    public void Restart(bool immediate = true)
    {
        RunServerCommand("pg_ctl", "-D", Path.Combine(Directory, "data"), "-m", immediate ? "immediate" : "fast", "-w", "stop");
        StartServer();
    }

    private void StartServer() =>
        RunServerCommand("pg_ctl", "-D", Path.Combine(Directory, "data"), "-l", Path.Combine(Directory, "server.log"),
            "-w", "-t", "60", "-o",
            $"-p {Port} -k {Directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " +
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB",
            "start");

    private string RunServerCommand(string program, params string[] args) => RunServerCommandAs(_bin, _runAs, _cores, program, args);

    private static string RunServerCommandAs(string bin, string? runAs, string? cores, string program, params string[] args)
    {
        string path = Path.Combine(bin, program);
        string[] all = runAs is null ? args : ["-u", runAs, "--", path, .. args];
        return LocalServers.Run(LocalServers.Command(cores, runAs is null ? path : "runuser", all), CommandTimeout);
    }

    private static void StopOrphan(string bin, string? runAs, string dir)
    {
        string data = Path.Combine(dir, "data");
        if (File.Exists(Path.Combine(data, "postmaster.pid")))
        {
            RunServerCommandAs(bin, runAs, null, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop");
        }
    }

    /// <summary>The newest <c>/usr/lib/postgresql/N/bin</c> (Debian), else the folder of <c>pg_ctl</c> in PATH.</summary>
    private static string FindBinaries()
    {
        const string debian = "/usr/lib/postgresql";
        if (System.IO.Directory.Exists(debian))
        {
            string? newest = System.IO.Directory.EnumerateDirectories(debian)
                .Where(d => File.Exists(Path.Combine(d, "bin", "pg_ctl")) && File.Exists(Path.Combine(d, "bin", "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out int v) ? v : 0)
                .FirstOrDefault();
            if (newest is not null)
            {
                return Path.Combine(newest, "bin");
            }
        }

        string? pgCtl = LocalServers.FindInPath("pg_ctl");
        if (pgCtl is not null && File.Exists(Path.Combine(Path.GetDirectoryName(pgCtl)!, "initdb")))
        {
            return Path.GetDirectoryName(pgCtl)!;
        }

        throw new LocalServerUnavailableException(
            "PostgreSQL server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH: install them with 'apt-get install postgresql' (.ci/run does).");
    }

    /// <summary>Stops the server (fast shutdown) and deletes its directory.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            StopOrphan(_bin, _runAs, Directory);
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
        {
            // Not running (start failed) or already stopped.
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
