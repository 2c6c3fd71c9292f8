using System.Diagnostics;
using System.Globalization;
using System.Text;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// The talk's "do things faster" slide on the loop: one CPU-bound job (the total number of Collatz steps of every
/// number in 1..size, integer arithmetic, so every way of splitting it gives the same exact result) run three ways,
/// each timed while a 10 ms ticker runs on the same loop:
/// <list type="number">
/// <item>on the loop thread, chunk after chunk: the loop is blocked for the whole job, the ticker stops;</item>
/// <item>through <see cref="Loop.RunInExecutor{T}(Func{T}, CancellationToken)"/>, all chunks at once on the
/// thread pool: every core works (.NET has no GIL) and the ticker keeps ticking;</item>
/// <item>in child processes (the multiprocessing technique), each chunk computed by this runner's hidden
/// <c>cpu-worker</c> command and its result read back from the child's stdout. Each child is the loop's own
/// (<see cref="Loop.StartProcess"/>, asyncio's <c>create_subprocess_exec</c>): its stdout is a loop pipe and its exit
/// a loop event, so every continuation runs on the loop and the loop is never blocked waiting for a child.</item>
/// </list>
/// </summary>
internal static class CpuDemo
{
    public const int DefaultSize = 3_000_000;
    public const int MaxSize = 100_000_000; // the largest Collatz excursion below 10^8 is far inside a long
    public const int MaxWorkers = 64;

    /// <summary>The ticker's period: the loop should wake this often while the job runs.</summary>
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>One way of running the job.</summary>
    /// <param name="Name">What it was.</param>
    /// <param name="Sum">The job's result.</param>
    /// <param name="Elapsed">From the job's start until its result was back on the loop.</param>
    /// <param name="LargestGap">The longest time between two of the ticker's ticks while the job ran (the first
    /// tick came before the job started, the last after it ended).</param>
    public sealed record Variant(string Name, long Sum, TimeSpan Elapsed, TimeSpan LargestGap);

    /// <summary>The three variants, in the order they ran.</summary>
    public sealed record Result(Variant OnLoop, Variant Executor, Variant Processes, int Workers, int Size)
    {
        /// <summary>Whether the three variants found the same sum.</summary>
        public bool Agree => OnLoop.Sum == Executor.Sum && Executor.Sum == Processes.Sum;
    }

    /// <summary>The reason the options are bad (one line, naming the option), or null when they are good.</summary>
    public static string? Validate(int workers, int size)
    {
        if (workers is < 1 or > MaxWorkers)
        {
            return $"--workers must be between 1 and {MaxWorkers}, not {workers}.";
        }

        if (size is < 1 or > MaxSize)
        {
            return $"--size must be between 1 and {MaxSize:N0}, not {size}.";
        }

        return workers > size ? $"--workers ({workers}) must not be more than --size ({size})." : null;
    }

    /// <summary>Steps the Collatz map (n/2 when even, 3n+1 when odd) takes from <paramref name="n"/> to 1.</summary>
    public static int CollatzSteps(long n)
    {
        int steps = 0;
        while (n != 1)
        {
            n = (n & 1) == 0 ? n >> 1 : (3 * n) + 1;
            steps++;
        }

        return steps;
    }

    /// <summary>The job on one chunk: the Collatz steps of every number in [<paramref name="from"/>, <paramref name="to"/>), added up.</summary>
    public static long SumOfSteps(long from, long to)
    {
        long sum = 0;
        for (long n = from; n < to; n++)
        {
            sum += CollatzSteps(n);
        }

        return sum;
    }

    /// <summary>1..<paramref name="size"/> cut into <paramref name="workers"/> half-open chunks of (nearly) equal length.</summary>
    public static (long From, long To)[] Chunks(int size, int workers)
    {
        var chunks = new (long From, long To)[workers];
        long from = 1;
        for (int i = 0; i < workers; i++)
        {
            long to = 1 + ((long)size * (i + 1) / workers);
            chunks[i] = (from, to);
            from = to;
        }

        return chunks;
    }

    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, int workers, int size, CancellationToken cancellationToken = default)
    {
        if (Validate(workers, size) is { } error)
        {
            throw new ArgumentOutOfRangeException(nameof(workers), error);
        }

        (long From, long To)[] chunks = Chunks(size, workers);
        console.MarkupLine($"[bold yellow]CPU-bound work[/] on the {loop.PolicyName} loop: the Collatz steps of 1..{size:N0} added up, " +
                           $"{workers} chunk(s), {Environment.ProcessorCount} core(s), a {TickInterval.TotalMilliseconds:F0} ms ticker on the loop");
        console.MarkupLine($"  [grey]{"variant",-28} {"time",7}  {"speed-up",8}  ticker's largest gap[/]");

        Variant onLoop = await MeasureAsync(loop, "on the loop thread", () =>
        {
            long sum = 0;
            foreach ((long from, long to) in chunks)
            {
                sum += SumOfSteps(from, to); // no await in between: the loop runs nothing else until the job is done
            }

            return Task.FromResult(sum);
        }, cancellationToken);
        Print(console, onLoop, onLoop);

        Variant executor = await MeasureAsync(loop, $"RunInExecutor, {workers} chunk(s)", async () =>
        {
            long[] sums = await Task.WhenAll(chunks.Select(c => loop.RunInExecutor(() => SumOfSteps(c.From, c.To), cancellationToken)));
            return sums.Sum();
        }, cancellationToken);
        Print(console, executor, onLoop);

        Variant processes = await MeasureAsync(loop, $"{workers} child process(es)", async () =>
        {
            long[] sums = await Task.WhenAll(chunks.Select(c => RunWorkerAsync(loop, c.From, c.To, cancellationToken)));
            return sums.Sum();
        }, cancellationToken);
        Print(console, processes, onLoop);

        var result = new Result(onLoop, executor, processes, workers, size);
        console.MarkupLine(result.Agree
            ? $"  [green]all three agree[/]: {onLoop.Sum:N0} steps"
            : $"  [red]the results differ[/]: {onLoop.Sum:N0}, {executor.Sum:N0}, {processes.Sum:N0}");
        // The last line, for scripts: written past Spectre.Console, which would wrap it at the console's width.
        console.Profile.Out.Writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cpu: loop {onLoop.Elapsed.TotalSeconds:F2} s, executor {executor.Elapsed.TotalSeconds:F2} s (x{SpeedUp(executor, onLoop):F2}), " +
            $"processes {processes.Elapsed.TotalSeconds:F2} s (x{SpeedUp(processes, onLoop):F2}); largest ticker gaps " +
            $"{onLoop.LargestGap.TotalMilliseconds:F0}/{executor.LargestGap.TotalMilliseconds:F0}/{processes.LargestGap.TotalMilliseconds:F0} ms; " +
            $"{Environment.ProcessorCount} cores, {workers} workers, size {size}"));
        return result;
    }

    private static double SpeedUp(Variant variant, Variant baseline) =>
        baseline.Elapsed.TotalSeconds / Math.Max(variant.Elapsed.TotalSeconds, 1e-9);

    private static void Print(IAnsiConsole console, Variant variant, Variant baseline) =>
        console.MarkupLine($"  {Markup.Escape(variant.Name),-28} {variant.Elapsed.TotalSeconds,5:F2} s  {"x" + SpeedUp(variant, baseline).ToString("F2"),8}  " +
                           $"{variant.LargestGap.TotalMilliseconds,8:N0} ms");

    /// <summary>Runs <paramref name="job"/> on the loop with the ticker going, from the ticker's first tick until one tick after the job.</summary>
    private static async Task<Variant> MeasureAsync(Loop loop, string name, Func<Task<long>> job, CancellationToken cancellationToken)
    {
        var ticker = new Ticker(loop);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task ticking = ticker.RunAsync(stop.Token);
        try
        {
            await ticker.NextTickAsync(); // the ticker is running before the job starts
            ticker.ResetGap();
            var watch = Stopwatch.StartNew();
            long sum = await job();
            TimeSpan elapsed = watch.Elapsed;
            await ticker.NextTickAsync(); // so that the gap spanning the job's end counts too
            return new Variant(name, sum, elapsed, ticker.LargestGap);
        }
        finally
        {
            stop.Cancel();
            await ticking;
        }
    }

    /// <summary>A loop timer every <see cref="TickInterval"/>, recording the longest time between two ticks. Loop thread only (the files demo's too).</summary>
    internal sealed class Ticker(Loop loop)
    {
        private TaskCompletionSource? _nextTick;
        private CancellationToken _stoppedBy;
        private bool _stopped;
        private long _last;

        public TimeSpan LargestGap { get; private set; }

        /// <summary>Completes at the next tick; cancelled if the ticker stops first.</summary>
        public Task NextTickAsync() => _stopped
            ? Task.FromCanceled(_stoppedBy)
            : (_nextTick ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        public void ResetGap() => LargestGap = TimeSpan.Zero;

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            _last = Stopwatch.GetTimestamp();
            while (true)
            {
                try
                {
                    await loop.DelayAsync(TickInterval, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    _stopped = true;
                    _stoppedBy = cancellationToken;
                    _nextTick?.TrySetCanceled(cancellationToken);
                    return;
                }

                long now = Stopwatch.GetTimestamp();
                TimeSpan gap = Stopwatch.GetElapsedTime(_last, now);
                _last = now;
                if (gap > LargestGap)
                {
                    LargestGap = gap;
                }

                TaskCompletionSource? waiting = _nextTick;
                _nextTick = null;
                waiting?.SetResult();
            }
        }
    }

    /// <summary>
    /// One chunk in a child process: this runner's <c>cpu-worker --from A --to B</c>, whose stdout is the chunk's
    /// sum, started on the loop (<see cref="Loop.StartProcess"/>): its pipes are read and its exit awaited on the loop,
    /// and cancelling kills the child.
    /// </summary>
    private static async Task<long> RunWorkerAsync(Loop loop, long from, long to, CancellationToken cancellationToken)
    {
        ProcessStartInfo start = SamplesProcess.StartInfo("cpu-worker",
            "--from", from.ToString(CultureInfo.InvariantCulture), "--to", to.ToString(CultureInfo.InvariantCulture));
        var options = new LoopProcessOptions { StandardInput = ProcessStdio.Discard, StandardOutput = ProcessStdio.Pipe, StandardError = ProcessStdio.Pipe };
        await using LoopProcess process = loop.StartProcess(start.FileName, start.ArgumentList, options);
        await using CancellationTokenRegistration kill = cancellationToken.Register(static p => ((LoopProcess)p!).Kill(), process);
        Task<string> output = ReadAllTextAsync(process.StandardOutput!), errors = ReadAllTextAsync(process.StandardError!);
        Task<ProcessExitStatus> exited = process.WaitForExitAsync(CancellationToken.None);
        await exited;
        string text = await output, message = await errors;
        cancellationToken.ThrowIfCancellationRequested();
        int exitCode = exited.Result.ExitCode;
        if (exitCode != 0 || !long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long sum))
        {
            throw new InvalidOperationException(
                $"cpu-worker --from {from} --to {to} exited with {exitCode}: '{text.Trim()}' {message.Trim()}");
        }

        return sum;
    }

    private static async Task<string> ReadAllTextAsync(System.IO.Pipelines.PipeReader reader)
    {
        var text = new StringBuilder();
        await ProcessesDemo.PrintLinesAsync(reader, line => text.Append(line).Append('\n'));
        return text.ToString();
    }
}
