using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;
using EventLoop.Transports.Unix;

namespace EventLoop.Transports.Sockets;

/// <summary>
/// A TCP or Unix domain socket listener over <see cref="Socket"/>; accepts resume on the loop thread. Accepting survives what
/// Linux's <c>accept(2)</c> documents as transient: a connection aborted or reset before it was taken, and
/// running out of descriptors or buffers (EMFILE, ENFILE, ENOBUFS): the first such error of an episode is
/// reported, then the listener backs off briefly and keeps accepting, as libuv's listener and Kestrel do,
/// keeping a few descriptors free for the process meanwhile (<see cref="DescriptorReserve"/>).
/// </summary>
internal sealed class SocketListener : ConnectionListener
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(200);
    private const int SolSocket = 1, SoReusePort = 15; // Linux's SOL_SOCKET and SO_REUSEPORT (TcpOptions.ReusePort is Linux only)

    private readonly Loop _loop;
    private readonly Socket _socket;
    private readonly TcpOptions _options;
    private readonly EndPoint _localEndPoint;
    private readonly ResourceNode _node;
    private readonly DescriptorReserve _reserve = new();
    private bool _disposed;
    private bool _acceptErrorReported;
    private readonly UnixSocketPath? _unixPath; // null for TCP
    private readonly UnixSocketPath.FileIdentity? _boundFile;

    private SocketListener(Loop loop, Socket socket, TcpOptions options, UnixSocketPath? unixPath = null)
    {
        _loop = loop;
        _socket = socket;
        _options = options;
        _unixPath = unixPath;
        _boundFile = unixPath?.IdentifyBoundFile();
        _localEndPoint = unixPath?.EndPoint ?? socket.LocalEndPoint!;
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        _reserve.TryAcquire();
    }

    public override EndPoint LocalEndPoint => _localEndPoint;

    internal static SocketListener Listen(Loop loop, EndPoint endpoint, TcpOptions options)
    {
        if (endpoint is not IPEndPoint ip)
        {
            throw new ArgumentException(
                $"Listening needs an IPEndPoint (an IP address and a port); got {endpoint.GetType().Name} '{endpoint}'.", nameof(endpoint));
        }

        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        loop.OpenSocketCount++;
        try
        {
            if (ip.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            if (options.ReusePort)
            {
                socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1)); // no SocketOptionName for it
            }

            socket.Bind(ip);
            socket.Listen(options.Backlog);
            return new SocketListener(loop, socket, options);
        }
        catch (SocketException ex)
        {
            SocketConnection.CloseUntracked(loop, socket);
            throw new SocketException((int)ex.SocketErrorCode, $"Listening on {ip} failed: {ex.SocketErrorCode} ({ex.Message})");
        }
        catch
        {
            SocketConnection.CloseUntracked(loop, socket);
            throw;
        }
    }

    /// <summary>
    /// Accepts on a listening socket made elsewhere (<see cref="Loop.ListenInheritedAsync"/>), counted in
    /// <see cref="Loop.OpenSocketCount"/> by the caller; the listener owns it now, and closes it if this throws.
    /// </summary>
    internal static SocketListener ListenInherited(Loop loop, Socket socket, TcpOptions options)
    {
        try
        {
            return new SocketListener(loop, socket, options);
        }
        catch
        {
            SocketConnection.CloseUntracked(loop, socket);
            throw;
        }
    }

    /// <summary>Listens on a Unix domain socket (a stale socket file at the path is removed first, see <see cref="UnixSocketPath"/>).</summary>
    internal static SocketListener ListenUnix(Loop loop, UnixSocketPath path, TcpOptions options)
    {
        Socket socket;
        try
        {
            socket = path.BindAndListen(options.Backlog);
        }
        catch (SocketException ex)
        {
            throw new SocketException((int)ex.SocketErrorCode, $"Listening on the Unix socket {path} failed: {ex.SocketErrorCode} ({ex.Message})");
        }

        loop.OpenSocketCount++;
        try
        {
            return new SocketListener(loop, socket, options, path);
        }
        catch (SocketException ex)
        {
            SocketConnection.CloseUntracked(loop, socket);
            throw new SocketException((int)ex.SocketErrorCode, $"Listening on the Unix socket {path} failed: {ex.SocketErrorCode} ({ex.Message})");
        }
        catch
        {
            SocketConnection.CloseUntracked(loop, socket);
            throw;
        }
    }

    /// <summary>Connects to a Unix domain socket.</summary>
    internal static async ValueTask<Connection> ConnectUnixAsync(Loop loop, UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken)
    {
        try
        {
            return await ConnectOneAsync(loop, path.EndPoint, options, cancellationToken).ConfigureAwait(true);
        }
        catch (SocketException ex)
        {
            throw new SocketException((int)ex.SocketErrorCode, $"Connecting to the Unix socket {path} failed: {ex.SocketErrorCode} ({ex.Message})");
        }
    }

    internal static ValueTask<Connection> ConnectAsync(Loop loop, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        TcpConnect.ConnectAsync(loop, endpoint, options.HappyEyeballsDelay, (Loop: loop, Options: options),
            static (state, ip, token) => ConnectOneAsync(state.Loop, ip, state.Options, token), cancellationToken);

    private static async ValueTask<Connection> ConnectOneAsync(Loop loop, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken)
    {
        var socket = endpoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        loop.OpenSocketCount++;
        var pending = new PendingConnect(socket);
        loop.RegisterShutdown(pending);
        loop.PendingIo++;
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            SocketConnection.CloseUntracked(loop, socket);
            if (pending.ClosedByShutdown)
            {
                throw new OperationCanceledException("The connect was cancelled because the loop shut down.", ex);
            }

            throw;
        }
        finally
        {
            loop.PendingIo--;
            loop.UnregisterShutdown(pending);
        }

        return SocketConnection.Open(loop, socket, options, endpoint);
    }

    public override async ValueTask<Connection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        TimeSpan backoff = TimeSpan.FromMilliseconds(5);
        while (true)
        {
            Socket accepted;
            _loop.PendingIo++;
            try
            {
                accepted = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(true);
            }
            catch (SocketException ex) when (_disposed && ex.SocketErrorCode == SocketError.OperationAborted)
            {
                throw new ObjectDisposedException(ToString(), ex);
            }
            catch (ObjectDisposedException) when (_disposed)
            {
                throw new ObjectDisposedException(ToString());
            }
            catch (SocketException ex) when (!_disposed && IsTransient(ex.SocketErrorCode, out bool exhausted))
            {
                ReportAcceptError(ex);
                if (exhausted)
                {
                    // Out of descriptors: give the reserve back to the process (see DescriptorReserve), and accept
                    // again only once it can be taken back. Meanwhile the connection waits in the kernel's backlog.
                    _reserve.Release();
                    do
                    {
                        await BackOffAsync(backoff, cancellationToken).ConfigureAwait(true);
                        backoff = backoff * 2 > MaxBackoff ? MaxBackoff : backoff * 2;
                    }
                    while (!_reserve.TryAcquire());
                }

                continue;
            }
            finally
            {
                _loop.PendingIo--;
            }

            _loop.OpenSocketCount++;
            if (_disposed)
            {
                SocketConnection.CloseUntracked(_loop, accepted);
                throw new ObjectDisposedException(ToString());
            }

            try
            {
                SocketConnection connection = SocketConnection.Open(_loop, accepted, _options);
                _acceptErrorReported = false;
                return connection;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // The peer went away before the connection was set up (Open closed the socket): take the next one.
            }
        }
    }

    /// <summary>Errors after which accepting goes on (accept(2), "Error handling"); <paramref name="exhausted"/> when backing off helps.</summary>
    private static bool IsTransient(SocketError error, out bool exhausted)
    {
        exhausted = error is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable;
        return exhausted || error is SocketError.ConnectionAborted or SocketError.ConnectionReset
            or SocketError.NetworkDown or SocketError.NetworkUnreachable or SocketError.HostUnreachable
            or SocketError.HostDown or SocketError.ProtocolOption or SocketError.OperationNotSupported
            or SocketError.TimedOut or SocketError.Interrupted or SocketError.TryAgain;
    }

    private void ReportAcceptError(SocketException ex)
    {
        if (!_acceptErrorReported)
        {
            _acceptErrorReported = true;
            _loop.ReportException(
                $"Accepting on {_localEndPoint} failed ({ex.SocketErrorCode}); the listener keeps accepting and backs off " +
                "while descriptors are exhausted. Further accept errors are not reported until an accept succeeds.", ex, this);
        }
    }

    private async ValueTask BackOffAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await _loop.DelayAsync(delay, cancellationToken).ConfigureAwait(true);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The loop is shutting down: it disposes this listener, and the next accept says so.
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
    }

    /// <summary>Stops listening. Safe from any thread: off the loop thread it hops to the loop (see <see cref="LoopHop"/>).</summary>
    public override ValueTask DisposeAsync()
    {
        if (!_loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(_loop, this, static l => l.DisposeAsync());
        }

        if (!_disposed)
        {
            _disposed = true;
            _loop.UnregisterShutdown(_node);
            SocketConnection.CloseUntracked(_loop, _socket);
            _unixPath?.RemoveBoundFile(_boundFile);
            _reserve.Dispose();
        }

        return default;
    }

    public override string ToString() => _unixPath is null ? $"TCP listener on {_localEndPoint}" : $"Unix listener on {_unixPath}";

    private sealed class ResourceNode(SocketListener owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync();
    }

    /// <summary>A connect in flight: the loop's shutdown closes its socket, which ends the connect at once.</summary>
    private sealed class PendingConnect(Socket socket) : ShutdownNode
    {
        public bool ClosedByShutdown { get; private set; }

        internal override bool IsResource => true;

        internal override void OnShutdown()
        {
            ClosedByShutdown = true;
            socket.Dispose();
        }
    }
}
