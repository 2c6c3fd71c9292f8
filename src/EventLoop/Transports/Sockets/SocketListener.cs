using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;

namespace EventLoop.Transports.Sockets;

/// <summary>A TCP listener over <see cref="Socket"/>; accepts resume on the loop thread.</summary>
internal sealed class SocketListener : ConnectionListener
{
    private readonly Loop _loop;
    private readonly Socket _socket;
    private readonly TcpOptions _options;
    private readonly EndPoint _localEndPoint;
    private readonly ResourceNode _node;
    private bool _disposed;

    private SocketListener(Loop loop, Socket socket, TcpOptions options)
    {
        _loop = loop;
        _socket = socket;
        _options = options;
        _localEndPoint = socket.LocalEndPoint!;
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        loop.OpenSocketCount++;
    }

    public override EndPoint LocalEndPoint => _localEndPoint;

    internal static SocketListener Listen(Loop loop, EndPoint endpoint, TcpOptions options)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endpoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(endpoint);
            socket.Listen(options.Backlog);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new SocketListener(loop, socket, options);
    }

    internal static async ValueTask<Connection> ConnectAsync(Loop loop, EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            SocketConnection.Configure(socket, options);
            loop.PendingIo++;
            try
            {
                await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(true);
            }
            finally
            {
                loop.PendingIo--;
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new SocketConnection(loop, socket, options);
        connection.Start();
        return connection;
    }

    public override async ValueTask<Connection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
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
        finally
        {
            _loop.PendingIo--;
        }

        try
        {
            SocketConnection.Configure(accepted, _options);
        }
        catch
        {
            accepted.Dispose();
            throw;
        }

        var connection = new SocketConnection(_loop, accepted, _options);
        connection.Start();
        return connection;
    }

    public override ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            _loop.UnregisterShutdown(_node);
            _loop.OpenSocketCount--;
            _socket.Dispose();
        }

        return default;
    }

    public override string ToString() => $"TCP listener on {_localEndPoint}";

    private sealed class ResourceNode(SocketListener owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync();
    }
}
