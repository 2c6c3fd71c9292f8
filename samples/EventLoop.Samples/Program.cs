using System.CommandLine;
using EventLoop;
using EventLoop.Samples.Demos;
using Spectre.Console;

// The classic async demos, each on whichever loop is selected (--loop managed|libuv, or EVENTLOOP_POLICY).
// With no demo named, a short tour of all of them.
var loopOption = new Option<string>("--loop")
{
    Description = "The loop policy: managed (pure .NET) or libuv (the fast loop).",
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable) ?? "managed",
    Recursive = true,
};
var syncOption = new Option<bool>("--sync") { Description = "Run the blocking version instead." };
var timeScaleOption = new Option<double>("--time-scale")
{
    Description = "Multiply every pause by this factor (1 = the talk's timings).",
    DefaultValueFactory = _ => 1.0,
};

var root = new RootCommand("EventLoop samples: the classic async demos on a single-threaded event loop. With no demo, a short tour.");
root.Options.Add(loopOption);

var generator = new Command("generator", "Fibonacci as a lazy generator, then as an async stream awaited on the loop.");
generator.SetAction(parse => Run(parse.GetValue(loopOption)!, loop => GeneratorDemo.RunAsync(loop, AnsiConsole.Console)));

var producerConsumer = new Command("producer-consumer", "Two producers and four consumers: blocking (--sync) vs. async on the loop.");
producerConsumer.Options.Add(syncOption);
producerConsumer.Options.Add(timeScaleOption);
producerConsumer.SetAction(parse =>
{
    double scale = parse.GetValue(timeScaleOption);
    if (scale <= 0)
    {
        AnsiConsole.MarkupLine("[red]--time-scale must be greater than 0.[/]");
        return 2;
    }

    if (parse.GetValue(syncOption))
    {
        ProducerConsumerDemo.RunSync(AnsiConsole.Console, scale);
        return 0;
    }

    return Run(parse.GetValue(loopOption)!, loop => ProducerConsumerDemo.RunAsync(loop, AnsiConsole.Console, scale));
});

var unsync = new Command("unsync", "CPU-bound work on the thread pool, blocking calls in the executor and loop sleeps, all at once.");
unsync.SetAction(parse => Run(parse.GetValue(loopOption)!, loop => UnsyncDemo.RunAsync(loop, AnsiConsole.Console)));

var hostOption = new Option<string>("--host") { Description = "Address to listen on.", DefaultValueFactory = _ => "127.0.0.1" };
var portOption = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8888 };
var echoServer = new Command("echo-server", "A TCP echo server on the loop; prints the address it listens on and serves until Ctrl+C.");
echoServer.Options.Add(hostOption);
echoServer.Options.Add(portOption);
echoServer.SetAction(parse =>
{
    if (!System.Net.IPAddress.TryParse(parse.GetValue(hostOption), out var host))
    {
        AnsiConsole.MarkupLine($"[red]--host must be an IP address, not '{Markup.Escape(parse.GetValue(hostOption) ?? "")}'.[/]");
        return 2;
    }

    int port = parse.GetValue(portOption);
    if (port is < 0 or > 65535)
    {
        AnsiConsole.MarkupLine("[red]--port must be between 0 and 65535.[/]");
        return 2;
    }

    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
        System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
    return Run(parse.GetValue(loopOption)!, loop => EchoServer.RunAsync(loop, host, port, AnsiConsole.Console, stop.Token));
});

root.Subcommands.Add(echoServer);
root.Subcommands.Add(generator);
root.Subcommands.Add(producerConsumer);
root.Subcommands.Add(unsync);
root.SetAction(parse => Run(parse.GetValue(loopOption)!, async loop =>
{
    AnsiConsole.Write(new Rule($"[bold]EventLoop tour[/] on the [aqua]{loop.PolicyName}[/] loop"));
    await GeneratorDemo.RunAsync(loop, AnsiConsole.Console);
    AnsiConsole.WriteLine();
    const double scale = 0.05;
    var sync = ProducerConsumerDemo.RunSync(AnsiConsole.Console, scale);
    var async = await ProducerConsumerDemo.RunAsync(loop, AnsiConsole.Console, scale);
    AnsiConsole.MarkupLine($"[bold green]async vs sync[/]: total {async.Total.TotalSeconds:F2} s vs {sync.Total.TotalSeconds:F2} s, " +
                           $"average latency {async.AverageLatency.TotalSeconds:F3} s vs {sync.AverageLatency.TotalSeconds:F3} s");
    AnsiConsole.WriteLine();
    await UnsyncDemo.RunAsync(loop, AnsiConsole.Console, sleeps: 200);
    AnsiConsole.Write(new Rule("[bold]tour done[/]"));
}));

return root.Parse(args).Invoke();

static int Run(string policyName, Func<Loop, Task> demo)
{
    LoopPolicy policy;
    try
    {
        policy = EventLoopPolicy.FromName(policyName);
    }
    catch (ArgumentException ex)
    {
        AnsiConsole.MarkupLine($"[red]{Markup.Escape(ex.Message)}[/]");
        return 2;
    }

    Loop.Run(() => demo(Loop.Current), policy);
    return 0;
}
