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
/// <see cref="Microsoft.AspNetCore.Hosting.EventLoopWebHostBuilderExtensions.UseEventLoop"/>; the group starts at the first bind and
/// stops when the host's services are disposed.
/// </summary>
public sealed class EventLoopTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IAsyncDisposable
{
    private readonly EventLoopTransportOptions _options;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private LoopGroup? _group;
    private bool _disposed;

    /// <summary>Creates the factory (the host's container does, from the options <c>UseEventLoop</c> configured).</summary>
    public EventLoopTransportFactory(IOptions<EventLoopTransportOptions> options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _options.Validate();
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("EventLoop.AspNetCore");
    }

    /// <summary>The loop group serving connections, once the first endpoint is bound; null before.</summary>
    public LoopGroup? Group => _group;

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
            if (_group is null)
            {
                LoopOptions loopOptions = _options.LoopOptions ?? LoopLogging.CreateOptions(_logger);
                _group = LoopGroup.Start(_options.LoopCount, _options.Policy, loopOptions);
                _logger.LogDebug("EventLoop transport: started {Group}", _group);
            }

            return _group;
        }
    }

    /// <summary>Stops the loop group (after Kestrel has closed its listeners and connections).</summary>
    public async ValueTask DisposeAsync()
    {
        LoopGroup? group;
        lock (_lock)
        {
            _disposed = true;
            group = _group;
        }

        if (group is not null)
        {
            await group.DisposeAsync().ConfigureAwait(false);
        }
    }
}
