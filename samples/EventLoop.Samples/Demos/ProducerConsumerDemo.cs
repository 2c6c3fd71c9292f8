using System.Diagnostics;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// The talk's producer/consumer: two producers make 10 items each (item = i*i, stamped with its creation
/// time, then a random 0.5-1.5 s pause); four consumers process items (0.5 s of work per item) until there are
/// no more. The sync version makes everything first and then processes it in one consumer; the async version
/// runs them all at once on the loop through an <see cref="AsyncQueue{T}"/>: when both producers are done the
/// queue is completed, so each consumer's <c>await foreach</c> over <see cref="AsyncQueue{T}.ReadAllAsync"/> ends
/// once the queue is drained, with no sentinel values and no count agreed in advance. Every pause is multiplied
/// by the time scale.
/// </summary>
internal static class ProducerConsumerDemo
{
    private const int Producers = 2, ItemsPerProducer = 10, Consumers = 4;

    public sealed record Result(int Processed, TimeSpan Total, TimeSpan AverageLatency);

    private readonly record struct Item(int Value, TimeSpan CreatedAt);

    /// <summary>The largest time scale: the demo then takes about an hour.</summary>
    public const double MaxTimeScale = 100;

    /// <summary>Why <paramref name="timeScale"/> cannot be used, or null when it can: finite, above 0, at most <see cref="MaxTimeScale"/>.</summary>
    public static string? CheckTimeScale(double timeScale) =>
        double.IsFinite(timeScale) && timeScale > 0 && timeScale <= MaxTimeScale
            ? null
            : $"--time-scale must be a number greater than 0 and at most {MaxTimeScale}, not {timeScale.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    private static void ValidateTimeScale(double timeScale)
    {
        if (CheckTimeScale(timeScale) is { } error)
        {
            throw new ArgumentOutOfRangeException(nameof(timeScale), timeScale, error);
        }
    }

    public static async Task<Result> RunAsync(Loop loop, IAnsiConsole console, double timeScale, int seed = 42)
    {
        ValidateTimeScale(timeScale);
        console.MarkupLine($"[bold yellow]Producer/consumer, async[/] on the {loop.PolicyName} loop (time scale {timeScale})");
        var random = new Random(seed);
        var queue = new AsyncQueue<Item>(loop: loop);
        var latencies = new List<TimeSpan>();
        TimeSpan start = loop.Time;

        async Task Produce(int producer)
        {
            for (int i = 1; i <= ItemsPerProducer; i++)
            {
                var item = new Item(i * i, loop.Time);
                await queue.PutAsync(item);
                console.MarkupLine($"  [yellow] -- generated item {i} (producer {producer})[/]");
                await loop.DelayAsync(Scale(0.5 + random.NextDouble(), timeScale));
            }
        }

        async Task Consume(int consumer)
        {
            await foreach (Item item in queue.ReadAllAsync())
            {
                TimeSpan waited = loop.Time - item.CreatedAt;
                latencies.Add(waited);
                console.MarkupLine($"  [cyan] +++ processed value {item.Value}, waited {waited.TotalSeconds:F2} s (consumer {consumer})[/]");
                await loop.DelayAsync(Scale(0.5, timeScale));
            }
        }

        var producers = new List<Task>();
        for (int p = 1; p <= Producers; p++)
        {
            producers.Add(Produce(p));
        }

        var consumers = new List<Task>();
        for (int c = 1; c <= Consumers; c++)
        {
            consumers.Add(Consume(c));
        }

        await Task.WhenAll(producers);
        queue.Complete(); // no more items: each consumer ends once the queue is empty
        await Task.WhenAll(consumers);
        return Report(console, latencies, loop.Time - start);
    }

    public static Result RunSync(IAnsiConsole console, double timeScale, int seed = 42)
    {
        ValidateTimeScale(timeScale);
        console.MarkupLine($"[bold yellow]Producer/consumer, sync[/] (blocking; time scale {timeScale})");
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();
        var items = new List<Item>();
        for (int p = 1; p <= Producers; p++)
        {
            for (int i = 1; i <= ItemsPerProducer; i++)
            {
                items.Add(new Item(i * i, clock.Elapsed));
                console.MarkupLine($"  [yellow] -- generated item {i} (producer {p})[/]");
                Thread.Sleep(Scale(0.5 + random.NextDouble(), timeScale));
            }
        }

        var latencies = new List<TimeSpan>();
        foreach (Item item in items)
        {
            TimeSpan waited = clock.Elapsed - item.CreatedAt;
            latencies.Add(waited);
            console.MarkupLine($"  [cyan] +++ processed value {item.Value}, waited {waited.TotalSeconds:F2} s[/]");
            Thread.Sleep(Scale(0.5, timeScale));
        }

        return Report(console, latencies, clock.Elapsed);
    }

    private static TimeSpan Scale(double seconds, double timeScale) => TimeSpan.FromSeconds(seconds * timeScale);

    private static Result Report(IAnsiConsole console, List<TimeSpan> latencies, TimeSpan total)
    {
        var average = TimeSpan.FromTicks((long)latencies.Average(l => l.Ticks));
        console.MarkupLine($"[bold]Processed {latencies.Count} items in {total.TotalSeconds:F2} sec, average latency {average.TotalSeconds:F3} sec[/]");
        return new Result(latencies.Count, total, average);
    }
}
