using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EventLoop.Benchmarking;

/// <summary>
/// What the macro benchmark harnesses (echo, scraper) share: starting pinned child processes and stopping
/// them, waiting for a server's port, finding tools and the repository, describing the machine.
/// Compiled into each harness (linked source), so they stay single-project console apps.
/// </summary>
internal static class BenchProcess
{
    /// <summary>Starts <paramref name="file"/>, pinned to <paramref name="core"/> with taskset when given, output redirected.</summary>
    public static Process Start(string file, IEnumerable<string> args, string? core, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo
        {
            FileName = core is null ? file : "/usr/bin/taskset",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (core is not null)
        {
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(core);
            info.ArgumentList.Add(file);
        }

        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_TieredPGO"] = "1";
        info.Environment["PYTHONUNBUFFERED"] = "1";
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}.");
    }

    /// <summary>Stops a process this harness started (and its children).</summary>
    public static void StopProcess(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Waits up to 5 s for something to accept connections on the loopback <paramref name="port"/>.</summary>
    public static async Task<bool> CanConnectAsync(int port)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                return true;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        return false;
    }

    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>The dotnet host running this harness, to start .NET children with the same runtime.</summary>
    public static string DotnetHost()
    {
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

    /// <summary>A python3 (PATH first, then the system's) that can run <paramref name="imports"/>, or null.</summary>
    public static string? FindPythonWith(string imports)
    {
        foreach (string? candidate in new[] { FindOnPath("python3"), "/usr/bin/python3" })
        {
            if (candidate is not null && File.Exists(candidate) && Capture(candidate, "-c", $"{imports}; print('ok')") == "ok")
            {
                return candidate;
            }
        }

        return null;
    }

    public static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    /// <summary>Runs a short command and returns its trimmed output ("" if it cannot start).</summary>
    public static string Capture(string file, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string arg in args)
            {
                info.ArgumentList.Add(arg);
            }

            using Process process = Process.Start(info)!;
            string output = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit(10_000);
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "";
        }
    }

    public static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }

    /// <summary>The 1, 5 and 15 minute load averages (/proc/loadavg), to show how busy the machine was.</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    public static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);

    public static string FindRepositoryRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "EventLoop.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException("Run the benchmark from inside the EventLoop repository (EventLoop.sln not found above here).");
    }

    /// <summary>The results folder (default <c>benchmarks/results</c> under the repository), created if missing.</summary>
    public static string PrepareOutputDirectory(string repo, string? outDir)
    {
        string path = Path.GetFullPath(outDir ?? Path.Combine(repo, "benchmarks", "results"));
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Whether to pin to cores: asked for, and taskset is installed.</summary>
    public static bool CanPin(bool requested) => requested && File.Exists("/usr/bin/taskset");

    /// <summary>Appends a report section: a title line and one bullet per item (nothing when there are none).</summary>
    public static void AppendBullets(StringBuilder md, string title, IEnumerable<string> items)
    {
        string[] list = items.ToArray();
        if (list.Length == 0)
        {
            return;
        }

        md.AppendLine();
        md.AppendLine(title);
        md.AppendLine();
        foreach (string item in list)
        {
            md.Append("- ").AppendLine(item);
        }
    }
}
