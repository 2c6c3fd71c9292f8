using EventLoop.Samples.Demos;
using Spectre.Console;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Samples;

/// <summary>
/// The <c>processes</c> demo on each policy: every child's lines arrive whole and in order, each exit code is the
/// child's own, the last line says so, and the command line refuses bad values in one line on stderr.
/// </summary>
public abstract class ProcessesDemoTests : LoopTestBase
{
    private static (IAnsiConsole Console, StringWriter Text) CaptureConsole() => SamplesRun.CaptureConsole();

    [Fact]
    public void Every_child_streams_its_lines_in_order_and_exits_with_its_own_code()
    {
        var (console, text) = CaptureConsole();
        IReadOnlyList<ProcessesDemo.Child> children = RunLoop(loop => ProcessesDemo.RunAsync(loop, console, count: 3, lines: 4));
        Assert.Equal(3, children.Count);
        for (int i = 0; i < children.Count; i++)
        {
            Assert.Equal($"child-{i + 1}", children[i].Name);
            Assert.Equal(i, children[i].Exit.ExitCode);
            Assert.Equal(4, children[i].Lines.Count);
            Assert.All(children[i].Lines.Select((line, n) => (line, n)), x => Assert.StartsWith($"line {x.n + 1} of 4 from pid ", x.line));
        }

        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Count(l => l.Contains("(stderr) child ") && l.EndsWith(" done")));
        Assert.Equal("processes: 3 children, exit codes 0,1,2", lines[^1].TrimEnd());
    }

    private Task<(int ExitCode, string Output, string Errors)> RunSamplesAsync(params string[] arguments) =>
        SamplesRun.RunAsync(CreatePolicy().Name, TestTimeout, arguments);

    [Fact]
    public async Task The_command_exits_zero_with_a_last_line_a_script_can_read()
    {
        var (exitCode, output, errors) = await RunSamplesAsync("processes", "--children", "2", "--lines", "2");
        Assert.True(exitCode == 0, $"exit {exitCode}:{Environment.NewLine}{output}{errors}");
        Assert.Equal("", errors);
        Assert.Equal("processes: 2 children, exit codes 0,1", output.TrimEnd().Split('\n')[^1]);
    }

    [Theory]
    [InlineData("--children", "0")]
    [InlineData("--children", "33")]
    [InlineData("--lines", "0")]
    public async Task A_bad_value_is_one_line_on_stderr_and_a_non_zero_exit(string option, string value)
    {
        var (exitCode, _, errors) = await RunSamplesAsync("processes", option, value);
        Assert.NotEqual(0, exitCode);
        string[] lines = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"stderr has {lines.Length} lines:{Environment.NewLine}{errors}");
        Assert.Contains(option, lines[0]);
    }
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class ManagedProcessesDemoTests : ProcessesDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class LibuvProcessesDemoTests : ProcessesDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
