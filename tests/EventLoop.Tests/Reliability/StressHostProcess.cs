using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace EventLoop.Tests.Reliability;

/// <summary>
/// One run of tests/EventLoop.StressHost in a child process, so a scenario that crashes (a native handle closed
/// on the wrong thread, say) fails its test instead of killing the test run. Reads its output line by line.
/// </summary>
internal sealed class StressHostProcess : IDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _errors = new();

    private StressHostProcess(Process process) => _process = process;

    /// <summary>True when the adversarial suite should run at full size (<c>EVENTLOOP_STRESS=full</c>).</summary>
    public static bool FullSize => Environment.GetEnvironmentVariable("EVENTLOOP_STRESS") == "full";

    /// <summary>The host's assembly, built beside the tests (the test project builds it, without referencing it).</summary>
    public static string HostPath
    {
        get
        {
            string testDirectory = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
            string path = testDirectory.Replace(
                $"{Path.DirectorySeparatorChar}EventLoop.Tests{Path.DirectorySeparatorChar}",
                $"{Path.DirectorySeparatorChar}EventLoop.StressHost{Path.DirectorySeparatorChar}", StringComparison.Ordinal);
            return Path.Combine(path, "EventLoop.StressHost.dll");
        }
    }

    /// <summary>The policy name that starts the managed loop on .NET's sockets transport in the child.</summary>
    public const string ManagedSockets = "managed-sockets";

    /// <summary>Starts <paramref name="scenario"/> on <paramref name="policy"/>; with <paramref name="fileLimit"/>, under <c>ulimit -n</c>.</summary>
    public static StressHostProcess Start(string scenario, string policy, string arguments = "", int? fileLimit = null)
    {
        bool sockets = policy == ManagedSockets;
        if (sockets)
        {
            policy = "managed";
        }

        Assert.True(File.Exists(HostPath), $"the stress host was not built at {HostPath}");
        string command = $"exec dotnet \"{HostPath}\" {scenario} --policy {policy} {arguments}";
        if (fileLimit is int limit)
        {
            command = $"ulimit -n {limit} && {command}";
        }

        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        start.Environment.Remove("EVENTLOOP_POLICY");
        if (sockets)
        {
            start.Environment["EVENTLOOP_MANAGED_IO"] = "sockets"; // the managed loop on .NET's sockets instead of its own poller
        }
        else
        {
            start.Environment.Remove("EVENTLOOP_MANAGED_IO");
        }
        var process = new Process { StartInfo = start };
        var host = new StressHostProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                host._lines.Writer.TryComplete();
                return;
            }

            lock (host._output)
            {
                host._output.AppendLine(e.Data);
            }

            host._lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (host._errors)
                {
                    host._errors.AppendLine(e.Data);
                }
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    /// <summary>Everything the child printed so far, both streams, for failure messages.</summary>
    public string Transcript
    {
        get
        {
            lock (_output)
            {
                lock (_errors)
                {
                    return $"stdout:{Environment.NewLine}{_output}stderr:{Environment.NewLine}{_errors}";
                }
            }
        }
    }

    /// <summary>The next line the child prints that starts with <paramref name="prefix"/>; fails after <paramref name="timeout"/>.</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await foreach (string line in _lines.Reader.ReadAllAsync(cancel.Token))
            {
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line;
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the child printed no '{prefix}' line within {timeout.TotalSeconds:F0} s.{Environment.NewLine}{Transcript}");
        }

        Assert.Fail($"the child ended without printing a '{prefix}' line (exit code {ExitCodeOrNull()}).{Environment.NewLine}{Transcript}");
        return "";
    }

    /// <summary>Closes the child's input (how the fd server is told to stop).</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Waits for the child to exit and asserts it exited 0 (a crash shows as a signal's exit code).</summary>
    public async Task<string> AssertExitsCleanlyAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            Assert.Fail($"the child did not exit within {timeout.TotalSeconds:F0} s (a hang).{Environment.NewLine}{Transcript}");
        }

        _process.WaitForExit(); // drain the output events
        int code = _process.ExitCode;
        Assert.True(code == 0, $"the child exited with code {code}{(code > 128 ? $" (signal {code - 128}: a crash)" : "")}.{Environment.NewLine}{Transcript}");
        return Transcript;
    }

    private int? ExitCodeOrNull() => _process.HasExited ? _process.ExitCode : null;

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }

        _process.Dispose();
    }
}
