using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>
/// The <c>cpu</c> demo on each policy: the three variants find the sum a plain sequential loop finds, only the
/// loop-thread variant stops the loop's ticker, and the command line refuses bad values in one line on stderr.
/// </summary>
public abstract class CpuDemoTests : LoopTestBase
{
    /// <summary>
    /// Large enough that the job on the loop thread blocks the loop far longer than the scheduler delays a woken
    /// thread (about 0.3 s of CPU; on a loaded machine the job's wall time grows with the load, as the scheduler's
    /// delays do: at a load of 50 on 2 cores the loop thread was seen waiting up to 0.3 s to run, with the job on
    /// the loop taking 2 s and more); small enough to run three times per policy.
    /// </summary>
    private const int Size = 2_000_000;

    /// <summary>The job as a plain loop, written independently of the demo's code: the Collatz steps of 1..n added up.</summary>
    private static long SequentialSum(int size)
    {
        long total = 0;
        for (long start = 1; start <= size; start++)
        {
            long n = start;
            while (n > 1)
            {
                n = n % 2 == 0 ? n / 2 : (3 * n) + 1;
                total++;
            }
        }

        return total;
    }

    /// <summary>A guard against a hang, not a time limit: a loaded machine runs the demo several times slower.</summary>
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout * 6;

    private static readonly Lazy<long> Expected = new(() => SequentialSum(Size));

    static CpuDemoTests()
    {
        // The executor variant queues its chunks on the pool beside other test classes' work (see DemoTests).
        ThreadPool.GetMinThreads(out int workers, out int io);
        if (workers < 16)
        {
            ThreadPool.SetMinThreads(16, io);
        }
    }

    private static (IAnsiConsole Console, StringWriter Text) CaptureConsole() => SamplesRun.CaptureConsole();

    /// <summary>Runs the loop on a thread of its own, so the test's (pool) thread is free meanwhile.</summary>
    private Task<T> RunLoopOffPool<T>(Func<Loop, Task<T>> main) =>
        Task.Factory.StartNew(() => RunLoop(main), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    [Fact]
    public async Task Every_variant_finds_the_sequential_sum_and_only_the_loop_thread_variant_stops_the_ticker()
    {
        var (console, text) = CaptureConsole();
        CpuDemo.Result result = await RunLoopOffPool(loop => CpuDemo.RunAsync(loop, console, workers: 2, size: Size))
            .WaitAsync(Timeout);

        long expected = Expected.Value;
        Assert.Equal(expected, result.OnLoop.Sum);
        Assert.Equal(expected, result.Executor.Sum);
        Assert.Equal(expected, result.Processes.Sum);
        Assert.True(result.Agree);

        // On the loop thread, the ticker's largest gap spans the whole job (a tick before it, the next after it).
        Assert.True(result.OnLoop.LargestGap >= result.OnLoop.Elapsed,
            $"on the loop: gap {result.OnLoop.LargestGap} shorter than the job {result.OnLoop.Elapsed}");

        // Off the loop thread, the ticker keeps ticking while the same job runs: its largest gap is well under the
        // time the job blocked the loop in the first variant, measured in this same run.
        TimeSpan blocked = result.OnLoop.LargestGap;
        Assert.True(result.Executor.LargestGap < blocked / 2,
            $"RunInExecutor: the ticker stalled {result.Executor.LargestGap}, the job on the loop blocked it {blocked}");
        // Children: under the whole job, not half of it, since starting them blocks the loop thread itself (the spawn
        // is synchronous; when the libuv loop still forked with uv_spawn, that took 180 ms of a 340 ms job under load).
        Assert.True(result.Processes.LargestGap < blocked,
            $"child processes: the ticker stalled {result.Processes.LargestGap}, the job on the loop blocked it {blocked}");

        string[] lines = text.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();
        Assert.Contains(lines, l => l.StartsWith("  on the loop thread ") && l.Contains(" x1.00 "));
        Assert.Contains(lines, l => l.StartsWith("  RunInExecutor, 2 chunk(s) "));
        Assert.Contains(lines, l => l.StartsWith("  2 child process(es) "));
        Assert.Contains(lines, l => l == $"  all three agree: {expected:N0} steps");
        Assert.Matches(new Regex(@"^cpu: loop \d+\.\d\d s, executor \d+\.\d\d s \(x\d+\.\d\d\), processes \d+\.\d\d s \(x\d+\.\d\d\); " +
                                 $@"largest ticker gaps \d+/\d+/\d+ ms; {Environment.ProcessorCount} cores, 2 workers, size {Size}$"), lines[^1]);
    }

    [Fact]
    public async Task Uneven_chunks_cover_every_number_once_in_every_variant()
    {
        // 1..10 in 3 chunks: 0 + 1 + 7 + 2 + 5 + 8 + 16 + 3 + 19 + 6 = 67 steps.
        Assert.Equal(67, SequentialSum(10));
        Assert.Equal([(1L, 4L), (4L, 7L), (7L, 11L)], CpuDemo.Chunks(10, 3));
        var (console, _) = CaptureConsole();
        CpuDemo.Result result = await RunLoopOffPool(loop => CpuDemo.RunAsync(loop, console, workers: 3, size: 10))
            .WaitAsync(Timeout);
        Assert.Equal(67, result.OnLoop.Sum);
        Assert.Equal(67, result.Executor.Sum);
        Assert.Equal(67, result.Processes.Sum);
    }

    private Task<(int ExitCode, string Output, string Errors)> RunSamplesAsync(params string[] arguments) =>
        SamplesRun.RunAsync(CreatePolicy().Name, Timeout, arguments);

    [Theory]
    [InlineData("--workers", "0")]
    [InlineData("--workers", "-3")]
    [InlineData("--workers", "65")]
    [InlineData("--size", "0")]
    [InlineData("--size", "-1")]
    [InlineData("--size", "100000001")]
    [InlineData("--size", "lots")]
    public async Task A_bad_value_is_one_line_on_stderr_and_a_non_zero_exit(string option, string value)
    {
        var (exitCode, _, errors) = await RunSamplesAsync("cpu", option, value);
        Assert.NotEqual(0, exitCode);
        string[] lines = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"stderr has {lines.Length} lines:{Environment.NewLine}{errors}");
        Assert.Contains(option, lines[0]);
        Assert.Contains(value, lines[0]);
    }

    [Fact]
    public async Task More_workers_than_numbers_is_refused_in_one_line()
    {
        var (exitCode, output, errors) = await RunSamplesAsync("cpu", "--workers", "4", "--size", "3");
        Assert.NotEqual(0, exitCode);
        Assert.Equal("error: --workers (4) must not be more than --size (3).", errors.Trim());
        Assert.Equal("", output);
    }

    [Fact]
    public async Task The_command_runs_all_three_variants_and_exits_zero()
    {
        var (exitCode, output, errors) = await RunSamplesAsync("cpu", "--workers", "2", "--size", "1000");
        Assert.True(exitCode == 0, $"exit {exitCode}:{Environment.NewLine}{output}{errors}");
        Assert.Equal("", errors);
        Assert.Contains($"all three agree: {SequentialSum(1000):N0} steps", output);
        Assert.StartsWith("cpu: loop ", output.TrimEnd().Split('\n')[^1]);
    }
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)] // its children are the loop's: see SubprocessCollection
public sealed class ManagedCpuDemoTests : CpuDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)] // its children are the loop's: see SubprocessCollection
public sealed class LibuvCpuDemoTests : CpuDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
