using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;
using EventLoop.Transports;
using EventLoop.Transports.Unix;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// An outgoing TCP or Unix domain socket connection of the managed loop's own poller: a non-blocking <c>connect</c>, then the writable
/// edge and <c>SO_ERROR</c> tell how it went. Cancelled by its token or by the loop's shutdown (the socket is
/// closed). Host names resolve through <see cref="Dns"/> and every address is tried (<see cref="TcpConnect"/>).
/// </summary>
internal sealed class EpollConnector : ShutdownNode, IEpollHandler
{
    private readonly ManagedLoop _loop;
    private readonly EpollPoller _poller;
    private readonly TaskCompletionSource<int> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _fd = -1;
    private long _token;
    private bool _cancelled;

    private EpollConnector(ManagedLoop loop, EpollPoller poller)
    {
        _loop = loop;
        _poller = poller;
    }

    internal override bool IsResource => true;

    internal static ValueTask<Connection> ConnectAsync(ManagedLoop loop, EpollPoller poller, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        TcpConnect.ConnectAsync(loop, endpoint, options.HappyEyeballsDelay, (Loop: loop, Poller: poller, Options: options),
            static (state, ip, token) => ConnectOneAsync(state.Loop, state.Poller, ip, state.Options, token), cancellationToken);

    /// <summary>Connects to a Unix domain socket: the same non-blocking connect (which for <c>AF_UNIX</c> usually ends at once).</summary>
    internal static ValueTask<Connection> ConnectUnixAsync(ManagedLoop loop, EpollPoller poller, UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken) =>
        ConnectOneAsync(loop, poller, path.EndPoint, options, cancellationToken, path);

    private static async ValueTask<Connection> ConnectOneAsync(
        ManagedLoop loop, EpollPoller poller, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken, UnixSocketPath? unixPath = null)
    {
        var connector = new EpollConnector(loop, poller);
        int status = connector.Start(endpoint, options, unixPath);
        if (status == -Linux.EINPROGRESS)
        {
            loop.RegisterShutdown(connector);
            using (cancellationToken.UnsafeRegister(
                static state =>
                {
                    var c = (EpollConnector)state!;
                    try
                    {
                        c._loop.CallSoonThreadSafe(static c => c.Cancel(), c);
                    }
                    catch (InvalidOperationException)
                    {
                        // The loop is closing; its shutdown cancels the connect.
                    }
                },
                connector))
            {
                status = await connector._done.Task.ConfigureAwait(true);
            }

            loop.UnregisterShutdown(connector);
        }

        if (connector._cancelled)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new OperationCanceledException("The connect was cancelled because the loop shut down.");
        }

        if (status < 0)
        {
            connector.CloseSocket();
            Linux.Throw(status, $"Connecting to {Describe(endpoint, unixPath)}");
        }

        int fd = connector.TakeSocket();
        EpollConnection connection = unixPath is null
            ? new EpollConnection(loop, poller, fd, options, endpoint.AddressFamily, endpoint)
            : new EpollConnection(loop, poller, fd, options, Linux.GetUnixEndPoint(fd, peer: false), unixPath.EndPoint, "Unix");
        connection.Start();
        return connection;
    }

    /// <summary>
    /// Creates the socket, applies the TCP options (none for a Unix socket) and starts connecting. Returns 0 or
    /// -EINPROGRESS; throws on an error (socket closed).
    /// </summary>
    private int Start(EndPoint endpoint, TcpOptions options, UnixSocketPath? unixPath)
    {
        TcpOptions? tcpOptions = unixPath is null ? options : null;
        _fd = endpoint is IPEndPoint ip ? Linux.Socket(ip.AddressFamily) : Linux.UnixSocket();
        if (_fd < 0)
        {
            Linux.Throw(_fd, $"Connecting to {Describe(endpoint, unixPath)}");
        }

        _loop.OpenSocketCount++;
        int status = tcpOptions is null ? 0 : Linux.SetNoDelay(_fd, tcpOptions.NoDelay);
        if (status == 0 && tcpOptions is { KeepAlive: true })
        {
            status = Linux.SetKeepAlive(_fd, tcpOptions.KeepAliveSeconds);
        }

        if (status == 0)
        {
            status = Linux.Connect(_fd, endpoint.Serialize());
        }

        if (status == -Linux.EINPROGRESS)
        {
            long token = _poller.Add(_fd, Linux.EpollOut | Linux.EpollEt, this);
            if (token < 0)
            {
                status = (int)token;
            }
            else
            {
                _token = token;
            }
        }

        if (status < 0 && status != -Linux.EINPROGRESS)
        {
            CloseSocket();
            Linux.Throw(status, $"Connecting to {Describe(endpoint, unixPath)}");
        }

        return status;
    }

    private static string Describe(EndPoint endpoint, UnixSocketPath? unixPath) =>
        unixPath is null ? endpoint.ToString()! : $"the Unix socket {unixPath}";

    public void OnEvents(uint events)
    {
        if (_done.Task.IsCompleted)
        {
            return;
        }

        Unwatch();
        _done.TrySetResult(Linux.TakeSocketError(_fd)); // 0 when connected
    }

    private void Unwatch()
    {
        if (_token != 0)
        {
            _poller.Remove(_token, _fd);
            _token = 0;
        }
    }

    /// <summary>Cancels a pending connect: closes the socket.</summary>
    private void Cancel()
    {
        if (_cancelled || _done.Task.IsCompleted)
        {
            return;
        }

        _cancelled = true;
        CloseSocket();
        _done.TrySetResult(-125); // ECANCELED
    }

    internal override void OnShutdown() => Cancel();

    private void CloseSocket()
    {
        Unwatch();
        if (_fd >= 0)
        {
            Linux.Close(_fd);
            _fd = -1;
            _loop.OpenSocketCount--;
        }
    }

    /// <summary>Hands the connected descriptor (and its count) to the connection.</summary>
    private int TakeSocket()
    {
        Unwatch();
        int fd = _fd;
        _fd = -1;
        return fd;
    }
}
