using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EventLoop.Hosting;

/// <summary>
/// A <see cref="LoopGroup"/> as a hosted service: started with the host (before the services registered after it), stopped
/// gracefully with it (Ctrl+C, SIGTERM or <see cref="IHostApplicationLifetime.StopApplication"/>: the group's servers stop
/// accepting, their handlers get the group's stop timeout, the loops shut down and close every handle). Inject it to reach
/// the loops: <c>service.Group.Next()</c>, or <c>service.Group.Loops[0].RunAsync(...)</c>.
/// </summary>
public sealed class EventLoopService : IHostedService, IAsyncDisposable
{
    private readonly EventLoopHostOptions _options;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private LoopGroup? _group;
    private bool _stopped;

    /// <summary>Created by the host's container (see <see cref="Microsoft.Extensions.DependencyInjection.EventLoopServiceCollectionExtensions.AddEventLoop"/>).</summary>
    public EventLoopService(IOptions<EventLoopHostOptions> options, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options.Value;
        _logger = loggerFactory.CreateLogger("EventLoop");
    }

    /// <summary>The running group.</summary>
    /// <exception cref="InvalidOperationException">The host has not started it yet, or has stopped it.</exception>
    public LoopGroup Group
    {
        get
        {
            lock (_lock)
            {
                if (_group is null || _stopped)
                {
                    throw new InvalidOperationException(_stopped
                        ? "The EventLoop group has been stopped with the host."
                        : "The EventLoop group starts with the host (IHostedService.StartAsync); it is not running yet. Register services that use it after AddEventLoop.");
                }

                return _group;
            }
        }
    }

    /// <summary>Starts the group's loops.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        LoopPolicy policy = _options.ResolvePolicy();
        var template = new LoopOptions();
        if (_options.Debug is bool debug)
        {
            template.Debug = debug;
        }

        if (_options.SlowCallbackThreshold is TimeSpan threshold)
        {
            template.SlowCallbackThreshold = threshold;
        }

        LoopGroup group = LoopGroup.Start(_options.LoopCount, policy, LoopLogging.CreateOptions(_logger, template));
        lock (_lock)
        {
            if (_group is not null)
            {
                _ = group.DisposeAsync();
                throw new InvalidOperationException("The EventLoop service was started twice.");
            }

            _group = group;
        }

        _logger.LogInformation("EventLoop: started {Count} {Policy} loop(s)", _options.LoopCount, policy.Name);
        return Task.CompletedTask;
    }

    /// <summary>Stops the group gracefully; gives up waiting when <paramref name="cancellationToken"/> (the host's shutdown timeout) fires.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        LoopGroup? group;
        lock (_lock)
        {
            group = _stopped ? null : _group;
            _stopped = true;
        }

        if (group is null)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.StopTimeout);
        try
        {
            await group.DisposeAsync().AsTask().WaitAsync(timeout.Token).ConfigureAwait(false);
            _logger.LogInformation("EventLoop: the loops stopped");
        }
        catch (OperationCanceledException)
        {
            _logger.LogWarning("EventLoop: the loops did not stop within the shutdown timeout; the host goes on stopping");
        }
    }

    /// <summary>Stops the group if the host did not (a host disposed without being stopped).</summary>
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);
}
