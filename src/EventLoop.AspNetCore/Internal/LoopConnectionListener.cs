using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;

namespace EventLoop.AspNetCore.Internal;

/// <summary>
/// One bound endpoint: a <see cref="LoopGroupServer"/> whose handler wraps each connection in a
/// <see cref="LoopConnectionContext"/>, queues it for Kestrel's <see cref="AcceptAsync"/>, and runs its pumps on the
/// connection's loop until Kestrel disposes it.
/// </summary>
internal sealed class LoopConnectionListener(EventLoopTransportOptions options) : IConnectionListener
{
    private readonly Channel<LoopConnectionContext> _accepted = Channel.CreateUnbounded<LoopConnectionContext>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
    private readonly ConcurrentDictionary<LoopConnectionContext, byte> _live = new();
    private LoopGroupServer? _server;
    private Task? _stopping;
    private volatile bool _unbound;

    public EndPoint EndPoint { get; private set; } = new IPEndPoint(IPAddress.None, 0);

    public async Task StartAsync(LoopGroup group, IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        _server = await group.ListenTcpAsync(endpoint, ServeAsync, options.Tcp, cancellationToken).ConfigureAwait(false);
        EndPoint = _server.LocalEndPoint;
    }

    /// <summary>The connection's life on its loop: queued for Kestrel, then pumped until Kestrel is done with it.</summary>
    private async Task ServeAsync(Connection connection)
    {
        if (_unbound)
        {
            return; // the server closes it
        }

        var context = new LoopConnectionContext(connection, Loop.Current, options);
        _live[context] = 0;
        try
        {
            if (!_accepted.Writer.TryWrite(context))
            {
                return;
            }

            await context.RunAsync();
        }
        finally
        {
            _live.TryRemove(context, out _);
        }
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _accepted.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (_accepted.Reader.TryRead(out LoopConnectionContext? context))
                {
                    return context;
                }
            }
        }
        catch (ChannelClosedException)
        {
        }

        return null; // unbound
    }

    /// <summary>Stops accepting: the listening sockets close; the connections already accepted go on.</summary>
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbound = true;
        _accepted.Writer.TryComplete();
        while (_accepted.Reader.TryRead(out LoopConnectionContext? notAccepted))
        {
            notAccepted.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException("The server stopped listening before this connection was accepted."));
        }

        // Handlers end when Kestrel disposes their connections; the stop waits for that, so it is awaited only at dispose.
        _stopping ??= _server?.StopAsync(Timeout.InfiniteTimeSpan) ?? Task.CompletedTask;
        return default;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);

        // Kestrel disposes its listeners after closing (or aborting) its connections; any left over are aborted here.
        foreach (LoopConnectionContext context in _live.Keys)
        {
            context.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException("The server's listener was disposed with this connection still open."));
        }

        await _stopping!.ConfigureAwait(false);
    }
}
