using System.Net;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Starts listening for TCP connections on <paramref name="endpoint"/> (port 0 picks a free port; see
    /// <see cref="ConnectionListener.LocalEndPoint"/>).
    /// </summary>
    /// <exception cref="System.Net.Sockets.SocketException">The address is in use (<c>SocketError.AddressAlreadyInUse</c>) or not available.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (thrown at once, naming it).</exception>
    public ValueTask<ConnectionListener> ListenTcpAsync(EndPoint endpoint, TcpOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        CheckLoopThread();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ConnectionListener>(cancellationToken);
        }

        return ListenTcpCoreAsync(endpoint, options?.Validate() ?? TcpOptions.Default, cancellationToken);
    }

    /// <summary>Opens a TCP connection to <paramref name="endpoint"/>.</summary>
    /// <exception cref="System.Net.Sockets.SocketException">The connection was refused (<c>SocketError.ConnectionRefused</c>) or the host is unreachable.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (thrown at once, naming it).</exception>
    public ValueTask<Connection> ConnectTcpAsync(EndPoint endpoint, TcpOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        CheckLoopThread();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Connection>(cancellationToken);
        }

        return ConnectTcpCoreAsync(endpoint, options?.Validate() ?? TcpOptions.Default, cancellationToken);
    }

    /// <summary>
    /// Makes a connection on this loop of a TCP socket accepted elsewhere (a <see cref="LoopGroup"/> handing connections
    /// from its accepting thread to its loops). Loop thread only. The loop owns the socket from the call on, and closes
    /// it if this throws.
    /// </summary>
    internal Connection AdoptAcceptedTcpSocket(System.Net.Sockets.Socket socket, TcpOptions options)
    {
        CheckLoopThread();
        return AdoptAcceptedTcpSocketCore(socket, options);
    }

    /// <summary>The policy's adoption of an accepted socket; by default the socket transport wraps it.</summary>
    private protected virtual Connection AdoptAcceptedTcpSocketCore(System.Net.Sockets.Socket socket, TcpOptions options)
    {
        OpenSocketCount++;
        return Transports.Sockets.SocketConnection.Open(this, socket, options);
    }

    /// <summary>
    /// Tests only: resolves the host of a <see cref="DnsEndPoint"/> connect instead of <see cref="System.Net.Dns"/> (no name
    /// resolves to both families everywhere the tests run). Per loop, so parallel tests do not see each other's.
    /// </summary>
    internal Func<string, System.Net.Sockets.AddressFamily, CancellationToken, Task<IPAddress[]>>? HostResolverForTests { get; set; }

    private Internal.PinnedBlockPool? _memoryPool;

    /// <summary>
    /// Pinned buffers for this loop's TCP pipes: transports read into and write from them without a GCHandle
    /// per call, in blocks big enough that a large message takes few system calls.
    /// </summary>
    internal Internal.PinnedBlockPool MemoryPool => _memoryPool ??= new Internal.PinnedBlockPool();

    /// <summary>The policy's listener. Called on the loop thread with arguments checked.</summary>
    private protected abstract ValueTask<ConnectionListener> ListenTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken);

    /// <summary>The policy's connect. Called on the loop thread with arguments checked.</summary>
    private protected abstract ValueTask<Connection> ConnectTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken);
}
