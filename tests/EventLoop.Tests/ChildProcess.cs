using System.Diagnostics;

namespace EventLoop.Tests;

/// <summary>
/// Runs a .NET program (this test assembly's <see cref="TestProgram"/>, or the samples runner) in a child process
/// with the environment a test gives it, and collects its exit code and output. For what a process reads once (the
/// library's environment variables) and for what a user sees (one line on stderr, an exit code).
/// </summary>
internal static class ChildProcess
{
    /// <summary>What the child did.</summary>
    public sealed record Result(int ExitCode, string Output, string Errors)
    {
        public string[] OutputLines => Lines(Output);

        public string[] ErrorLines => Lines(Errors);

        private static string[] Lines(string text) =>
            text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();

        public override string ToString() => $"exit code {ExitCode}\nstdout:\n{Output}\nstderr:\n{Errors}";
    }

    /// <summary>The test assembly itself, whose entry point is <see cref="TestProgram.Main"/>.</summary>
    public static string TestProgramPath => typeof(TestProgram).Assembly.Location;

    /// <summary>
    /// The samples runner, built by the test project's reference to it: its own output folder, beside the tests'
    /// (<c>samples/EventLoop.Samples/bin/...</c> for <c>tests/EventLoop.Tests/bin/...</c>), where its runtimeconfig is.
    /// </summary>
    public static string SamplesPath
    {
        get
        {
            string tests = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
            char s = Path.DirectorySeparatorChar;
            string samples = tests.Replace($"{s}tests{s}EventLoop.Tests{s}", $"{s}samples{s}EventLoop.Samples{s}", StringComparison.Ordinal);
            string path = Path.Combine(samples, "EventLoop.Samples.dll");
            Assert.True(File.Exists(path), $"the samples runner was not built at {path}");
            return path;
        }
    }

    /// <summary>
    /// Runs <c>dotnet <paramref name="assembly"/> <paramref name="args"/></c> with <paramref name="environment"/>
    /// (a null value removes the variable; <c>EVENTLOOP_POLICY</c> and <c>EVENTLOOP_LIBUV_PATH</c> are removed unless
    /// given), stdin closed, and waits for it, at most <paramref name="timeout"/> (default
    /// <see cref="TestPipes.TestTimeout"/>), killing it then.
    /// </summary>
    public static async Task<Result> RunAsync(string assembly, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(assembly);
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove("EVENTLOOP_POLICY");
        start.Environment.Remove("EVENTLOOP_LIBUV_PATH");
        foreach ((string name, string? value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        using Process child = Process.Start(start)!;
        child.StandardInput.Close();
        Task<string> output = child.StandardOutput.ReadToEndAsync();
        Task<string> errors = child.StandardError.ReadToEndAsync();
        try
        {
            await child.WaitForExitAsync().WaitAsync(timeout ?? TestPipes.TestTimeout);
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
            }
        }

        return new Result(child.ExitCode, await output, await errors);
    }

    /// <summary>The <c>dotnet</c> host running these tests (the test host is started with <c>dotnet exec</c>).</summary>
    public static string DotnetHost()
    {
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }
}
