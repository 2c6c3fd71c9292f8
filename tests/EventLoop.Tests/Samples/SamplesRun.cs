using System.Diagnostics;
using EventLoop.Samples.Demos;

namespace EventLoop.Tests.Samples;

/// <summary>The samples runner as a child process, as a user runs it: exit code, stdout, stderr.</summary>
internal static class SamplesRun
{
    /// <summary>Runs the samples runner with <paramref name="arguments"/> and <c>--loop <paramref name="policy"/></c>, killing it after <paramref name="timeout"/>.</summary>
    public static async Task<(int ExitCode, string Output, string Errors)> RunAsync(string policy, TimeSpan timeout, params string[] arguments)
    {
        ProcessStartInfo start = SamplesProcess.StartInfo([.. arguments, "--loop", policy]);
        using var process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> errors = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await errors);
    }
}
