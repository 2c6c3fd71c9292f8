using System.Diagnostics;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>Running the samples as a test does: a demo's console captured as text, or the runner as a child process.</summary>
internal static class SamplesRun
{
    /// <summary>A console that writes plain text (no ANSI, no colour) without wrapping: one output line per line.</summary>
    public static (IAnsiConsole Console, StringWriter Text) CaptureConsole()
    {
        var text = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(text),
        });
        console.Profile.Width = 10_000;
        return (console, text);
    }

    /// <summary>The samples runner as a child process, as a user runs it: exit code, stdout, stderr. Runs it with <paramref name="arguments"/> and <c>--loop <paramref name="policy"/></c>, killing it after <paramref name="timeout"/>.</summary>
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
