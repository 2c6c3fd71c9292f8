using System.Diagnostics;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.EchoBenchmark;

/// <summary>The load generator to use: a command line to start it, and what the report says about it.</summary>
/// <param name="Name"><c>c</c> or <c>dotnet</c>.</param>
/// <param name="File">The program to start.</param>
/// <param name="Prefix">Arguments before the client's own options.</param>
/// <param name="Description">One line for the report.</param>
internal sealed record ClientSpec(string Name, string File, string[] Prefix, string Description);

/// <summary>
/// Builds the C load generator (benchmarks/echo/echo_client.c) with the machine's C compiler into the
/// harness's obj folder, when the binary is missing or older than its source.
/// </summary>
internal static class NativeClient
{
    /// <summary>The compiler flags, also quoted in the report.</summary>
    public const string Flags = "-O2 -std=c11 -Wall -Wextra";

    /// <summary>The C client, built if needed; or null with the reason it could not be had.</summary>
    public static (ClientSpec? Client, string? Problem) Build(string repo)
    {
        string source = Path.Combine(repo, "benchmarks", "echo", "echo_client.c");
        if (!File.Exists(source))
        {
            return (null, $"the C client's source {source} is missing");
        }

        string? cc = Environment.GetEnvironmentVariable("CC") is { Length: > 0 } fromEnv ? FindOnPath(fromEnv) ?? (File.Exists(fromEnv) ? fromEnv : null) : null;
        string? compiler = cc ?? FindOnPath("gcc") ?? FindOnPath("cc") ?? FindOnPath("clang");
        if (compiler is null)
        {
            return (null, "no C compiler found (gcc, cc or clang on PATH, or $CC): install one with `apt-get install -y gcc`");
        }

        string directory = Path.Combine(repo, "benchmarks", "EventLoop.EchoBenchmark", "obj", "native");
        string binary = Path.Combine(directory, "echo_client");
        string version = Capture(compiler, "--version").Split('\n')[0].Trim();
        string description = $"C epoll client `benchmarks/echo/echo_client.c` (one thread, non-blocking sockets, every reply byte checked), built with {version} `{Flags}`";
        if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) >= File.GetLastWriteTimeUtc(source))
        {
            return (new ClientSpec("c", binary, [], description), null);
        }

        Directory.CreateDirectory(directory);
        string temporary = $"{binary}.{Environment.ProcessId}.tmp"; // then renamed: a half-written binary is never run
        var info = new ProcessStartInfo(compiler) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in Flags.Split(' ').Concat(["-o", temporary, source]))
        {
            info.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {compiler}.");
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        process.WaitForExit();
        string errors = stderr.GetAwaiter().GetResult().Trim();
        if (process.ExitCode != 0 || !File.Exists(temporary))
        {
            File.Delete(temporary);
            string first = errors.Split('\n').FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)) ?? errors.Split('\n')[0];
            return (null, $"`{compiler} {Flags}` could not build {source} (exit code {process.ExitCode}): {first}");
        }

        File.Move(temporary, binary, overwrite: true);
        Console.WriteLine($"built {binary} with {compiler}");
        return (new ClientSpec("c", binary, [], description), null);
    }
}
