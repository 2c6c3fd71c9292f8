using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EventLoop.Samples.Db;

/// <summary>A database server this project needs but cannot find or start; the message says how to get it.</summary>
internal sealed class LocalServerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Starts real database servers for the demo, the tests and the benchmark (the one place that does): each in a
/// temporary directory of its own, on a free loopback port, stopped and deleted on <see cref="IDisposable.Dispose"/>.
/// No system service is touched (Debian's packages install one; it is neither started nor stopped here).
/// A directory left behind by a process that died without stopping its server is cleaned up by the next start:
/// each directory records its owner's process id, and a server whose owner is gone is stopped and removed.
/// Synchronous on purpose: call it before the loop runs (or from <see cref="Loop.RunInExecutor{T}(Func{T}, CancellationToken)"/>).
/// </summary>
internal static class LocalServers
{
    internal const string OwnerFile = "owner.pid";

    /// <summary>What to run a server's processes under: <c>taskset -c CORES</c> when pinned (the benchmark).</summary>
    internal static ProcessStartInfo Command(string? cores, string program, params string[] args)
    {
        var info = new ProcessStartInfo(cores is null ? program : "taskset")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (cores is not null)
        {
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(cores);
            info.ArgumentList.Add(program);
        }

        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }

    /// <summary>Runs a command to completion; its output is returned, and a failure throws with that output.</summary>
    internal static string Run(ProcessStartInfo info, TimeSpan timeout)
    {
        using Process process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {info.FileName}");
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{Describe(info)}' did not finish within {timeout.TotalSeconds:F0} s");
        }

        process.WaitForExit();
        string output = stdout.Result + stderr.Result;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{Describe(info)}' exited with {process.ExitCode}: {output.Trim()}");
        }

        return output;
    }

    internal static string Describe(ProcessStartInfo info) => info.FileName + " " + string.Join(' ', info.ArgumentList);

    /// <summary>A port that was free a moment ago on 127.0.0.1 (the kernel picks it; the server binds it next).</summary>
    internal static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>The first program of <paramref name="names"/> found in <c>PATH</c>, or null.</summary>
    internal static string? FindInPath(string name)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':'))
        {
            string candidate = Path.Combine(dir, name);
            if (dir.Length > 0 && File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>A new temporary directory for one server, with this process recorded as its owner.</summary>
    internal static string CreateDirectory(string prefix)
    {
        string dir = Directory.CreateTempSubdirectory(prefix).FullName;
        File.WriteAllText(Path.Combine(dir, OwnerFile), Environment.ProcessId.ToString());
        return dir;
    }

    /// <summary>
    /// The directories with <paramref name="prefix"/> whose owner process is gone (it died without stopping its
    /// server), for <paramref name="cleanUp"/> to stop and delete.
    /// </summary>
    internal static void CleanUpOrphans(string prefix, Action<string> cleanUp)
    {
        foreach (string dir in Directory.EnumerateDirectories(Path.GetTempPath(), prefix + "*"))
        {
            try
            {
                string ownerFile = Path.Combine(dir, OwnerFile);
                if (!File.Exists(ownerFile) || !int.TryParse(File.ReadAllText(ownerFile), out int owner) || IsAlive(owner))
                {
                    continue;
                }

                cleanUp(dir);
                Directory.Delete(dir, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or TimeoutException)
            {
                // Someone else's directory, or one being cleaned up at the same moment: leave it.
            }
        }
    }

    internal static bool IsAlive(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>Waits until a TCP connect to <paramref name="port"/> succeeds and the server answers <paramref name="probe"/>.</summary>
    internal static void WaitUntilAnswering(int port, byte[] probe, Func<string, bool> answered, TimeSpan timeout, Func<string> diagnostics)
    {
        var watch = Stopwatch.StartNew();
        Exception? last = null;
        while (watch.Elapsed < timeout)
        {
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Connect(new IPEndPoint(IPAddress.Loopback, port));
                socket.ReceiveTimeout = 2000;
                socket.Send(probe);
                var buffer = new byte[256];
                int n = socket.Receive(buffer);
                if (answered(Encoding.ASCII.GetString(buffer, 0, n)))
                {
                    return;
                }
            }
            catch (SocketException ex)
            {
                last = ex;
            }

            Thread.Sleep(20); // a child process starting up: nothing to await here (this runs before any loop)
        }

        throw new TimeoutException($"the server on port {port} did not answer within {timeout.TotalSeconds:F0} s ({last?.Message}): {diagnostics()}");
    }
}
