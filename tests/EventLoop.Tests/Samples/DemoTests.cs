using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>Each demo on each policy, with small parameters, checked for the facts it claims.</summary>
public abstract class DemoTests : LoopTestBase
{
    private static (IAnsiConsole Console, StringWriter Text) CaptureConsole()
    {
        var text = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(text),
        });
        console.Profile.Width = 10_000; // no wrapping: one output line per line
        return (console, text);
    }

    [Fact]
    public void The_generator_prints_the_fibonacci_sequence_up_to_10000_both_ways()
    {
        var (console, text) = CaptureConsole();
        RunLoop(loop => GeneratorDemo.RunAsync(loop, console));
        string expected = "0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765";
        string[] lines = text.ToString().Split('\n');
        Assert.Contains(lines, l => l.Contains("sync") && !l.Contains("async") && l.TrimEnd().EndsWith(expected));
        Assert.Contains(lines, l => l.Contains("async") && l.Contains(expected + " (each awaited"));
    }

    [Fact]
    public void Producer_consumer_processes_all_20_items_and_async_latency_beats_sync()
    {
        var (console, text) = CaptureConsole();
        const double scale = 0.02;
        var async = RunLoop(loop => ProducerConsumerDemo.RunAsync(loop, console, scale));
        var sync = ProducerConsumerDemo.RunSync(console, scale);
        Assert.Equal(20, async.Processed);
        Assert.Equal(20, sync.Processed);
        Assert.True(async.AverageLatency < sync.AverageLatency, $"async {async.AverageLatency} vs sync {sync.AverageLatency}");
        Assert.Equal(40, text.ToString().Split('\n').Count(l => l.Contains("+++ processed value")));
        Assert.Contains("Processed 20 items in", text.ToString());
    }

    [Fact]
    public void Unsync_runs_everything_concurrently()
    {
        var (console, text) = CaptureConsole();
        var result = RunLoop(loop => UnsyncDemo.RunAsync(loop, console, sleeps: 20, cpuWork: 200_000, downloadMs: 50));
        Assert.True(result.Concurrent < result.Sequential, $"{result.Concurrent} vs {result.Sequential}");
        string output = text.ToString();
        Assert.Equal(11, output.Split('\n').Count(l => l.StartsWith("  done ")));
        Assert.Equal(2, output.Split('\n').Count(l => l.StartsWith("  done async download ")));
        Assert.Equal(2, output.Split('\n').Count(l => l.StartsWith("  done blocking download ")));
    }
}

public sealed class ManagedDemoTests : DemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvDemoTests : DemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
