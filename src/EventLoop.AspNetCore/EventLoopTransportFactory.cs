using System.Net;
using System.Net.Sockets;
using EventLoop.AspNetCore.Internal;
using EventLoop.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace EventLoop.AspNetCore;

/// <summary>
/// Kestrel's transport on a <see cref="LoopGroup"/>: every bound endpoint listens on every loop of one group (see
/// <see cref="LoopGroup.ListenTcpAsync"/>), and each accepted connection lives on its loop for its whole life. Registered by
/// <see cref="Microsoft.AspNetCore.Hosting.EventLoopWebHostBuilderExtensions.UseEventLoop"/>.
/// </summary>
/// <remarks>
/// Which group: when the app also registered the Generic Host's group (<c>services.AddEventLoop()</c>, an
/// <see cref="EventLoopService"/>) and <see cref="EventLoopTransportOptions.UseHostedGroup"/> is true (the default), Kestrel
/// runs on that group: one set of loops for the app's workers and its connections, started and stopped by the host (its
/// policy and size come from the <c>EventLoop</c> configuration section; the transport's <see cref="EventLoopTransportOptions.Policy"/>,
/// <see cref="EventLoopTransportOptions.LoopCount"/> and <see cref="EventLoopTransportOptions.LoopOptions"/> are then
/// ignored, with a warning when set). Otherwise the transport starts a group of its own at the first bind and stops it
/// when the host's services are disposed.
/// </remarks>
public sealed class EventLoopTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IAsyncDisposable
{
    private readonly EventLoopTransportOptions _options;
    private readonly ILogger _logger;
    private readonly EventLoopService? _hosted;
    private readonly object _lock = new();
    private LoopGroup? _group;
    private bool _ownsGroup;
    private bool _disposed;

    /// <summary>Creates the factory (the host's container does, from the options <c>UseEventLoop</c> configured).</summary>
    /// <param name="options">The transport's options.</param>
    /// <param name="loggerFactory">Where the transport's own loops report; null for nowhere.</param>
    /// <param name="hostedLoops">The host's loop group service, when <c>AddEventLoop</c> registered one: the transport runs on its group (see the remarks).</param>
    public EventLoopTransportFactory(IOptions<EventLoopTransportOptions> options, ILoggerFactory? loggerFactory = null, EventLoopService? hostedLoops = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _options.Validate();
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("EventLoop.AspNetCore");
        _hosted = _options.UseHostedGroup ? hostedLoops : null;
        if (_hosted is not null && (_options.Policy is not null || _options.LoopCount is not null || _options.LoopOptions is not null))
        {
            _logger.LogWarning(
                "EventLoop transport: Kestrel runs on the host's loop group (AddEventLoop); the transport's Policy, LoopCount and LoopOptions are ignored. " +
                "Configure the group with AddEventLoop or the EventLoop configuration section, or set UseHostedGroup = false for a group of the transport's own.");
        }
    }

    /// <summary>The loop group serving connections, once the first endpoint is bound; null before.</summary>
    public LoopGroup? Group => _group;

    /// <summary>Whether the transport runs on the host's group (<c>AddEventLoop</c>) rather than a group it started and stops itself.</summary>
    public bool UsesHostedGroup => _hosted is not null;

    /// <summary>Whether this transport can bind <paramref name="endpoint"/>: IP endpoints only.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint;

    /// <summary>Listens on <paramref name="endpoint"/> on every loop of the group.</summary>
    /// <exception cref="AddressInUseException">The address is in use.</exception>
    /// <exception cref="NotSupportedException">The endpoint is not an <see cref="IPEndPoint"/>.</exception>
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (endpoint is not IPEndPoint ip)
        {
            throw new NotSupportedException($"The EventLoop transport binds IP endpoints only, not {endpoint.GetType().Name} '{endpoint}'.");
        }

        LoopGroup group = GetOrStartGroup();
        var listener = new LoopConnectionListener(_options);
        try
        {
            await listener.StartAsync(group, ip, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new AddressInUseException(ex.Message, ex);
        }

        return listener;
    }

    private LoopGroup GetOrStartGroup()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_group is null && _hosted is not null)
            {
                // The host started its group before Kestrel binds (WebApplication starts the app's hosted services before the
                // server), and stops it after Kestrel has closed its connections. Group throws, naming the cause, otherwise.
                _group = _hosted.Group;
                _logger.LogDebug("EventLoop transport: serving on the host's {Group}", _group);
            }
            else if (_group is null)
            {
                _ownsGroup = true;
                LoopOptions loopOptions = _options.LoopOptions ?? LoopLogging.CreateOptions(_logger);
                _group = LoopGroup.Start(_options.LoopCount, _options.Policy, loopOptions);
                _logger.LogDebug("EventLoop transport: started {Group}", _group);
            }

            return _group;
        }
    }

    /// <summary>Stops the transport's own loop group (after Kestrel has closed its listeners and connections); the host's group is the host's to stop.</summary>
    public async ValueTask DisposeAsync()
    {
        LoopGroup? group;
        lock (_lock)
        {
            _disposed = true;
            group = _ownsGroup ? _group : null;
        }

        if (group is not null)
        {
            await group.DisposeAsync().ConfigureAwait(false);
        }
    }
}
