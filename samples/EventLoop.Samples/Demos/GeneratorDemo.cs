using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// The talk's first demo: Fibonacci as a lazy generator (C#'s <c>yield return</c> is Python's <c>yield</c>),
/// then as an async generator (<c>IAsyncEnumerable</c>) whose items are awaited on the loop.
/// </summary>
internal static class GeneratorDemo
{
    public const int Limit = 10_000;

    /// <summary>Lazy: nothing is computed until the consumer asks for the next item.</summary>
    public static IEnumerable<long> Fibonacci()
    {
        long current = 0, next = 1;
        while (true)
        {
            yield return current;
            (current, next) = (next, current + next);
        }
    }

    /// <summary>The same sequence, each item produced after an await on the loop (a timer here).</summary>
    public static async IAsyncEnumerable<long> FibonacciAsync(Loop loop, TimeSpan pause)
    {
        foreach (long n in Fibonacci())
        {
            await loop.DelayAsync(pause);
            yield return n;
        }
    }

    public static async Task RunAsync(Loop loop, IAnsiConsole console)
    {
        console.MarkupLine("[bold yellow]Generator[/]: Fibonacci numbers up to 10,000, lazily");
        var lazy = new List<long>();
        foreach (long n in Fibonacci())
        {
            if (n > Limit)
            {
                break; // the generator is infinite; the consumer decides when to stop
            }

            lazy.Add(n);
        }

        console.MarkupLine($"  [green]sync[/]  {string.Join(", ", lazy)}");

        var awaited = new List<long>();
        await foreach (long n in FibonacciAsync(loop, TimeSpan.FromMilliseconds(1)))
        {
            if (n > Limit)
            {
                break;
            }

            awaited.Add(n);
        }

        console.MarkupLine($"  [aqua]async[/] {string.Join(", ", awaited)} [grey](each awaited on the {loop.PolicyName} loop)[/]");
    }
}
