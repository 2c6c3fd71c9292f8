using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;

namespace EventLoop.Tests.Samples;

/// <summary>
/// The <c>web</c> demo as a user runs it (issue 13): <c>web --loop X --loops N --port 0</c> prints its address, <c>curl</c>
/// against that address gets the text and JSON routes, and SIGTERM (what Ctrl+C and a container stop send) stops it
/// gracefully with exit code 0 and nothing on stderr.
/// </summary>
public abstract partial class WebDemoCliTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [GeneratedRegex(@"^web on (http://\S+) \((\S+) loop x (\d+), application on the thread pool\)$")]
    private static partial Regex AddressLine();

    [Fact]
    public async Task The_web_demo_prints_its_address_answers_curl_and_stops_on_SIGTERM()
    {
        string policy = CreatePolicy().Name;
        ProcessStartInfo start = SamplesProcess.StartInfo("web", "--loop", policy, "--loops", "2", "--port", "0");
        start.RedirectStandardInput = true;
        using var process = Process.Start(start)!;
        Task<string> errors = process.StandardError.ReadToEndAsync();
        try
        {
            string? line = await process.StandardOutput.ReadLineAsync().WaitAsync(Timeout);
            Match address = AddressLine().Match(line ?? "");
            Assert.True(address.Success, $"not the address line: '{line}'");
            Assert.Equal(policy, address.Groups[2].Value);
            Assert.Equal("2", address.Groups[3].Value);
            string url = address.Groups[1].Value;

            Assert.Equal(WebDemo.PlainText, await CurlAsync($"{url}/plaintext"));
            Assert.Equal("{\"message\":\"Hello, World!\"}", await CurlAsync($"{url}/json"));

            Assert.Equal(0, kill(process.Id, 15)); // SIGTERM: the host's graceful stop
            await process.WaitForExitAsync().WaitAsync(Timeout);
            Assert.Equal(0, process.ExitCode);
            Assert.Equal("", await errors.WaitAsync(Timeout));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>The body <c>curl</c> gets from <paramref name="url"/>; curl's failure (a non-2xx answer too) fails the test.</summary>
    private static async Task<string> CurlAsync(string url)
    {
        var start = new ProcessStartInfo("curl") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in new[] { "--silent", "--show-error", "--fail", "--max-time", "30", url })
        {
            start.ArgumentList.Add(argument);
        }

        using var curl = Process.Start(start)!;
        Task<string> output = curl.StandardOutput.ReadToEndAsync();
        Task<string> errors = curl.StandardError.ReadToEndAsync();
        await curl.WaitForExitAsync().WaitAsync(Timeout);
        Assert.True(curl.ExitCode == 0, $"curl {url}: exit code {curl.ExitCode}: {await errors}");
        return await output;
    }
}

public sealed class ManagedWebDemoCliTests : WebDemoCliTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvWebDemoCliTests : WebDemoCliTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
