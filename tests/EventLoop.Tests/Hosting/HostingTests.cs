using System.Collections.Concurrent;
using EventLoop.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventLoop.Tests.Hosting;

/// <summary>
/// The Generic Host integration: the loop group starts and stops with the host, its policy and size come from
/// configuration, a loop worker runs on a loop thread and is stopped by the host, and a throwing callback's report reaches
/// the host's ILogger (with the callback's name in debug mode). Every test ends with the leak check on each loop.
/// </summary>
public abstract class HostingTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout;

    private IHost BuildHost(CapturingLoggerProvider logs, Action<IServiceCollection>? services = null, bool debug = false)
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EventLoop:Policy"] = CreatePolicy().Name,
            ["EventLoop:LoopCount"] = "2",
            ["EventLoop:Debug"] = debug ? "true" : "false",
        });
        builder.Logging.AddProvider(logs);
        builder.Services.AddEventLoop();
        services?.Invoke(builder.Services);
        return builder.Build();
    }

    private async Task StopAndCheckAsync(IHost host, LoopGroup group)
    {
        await host.StopAsync().WaitAsync(Timeout);
        foreach (LoopThread thread in group.Loops)
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }

        host.Dispose();
    }

    [Fact]
    public async Task The_group_starts_and_stops_with_the_host_with_policy_and_size_from_configuration()
    {
        var logs = new CapturingLoggerProvider();
        using IHost host = BuildHost(logs);
        var service = host.Services.GetRequiredService<EventLoopService>();
        Assert.Throws<InvalidOperationException>(() => service.Group); // not before the host starts

        await host.StartAsync().WaitAsync(Timeout);
        LoopGroup group = service.Group;
        Assert.Equal(2, group.Loops.Count);
        Assert.All(group.Loops, thread => Assert.Equal(CreatePolicy().Name, thread.Loop.PolicyName));
        Assert.Equal(42, await group.Loops[1].RunAsync(() => 42).WaitAsync(Timeout));

        await StopAndCheckAsync(host, group);
        Assert.All(group.Loops, thread => Assert.True(thread.Loop.IsClosed));
        Assert.Throws<InvalidOperationException>(() => service.Group);
    }

    [Fact]
    public async Task A_loop_worker_runs_on_a_loop_thread_and_the_host_stop_cancels_it()
    {
        var logs = new CapturingLoggerProvider();
        using IHost host = BuildHost(logs, services => services.AddSingleton<TickingWorker>().AddHostedService(p => p.GetRequiredService<TickingWorker>()));
        await host.StartAsync().WaitAsync(Timeout);
        LoopGroup group = host.Services.GetRequiredService<EventLoopService>().Group;
        var worker = host.Services.GetRequiredService<TickingWorker>();
        await worker.TickedThrice.Task.WaitAsync(Timeout);
        Assert.True(worker.AlwaysOnItsLoop);
        Assert.Contains(group.Loops, thread => thread.Loop == worker.Loop);

        await StopAndCheckAsync(host, group);
        Assert.True(worker.ExecuteTask!.IsCompletedSuccessfully);
        Assert.True(worker.SawStop);
    }

    [Fact]
    public async Task A_throwing_callback_is_reported_to_the_hosts_logger_with_its_name()
    {
        // The report of this callback, not any error: a loop in debug mode also reports the process's unobserved task
        // exceptions (TaskScheduler.UnobservedTaskException), and other tests running beside this one leave some.
        var logs = new CapturingLoggerProvider { ErrorFilter = e => e.Message.Contains(nameof(ThrowingCallback), StringComparison.Ordinal) };
        using IHost host = BuildHost(logs, debug: true);
        await host.StartAsync().WaitAsync(Timeout);
        LoopGroup group = host.Services.GetRequiredService<EventLoopService>().Group;

        group.Loops[0].Loop.CallSoonThreadSafe(ThrowingCallback);
        LogEntry entry = await logs.FirstError.Task.WaitAsync(Timeout);
        Assert.Equal("EventLoop", entry.Category);
        Assert.Equal(LogLevel.Error, entry.Level);
        Assert.Equal(LoopLogging.CallbackException, entry.EventId);
        Assert.True(entry.Exception is InvalidOperationException, $"the first error logged was not the callback's: {entry.Message}{Environment.NewLine}{entry.Exception}");
        Assert.Equal("callback failed on purpose", entry.Exception!.Message);
        Assert.Contains(nameof(ThrowingCallback), entry.Message, StringComparison.Ordinal);

        await StopAndCheckAsync(host, group);
    }

    private static void ThrowingCallback() => throw new InvalidOperationException("callback failed on purpose");

    internal sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

    internal sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<LogEntry> Entries { get; } = new();

        public TaskCompletionSource<LogEntry> FirstError { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Which errors count for <see cref="FirstError"/>; null: all.</summary>
        public Func<LogEntry, bool>? ErrorFilter { get; init; }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var entry = new LogEntry(category, logLevel, eventId, formatter(state, exception), exception);
                provider.Entries.Enqueue(entry);
                if (logLevel >= LogLevel.Error && (provider.ErrorFilter?.Invoke(entry) ?? true))
                {
                    provider.FirstError.TrySetResult(entry);
                }
            }
        }
    }
}

/// <summary>A worker that ticks on its loop every few milliseconds until the host stops it.</summary>
internal sealed class TickingWorker(EventLoopService loops) : LoopBackgroundService(loops)
{
    private int _ticks;

    public TaskCompletionSource TickedThrice { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool AlwaysOnItsLoop { get; private set; } = true;

    public bool SawStop { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Loop loop = global::EventLoop.Loop.Current;
        try
        {
            while (true)
            {
                await loop.DelayAsync(TimeSpan.FromMilliseconds(5), stoppingToken);
                AlwaysOnItsLoop &= loop.IsOnLoopThread && loop == Loop;
                if (++_ticks == 3)
                {
                    TickedThrice.TrySetResult();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            SawStop = true;
        }
    }
}

public sealed class ManagedHostingTests : HostingTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvHostingTests : HostingTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
