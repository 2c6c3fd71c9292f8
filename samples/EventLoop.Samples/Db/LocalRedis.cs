using System.Diagnostics;
using System.Text;

namespace EventLoop.Samples.Db;

/// <summary>
/// A Redis server of its own (Debian's <c>redis-server</c>): a child process in a temporary directory, on a free
/// port on 127.0.0.1 (and a Unix socket in that directory), no persistence. Stopped (killed) and deleted on
/// <see cref="Dispose"/>.
/// </summary>
internal sealed class LocalRedis : IDisposable
{
    private const string Prefix = "eventloop-redis-";
    private const string PidFile = "redis.pid";

    private readonly Process _process;
    private int _disposed;

    private LocalRedis(Process process, string directory, int port)
    {
        _process = process;
        Directory = directory;
        Port = port;
    }

    /// <summary>The server's directory.</summary>
    public string Directory { get; }

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The server's Unix socket.</summary>
    public string SocketPath => Path.Combine(Directory, "redis.sock");

    /// <summary>A StackExchange.Redis configuration string for the server.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>The process id of the server.</summary>
    public int ProcessId => _process.Id;

    /// <summary>
    /// Starts a server. <paramref name="cores"/> pins it (<c>taskset -c</c>); throws
    /// <see cref="LocalServerUnavailableException"/> saying how to install Redis when it is missing.
    /// </summary>
    public static LocalRedis Start(string? cores = null)
    {
        string program = LocalServers.FindInPath("redis-server")
            ?? throw new LocalServerUnavailableException("redis-server not found in PATH: install it with 'apt-get install redis-server' (.ci/run does).");
        LocalServers.CleanUpOrphans(Prefix, KillOrphan);
        string dir = LocalServers.CreateDirectory(Prefix);
        int port = LocalServers.FreePort();
        ProcessStartInfo info = LocalServers.Command(cores, program,
            "--port", port.ToString(), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--protected-mode", "no", "--unixsocket", Path.Combine(dir, "redis.sock"),
            "--unixsocketperm", "700", "--logfile", Path.Combine(dir, "redis.log"));
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            System.IO.Directory.Delete(dir, recursive: true);
            throw new LocalServerUnavailableException($"redis-server did not start: {ex.Message}", ex);
        }

        process.StandardInput.Close();
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        File.WriteAllText(Path.Combine(dir, PidFile), process.Id.ToString());
        var server = new LocalRedis(process, dir, port);
        try
        {
            LocalServers.WaitUntilAnswering(port, "PING\r\n"u8.ToArray(), reply => reply.StartsWith("+PONG", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), () => process.HasExited ? $"exited with {process.ExitCode}: {server.Log}" : server.Log);
            return server;
        }
        catch (TimeoutException ex)
        {
            server.Dispose();
            throw new LocalServerUnavailableException($"redis-server did not start: {ex.Message}", ex);
        }
    }

    /// <summary>The server's log so far.</summary>
    public string Log
    {
        get
        {
            try
            {
                return File.ReadAllText(Path.Combine(Directory, "redis.log"), Encoding.UTF8);
            }
            catch (IOException)
            {
                return "";
            }
        }
    }

    private static void KillOrphan(string dir)
    {
        string pidFile = Path.Combine(dir, PidFile);
        if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile), out int pid) && LocalServers.IsAlive(pid))
        {
            using Process process = Process.GetProcessById(pid);
            if (process.ProcessName.StartsWith("redis", StringComparison.Ordinal))
            {
                process.Kill();
                process.WaitForExit(5000);
            }
        }
    }

    /// <summary>Stops the server and deletes its directory.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
