using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Spectre.Console;

namespace EventLoop.Samples.Demos;

/// <summary>
/// asyncio's subprocess example on the loop: several children at once (<see cref="Loop.StartShellProcess"/>), each
/// one's output streamed line by line as it comes, prefixed with the child's name, and every exit code at the end.
/// The lines of the children interleave: nothing waits for one child before reading another.
/// </summary>
internal static class ProcessesDemo
{
    /// <summary>What the demo saw: each child's name, lines and exit status, in start order.</summary>
    public sealed record Child(string Name, IReadOnlyList<string> Lines, ProcessExitStatus Exit);

    /// <summary>The demo's children: a name and a shell command. Each prints a few lines, some pausing, and exits with its own code.</summary>
    public static (string Name, string Command)[] DefaultChildren(int count, int lines)
    {
        var children = new (string, string)[count];
        for (int i = 0; i < count; i++)
        {
            // Each child sleeps between lines for a different time, so their lines interleave; child i exits with code i.
            string delay = (0.02 * (i + 1)).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
            children[i] = ($"child-{i + 1}", $"for n in $(seq 1 {lines}); do echo \"line $n of {lines} from pid $$\"; sleep {delay}; done; echo \"child {i + 1} done\" >&2; exit {i}");
        }

        return children;
    }

    public static async Task<IReadOnlyList<Child>> RunAsync(Loop loop, IAnsiConsole console, int count = 4, int lines = 5)
    {
        (string Name, string Command)[] children = DefaultChildren(count, lines);
        console.MarkupLine($"[bold yellow]Processes[/]: {count} child processes at once on the {loop.PolicyName} loop, their output streamed as it comes");
        var palette = new[] { "aqua", "green", "fuchsia", "yellow", "blue", "red", "olive", "teal" };
        var options = new LoopProcessOptions { StandardOutput = ProcessStdio.Pipe, StandardError = ProcessStdio.Pipe, StandardInput = ProcessStdio.Discard };
        var started = new List<LoopProcess>();
        try
        {
            var running = new List<Task<Child>>();
            for (int i = 0; i < children.Length; i++)
            {
                LoopProcess process = loop.StartShellProcess(children[i].Command, options);
                started.Add(process);
                running.Add(WatchAsync(process, children[i].Name, palette[i % palette.Length], console));
            }

            Child[] results = await Task.WhenAll(running);
            foreach (Child child in results)
            {
                console.MarkupLine($"  [bold]{child.Name}[/]: {child.Lines.Count} line(s), {child.Exit}");
            }

            string codes = string.Join(",", results.Select(c => c.Exit.ExitCode));
            console.MarkupLine($"processes: {results.Length} children, exit codes {codes}");
            return results;
        }
        finally
        {
            foreach (LoopProcess process in started)
            {
                await process.DisposeAsync();
            }
        }
    }

    private static async Task<Child> WatchAsync(LoopProcess process, string name, string color, IAnsiConsole console)
    {
        var lines = new List<string>();
        Task errors = PrintLinesAsync(process.StandardError!, line => console.MarkupLine($"  [{color}]{name}[/] [grey](stderr)[/] {Markup.Escape(line)}"));
        await PrintLinesAsync(process.StandardOutput!, line =>
        {
            lines.Add(line);
            console.MarkupLine($"  [{color}]{name}[/] {Markup.Escape(line)}");
        });
        await errors;
        ProcessExitStatus exit = await process.WaitForExitAsync();
        return new Child(name, lines, exit);
    }

    /// <summary>Reads a pipe to its end and hands each complete line (UTF-8, without its newline) to <paramref name="onLine"/>.</summary>
    public static async Task PrintLinesAsync(PipeReader reader, Action<string> onLine)
    {
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            ReadOnlySequence<byte> buffer = result.Buffer;
            while (buffer.PositionOf((byte)'\n') is SequencePosition end)
            {
                onLine(Encoding.UTF8.GetString(buffer.Slice(0, end)));
                buffer = buffer.Slice(buffer.GetPosition(1, end));
            }

            if (result.IsCompleted)
            {
                if (!buffer.IsEmpty)
                {
                    onLine(Encoding.UTF8.GetString(buffer)); // a last line without a newline
                }

                reader.AdvanceTo(buffer.End);
                await reader.CompleteAsync();
                return;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }
}
