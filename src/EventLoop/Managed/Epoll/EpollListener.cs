using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;
using EventLoop.Transports.Sockets;
using EventLoop.Transports.Unix;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// A TCP or Unix domain socket listener of the managed loop's own poller. The listening socket is made with <see cref="Socket"/>
/// (binding errors as .NET reports them) and watched level-triggered; when it is readable, connections are taken
/// with <c>accept4</c> and queued for <see cref="AcceptAsync"/>, up to <see cref="TcpOptions.Backlog"/> of them,
/// after which the listener stops watching until the application accepts, so the kernel's backlog applies again.
/// Accept errors that leave the listener usable (ECONNABORTED, and EMFILE/ENFILE/ENOBUFS/ENOMEM: out of
/// descriptors or memory) are reported once per episode; while descriptors are exhausted the listener gives its
/// descriptor reserve back to the process and stops watching, and tries again on a back-off timer.
/// </summary>
internal sealed class EpollListener : ConnectionListener, IEpollHandler
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(200);

    private readonly ManagedLoop _loop;
    private readonly EpollPoller _poller;
    private readonly Socket _socket;
    private readonly int _fd;
    private readonly TcpOptions _options;
    private readonly EndPoint _localEndPoint;
    private readonly ResourceNode _node;
    private readonly Queue<EpollConnection> _accepted = new();
    private readonly Queue<TaskCompletionSource<Connection>> _waiters = new();
    private readonly DescriptorReserve _reserve = new();
    private readonly long _token;
    private bool _watching = true;
    private bool _backingOff;
    private TimeSpan _backoff = TimeSpan.FromMilliseconds(5);
    private bool _acceptErrorReported;
    private bool _disposed;
    private readonly UnixSocketPath? _unixPath; // null for TCP
    private readonly UnixSocketPath.FileIdentity? _boundFile;

    private EpollListener(ManagedLoop loop, EpollPoller poller, Socket socket, TcpOptions options, UnixSocketPath? unixPath = null)
    {
        _unixPath = unixPath;
        _boundFile = unixPath?.IdentifyBoundFile();
        _loop = loop;
        _poller = poller;
        _socket = socket;
        _fd = (int)socket.SafeHandle.DangerousGetHandle();
        _options = options;
        _localEndPoint = unixPath?.EndPoint ?? socket.LocalEndPoint!;
        long token = poller.Add(_fd, Linux.EpollIn, this);
        if (token < 0)
        {
            throw Linux.CreateException((int)token, "epoll_ctl");
        }

        _token = token;
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        _reserve.TryAcquire();
    }

    public override EndPoint LocalEndPoint => _localEndPoint;

    internal static EpollListener Listen(ManagedLoop loop, EpollPoller poller, EndPoint endpoint, TcpOptions options)
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
                int status = Linux.SetReusePort((int)socket.SafeHandle.DangerousGetHandle());
                if (status < 0)
                {
                    Linux.Throw(status, "setsockopt(SO_REUSEPORT)");
                }
            }

            socket.Bind(ip);
            socket.Listen(options.Backlog);
            socket.Blocking = false;
            return new EpollListener(loop, poller, socket, options);
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
    /// A Unix socket's file is left alone: whoever bound it owns it.
    /// </summary>
    internal static EpollListener ListenInherited(ManagedLoop loop, EpollPoller poller, Socket socket, TcpOptions options)
    {
        try
        {
            socket.Blocking = false;
            return new EpollListener(loop, poller, socket, options);
        }
        catch
        {
            SocketConnection.CloseUntracked(loop, socket);
            throw;
        }
    }

    /// <summary>Listens on a Unix domain socket (a stale socket file at the path is removed first, see <see cref="UnixSocketPath"/>).</summary>
    internal static EpollListener ListenUnix(ManagedLoop loop, EpollPoller poller, UnixSocketPath path, TcpOptions options)
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
            socket.Blocking = false;
            return new EpollListener(loop, poller, socket, options, path);
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

    public override ValueTask<Connection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Connection>(cancellationToken);
        }

        if (_accepted.TryDequeue(out EpollConnection? ready))
        {
            Watch(true); // room in the queue again
            return new ValueTask<Connection>(ready);
        }

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
        Watch(true);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static (state, token) => ((TaskCompletionSource<Connection>)state!).TrySetCanceled(token), waiter);
        return await waiter.Task.ConfigureAwait(true);
    }

    public void OnEvents(uint events)
    {
        while (!_disposed && !_backingOff && (_waiters.Count > 0 || _accepted.Count < _options.Backlog))
        {
            int fd = Linux.Accept(_fd);
            if (fd < 0)
            {
                if (fd == -Linux.EAGAIN || fd == -Linux.EINTR)
                {
                    return;
                }

                OnAcceptError(fd);
                if (_backingOff)
                {
                    return;
                }

                continue; // ECONNABORTED, EPROTO: that connection is gone, take the next
            }

            _loop.OpenSocketCount++;
            EpollConnection? connection = Open(fd);
            if (connection is null)
            {
                continue;
            }

            _acceptErrorReported = false;
            _backoff = TimeSpan.FromMilliseconds(5);
            Deliver(connection);
        }

        Watch(_waiters.Count > 0 || _accepted.Count < _options.Backlog);
    }

    /// <summary>Wraps an accepted descriptor; null (with it closed) when the peer is already gone or an option was refused.</summary>
    private EpollConnection? Open(int fd)
    {
        if (_localEndPoint.AddressFamily == AddressFamily.Unix) // bound here or inherited
        {
            return OpenUnix(fd);
        }

        int status = Linux.SetNoDelay(fd, _options.NoDelay);
        if (status == 0 && _options.KeepAlive)
        {
            status = Linux.SetKeepAlive(fd, _options.KeepAliveSeconds);
        }

        if (status < 0)
        {
            Linux.Close(fd);
            _loop.OpenSocketCount--;
            if (status != -Linux.ECONNABORTED && status != -104 /* ECONNRESET */ && status != -22 /* EINVAL: already reset */)
            {
                _loop.ReportException($"An accepted connection on {_localEndPoint} refused its TcpOptions; it was closed.",
                    Linux.CreateException(status, "Setting the options of an accepted connection"), this);
            }

            return null;
        }

        var connection = new EpollConnection(_loop, _poller, fd, _options, _localEndPoint.AddressFamily);
        try
        {
            connection.Start();
        }
        catch (SocketException)
        {
            return null; // Start closed it
        }

        return connection;
    }

    /// <summary>Wraps an accepted Unix domain socket (no options to apply; its peer is usually unnamed).</summary>
    private EpollConnection? OpenUnix(int fd)
    {
        var connection = new EpollConnection(_loop, _poller, fd, _options, _localEndPoint, Linux.GetUnixEndPoint(fd, peer: true), "Unix");
        try
        {
            connection.Start();
        }
        catch (SocketException)
        {
            return null; // Start closed it
        }

        return connection;
    }

    private void Deliver(EpollConnection connection)
    {
        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            if (waiter.TrySetResult(connection))
            {
                return;
            }
        }

        _accepted.Enqueue(connection);
    }

    private void OnAcceptError(int status)
    {
        bool exhausted = status is -Linux.EMFILE or -Linux.ENFILE or -Linux.ENOBUFS or -Linux.ENOMEM;
        if (!_acceptErrorReported)
        {
            _acceptErrorReported = true;
            _loop.ReportException(
                $"Accepting on {_localEndPoint} failed ({Linux.CreateException(status, "accept").SocketErrorCode}); the listener keeps accepting" +
                (exhausted ? ", backing off while descriptors are exhausted" : "") + ". Further accept errors are not reported until an accept succeeds.",
                Linux.CreateException(status, "accept"), this);
        }

        if (exhausted)
        {
            // Give the reserve back to the process (the runtime needs descriptors too), stop watching (level-triggered
            // epoll would report the same pending connection at once), and try again after a back-off.
            _reserve.Release();
            _backingOff = true;
            Watch(false);
            _loop.CallLater(_backoff, static l => l.EndBackoff(), this);
            _backoff = _backoff * 2 > MaxBackoff ? MaxBackoff : _backoff * 2;
        }
    }

    private void EndBackoff()
    {
        if (_disposed)
        {
            return;
        }

        if (!_reserve.TryAcquire())
        {
            _loop.CallLater(_backoff, static l => l.EndBackoff(), this); // descriptors still short
            _backoff = _backoff * 2 > MaxBackoff ? MaxBackoff : _backoff * 2;
            return;
        }

        _backingOff = false;
        Watch(true);
    }

    /// <summary>Watches the listening socket, or stops (a full queue, or backing off).</summary>
    private void Watch(bool on)
    {
        on &= !_backingOff && !_disposed;
        if (on != _watching && !_disposed)
        {
            _watching = on;
            _poller.Modify(_token, _fd, on ? Linux.EpollIn : 0);
        }
    }

    /// <summary>Stops listening. Safe from any thread: off the loop thread it hops to the loop.</summary>
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
        _poller.Remove(_token, _fd);
        SocketConnection.CloseUntracked(_loop, _socket);
        _unixPath?.RemoveBoundFile(_boundFile);
        _reserve.Dispose();
        while (_waiters.TryDequeue(out TaskCompletionSource<Connection>? waiter))
        {
            waiter.TrySetException(new ObjectDisposedException(ToString()));
        }

        // Connections that arrived but were never accepted are nobody's: close them.
        while (_accepted.TryDequeue(out EpollConnection? connection))
        {
            connection.Abort(new ConnectionAbortedException("The listener was disposed before the connection was accepted."));
        }

        return default;
    }

    public override string ToString() => _unixPath is null
        ? $"TCP listener (managed epoll) on {_localEndPoint}"
        : $"Unix listener (managed epoll) on {_unixPath}";

    private sealed class ResourceNode(EpollListener owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync();
    }
}
