using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;
using StackExchange.Redis.Configuration;

namespace EventLoop.DbBenchmark;

/// <summary>
/// An experiment: StackExchange.Redis over the loop's own TCP connections. No socket of the library's
/// (<see cref="GetSocketConnectEndpointAsync"/> returns null); the stream it gets is a loop connection's
/// <see cref="Connection.AsStream"/>, connected on the loop thread (the library may call from the thread pool).
/// </summary>
internal sealed class LoopTunnel(Loop loop) : Tunnel
{
    private readonly List<Connection> _connections = [];

    public override ValueTask<EndPoint?> GetSocketConnectEndpointAsync(EndPoint endpoint, CancellationToken cancellationToken) => new((EndPoint?)null);

    public override async ValueTask<Stream?> BeforeAuthenticateAsync(EndPoint endpoint, ConnectionType connectionType, Socket? socket, CancellationToken cancellationToken)
    {
        var connected = new TaskCompletionSource<Connection>(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.CallSoonThreadSafe(async () =>
        {
            try
            {
                connected.SetResult(await loop.ConnectTcpAsync(endpoint, cancellationToken: cancellationToken));
            }
            catch (Exception ex)
            {
                connected.SetException(ex);
            }
        });
        Connection connection = await connected.Task.ConfigureAwait(false);
        lock (_connections)
        {
            _connections.Add(connection);
        }

        return connection.AsStream();
    }
}
