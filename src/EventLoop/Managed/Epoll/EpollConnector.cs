using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;
using EventLoop.Transports;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// An outgoing TCP connection of the managed loop's own poller: a non-blocking <c>connect</c>, then the writable
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
        TcpConnect.ConnectAsync(endpoint, (Loop: loop, Poller: poller, Options: options),
            static (state, ip, token) => ConnectOneAsync(state.Loop, state.Poller, ip, state.Options, token), cancellationToken);

    private static async ValueTask<Connection> ConnectOneAsync(ManagedLoop loop, EpollPoller poller, IPEndPoint endpoint, TcpOptions options, CancellationToken cancellationToken)
    {
        var connector = new EpollConnector(loop, poller);
        int status = connector.Start(endpoint, options);
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
            Linux.Throw(status, $"Connecting to {endpoint}");
        }

        int fd = connector.TakeSocket();
        var connection = new EpollConnection(loop, poller, fd, options, endpoint.AddressFamily, endpoint);
        connection.Start();
        return connection;
    }

    /// <summary>Creates the socket, applies the options and starts connecting. Returns 0, -EINPROGRESS or an error (socket closed).</summary>
    private int Start(IPEndPoint endpoint, TcpOptions options)
    {
        _fd = Linux.Socket(endpoint.AddressFamily);
        if (_fd < 0)
        {
            Linux.Throw(_fd, $"Connecting to {endpoint}");
        }

        _loop.OpenSocketCount++;
        int status = Linux.SetNoDelay(_fd, options.NoDelay);
        if (status == 0 && options.KeepAlive)
        {
            status = Linux.SetKeepAlive(_fd, options.KeepAliveSeconds);
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
            Linux.Throw(status, $"Connecting to {endpoint}");
        }

        return status;
    }

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
