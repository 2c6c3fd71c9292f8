using System.Net;
using System.Net.Security;
using EventLoop.Internal;

namespace EventLoop.Transports.Tls;

/// <summary>
/// A TLS listener over a TCP listener. An accept pump takes every TCP connection as it arrives and starts its
/// handshake at once, so handshakes run side by side and a slow or silent client holds up nobody; a connection
/// is handed to <see cref="AcceptAsync"/> only once its handshake completed. A handshake that fails or times out
/// (<see cref="TlsOptions.HandshakeTimeout"/>) closes that connection and is reported once
/// (<see cref="TlsOptions.HandshakeFailed"/>, else the loop's exception handler); the listener goes on.
/// Connections handshaking plus those waiting to be accepted are bounded by <see cref="TcpOptions.Backlog"/>:
/// beyond that the pump stops taking connections from the TCP listener, and the kernel's backlog applies.
/// </summary>
internal sealed class TlsListener : ConnectionListener
{
    private readonly Loop _loop;
    private readonly ConnectionListener _inner;
    private readonly Func<SslStream, CancellationToken, Task> _authenticate;
    private readonly TcpOptions _options;
    private readonly TlsOptions _tlsOptions;
    private readonly ResourceNode _node;
    private readonly Queue<TlsConnection> _ready = new();
    private readonly Queue<TaskCompletionSource<Connection>> _waiters = new();
    private readonly HashSet<Connection> _handshaking = [];
    private TaskCompletionSource? _room;
    private bool _disposed;
    private bool _stopped; // the accept pump ended: the TCP listener is gone

    private TlsListener(Loop loop, ConnectionListener inner, Func<SslStream, CancellationToken, Task> authenticate, TcpOptions options, TlsOptions tlsOptions)
    {
        _loop = loop;
        _inner = inner;
        _authenticate = authenticate;
        _options = options;
        _tlsOptions = tlsOptions;
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
    }

    /// <summary>Starts the accept pump over <paramref name="inner"/>, which the listener now owns. Loop thread.</summary>
    internal static TlsListener Start(Loop loop, ConnectionListener inner, Func<SslStream, CancellationToken, Task> authenticate, TcpOptions options, TlsOptions tlsOptions)
    {
        var listener = new TlsListener(loop, inner, authenticate, options, tlsOptions);
        _ = listener.AcceptLoopAsync();
        return listener;
    }

    public override EndPoint LocalEndPoint => _inner.LocalEndPoint;

    public override ValueTask<Connection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Connection>(cancellationToken);
        }

        if (_ready.TryDequeue(out TlsConnection? ready))
        {
            SignalRoom();
            return new ValueTask<Connection>(ready);
        }

        ObjectDisposedException.ThrowIf(_stopped, this);
        return WaitForConnectionAsync(cancellationToken);
    }

    private async ValueTask<Connection> WaitForConnectionAsync(CancellationToken cancellationToken)
    {
        // Waits cancelled earlier stay queued until a connection skips them; drop those at the head.
        while (_waiters.TryPeek(out TaskCompletionSource<Connection>? stale) && stale.Task.IsCompleted)
        {
            _waiters.Dequeue();
        }

        var waiter = new TaskCompletionSource<Connection>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiters.Enqueue(waiter);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static (state, token) => ((TaskCompletionSource<Connection>)state!).TrySetCanceled(token), waiter);
        return await waiter.Task.ConfigureAwait(true);
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (!_disposed)
            {
                while (_handshaking.Count + _ready.Count >= _options.Backlog && !_disposed)
                {
                    _room = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    await _room.Task.ConfigureAwait(true);
                }

                if (_disposed)
                {
                    break;
                }

                Connection inner = await _inner.AcceptAsync().ConfigureAwait(true);
                if (_disposed)
                {
                    inner.Abort();
                    break;
                }

                _handshaking.Add(inner);
                _ = HandshakeAsync(inner);
            }
        }
        catch (ObjectDisposedException)
        {
            // The TCP listener was disposed: by ours, or by the loop's shutdown.
        }
        catch (Exception ex)
        {
            _loop.ReportException($"Accepting on {LocalEndPoint} failed; the TLS listener stopped accepting.", ex, this);
        }

        _stopped = true;
        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            waiter.TrySetException(new ObjectDisposedException(ToString()));
        }
    }

    private async Task HandshakeAsync(Connection inner)
    {
        TlsConnection connection;
        try
        {
            connection = await TlsHandshake.AuthenticateAsync(_loop, inner, _authenticate, _options, _tlsOptions, CancellationToken.None).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            _handshaking.Remove(inner);
            SignalRoom();
            if (!_disposed && !_loop.IsShuttingDown)
            {
                ReportHandshakeFailure(inner.RemoteEndPoint, ex);
            }

            return;
        }

        _handshaking.Remove(inner);
        if (_disposed)
        {
            connection.Abort(new ConnectionAbortedException("The listener was disposed before the connection was accepted."));
            return;
        }

        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            if (waiter.TrySetResult(connection))
            {
                SignalRoom();
                return;
            }
        }

        _ready.Enqueue(connection);
    }

    private void ReportHandshakeFailure(EndPoint? peer, Exception failure)
    {
        if (_tlsOptions.HandshakeFailed is { } callback)
        {
            try
            {
                callback(peer, failure);
            }
            catch (Exception ex)
            {
                _loop.ReportException("A TlsOptions.HandshakeFailed callback threw", ex, callback);
            }

            return;
        }

        _loop.ReportException(
            $"A TLS handshake on {LocalEndPoint} failed; that connection was closed and the listener goes on accepting " +
            "(TlsOptions.HandshakeFailed takes these reports instead).", failure, this);
    }

    private void SignalRoom() => _room?.TrySetResult();

    /// <summary>
    /// Stops listening. Connections already accepted stay open; those still handshaking or not yet accepted are
    /// closed. Safe from any thread: off the loop thread it hops to the loop.
    /// </summary>
    public override ValueTask DisposeAsync()
    {
        if (!_loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(_loop, this, static l => l.DisposeAsync());
        }

        if (_disposed)
        {
            return default;
        }

        _disposed = true;
        _loop.UnregisterShutdown(_node);
        SignalRoom();
        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            waiter.TrySetException(new ObjectDisposedException(ToString()));
        }

        while (_ready.TryDequeue(out TlsConnection? connection))
        {
            connection.Abort(new ConnectionAbortedException("The listener was disposed before the connection was accepted."));
        }

        foreach (Connection inner in _handshaking.ToArray())
        {
            inner.Abort(new ConnectionAbortedException("The listener was disposed during the TLS handshake."));
        }

        return _inner.DisposeAsync();
    }

    public override string ToString() => $"TLS listener on {LocalEndPoint}";

    private sealed class ResourceNode(TlsListener owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync();
    }
}
