using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>
/// The <c>files</c> demo (the aiofiles slide) on each policy: the async copy through the loop's file API and the
/// blocking one on the loop thread both make an identical copy; the blocking one holds the ticker for the whole copy
/// (its largest gap spans it); the command line runs both ways and refuses a bad size in one line on stderr.
/// </summary>
public abstract class FilesDemoTests : LoopTestBase
{
    /// <summary>A guard against a hang, not a time limit: a loaded machine runs the demo several times slower.</summary>
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout * 6;

    private static (IAnsiConsole Console, StringWriter Text) CaptureConsole() => SamplesRun.CaptureConsole();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_copy_is_identical_and_the_last_line_says_how_it_went(bool sync)
    {
        var (console, text) = CaptureConsole();
        FilesDemo.Result result = await Task.Factory.StartNew(
            () => RunLoop(loop => FilesDemo.RunAsync(loop, console, sizeMiB: 8, sync)),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).WaitAsync(Timeout);

        Assert.True(result.Identical);
        Assert.Equal(8L * 1024 * 1024, result.Bytes);
        Assert.Equal(sync, result.Sync);
        if (sync)
        {
            // Blocked on the loop thread: no tick between the one before the copy and the one after it.
            Assert.True(result.LargestGap >= result.Elapsed, $"gap {result.LargestGap} shorter than the blocking copy {result.Elapsed}");
        }

        string last = text.ToString().TrimEnd().Split('\n')[^1].TrimEnd('\r');
        Assert.Matches(new Regex($@"^files: {(sync ? "sync" : "async")} copy of 8 MiB in \d+\.\d\d s \(\d+ MiB/s\), largest ticker gap \d+ ms, identical, {CreatePolicy().Name} loop$"), last);
    }

    [Fact]
    public async Task The_async_copy_helper_copies_a_file_that_is_not_a_whole_number_of_chunks()
    {
        string directory = Directory.CreateTempSubdirectory("evl-files-demo-test-").FullName;
        try
        {
            string source = Path.Combine(directory, "s"), copy = Path.Combine(directory, "c");
            byte[] payload = TestPipes.RandomPayload((3 * 1024 * 1024) + 12345, seed: 9);
            File.WriteAllBytes(source, payload);
            await Task.Factory.StartNew(() => RunLoop(loop => FilesDemo.CopyAsync(loop, source, copy)),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).WaitAsync(Timeout);
            Assert.Equal(payload, File.ReadAllBytes(copy));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private Task<(int ExitCode, string Output, string Errors)> RunSamplesAsync(params string[] arguments) =>
        SamplesRun.RunAsync(CreatePolicy().Name, Timeout, arguments);

    [Fact]
    public async Task The_command_copies_both_ways_and_exits_zero()
    {
        foreach (string[] mode in new[] { Array.Empty<string>(), ["--sync"] })
        {
            var (exitCode, output, errors) = await RunSamplesAsync(["files", "--size-mib", "2", .. mode]);
            Assert.True(exitCode == 0, $"exit {exitCode}:{Environment.NewLine}{output}{errors}");
            Assert.Equal("", errors);
            Assert.StartsWith($"files: {(mode.Length == 0 ? "async" : "sync")} copy of 2 MiB in ", output.TrimEnd().Split('\n')[^1]);
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("16385")]
    [InlineData("lots")]
    public async Task A_bad_size_is_one_line_on_stderr_and_a_non_zero_exit(string value)
    {
        var (exitCode, _, errors) = await RunSamplesAsync("files", "--size-mib", value);
        Assert.NotEqual(0, exitCode);
        string[] lines = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"stderr has {lines.Length} lines:{Environment.NewLine}{errors}");
        Assert.Contains("--size-mib", lines[0]);
        Assert.Contains(value, lines[0]);
    }
}

public sealed class ManagedFilesDemoTests : FilesDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvFilesDemoTests : FilesDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
