using System.Net;
using System.Net.Sockets;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Opens a UDP endpoint (asyncio's <c>create_datagram_endpoint</c>): a socket bound to <paramref name="localEndPoint"/>
    /// (port 0: the system picks a free port; null: any address of <paramref name="remoteEndPoint"/>'s family), and, when
    /// <paramref name="remoteEndPoint"/> is given, connected to it: it then receives only that peer's datagrams, sends
    /// with <see cref="DatagramEndpoint.SendAsync"/>, and learns of an ICMP port-unreachable as a
    /// <c>ConnectionRefused</c> on its next receive. IPv4 and IPv6 (an IPv6 endpoint bound to <c>::</c> also takes IPv4
    /// datagrams, as Linux's default is).
    /// </summary>
    /// <exception cref="ArgumentException">Both endpoints are null, or they are of different address families.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (thrown at once, naming it).</exception>
    /// <exception cref="SocketException">The address is in use (<c>AddressAlreadyInUse</c>) or not this host's (<c>AddressNotAvailable</c>).</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public ValueTask<DatagramEndpoint> OpenDatagramEndpointAsync(
        IPEndPoint? localEndPoint,
        IPEndPoint? remoteEndPoint = null,
        DatagramOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        if (localEndPoint is null && remoteEndPoint is null)
        {
            throw new ArgumentException("A datagram endpoint needs a local endpoint to bind, a remote one to connect to, or both.", nameof(localEndPoint));
        }

        if (localEndPoint is not null && remoteEndPoint is not null && localEndPoint.AddressFamily != remoteEndPoint.AddressFamily)
        {
            throw new ArgumentException($"The local endpoint {localEndPoint} and the remote endpoint {remoteEndPoint} are of different address families.", nameof(remoteEndPoint));
        }

        IPEndPoint local = localEndPoint ?? new IPEndPoint(remoteEndPoint!.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        if (local.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"A datagram endpoint is IPv4 or IPv6; got {local.AddressFamily}.", nameof(localEndPoint));
        }

        DatagramOptions checkedOptions = (options ?? DatagramOptions.Default).Validate();
        CheckLoopThread();
        CheckNotClosed();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<DatagramEndpoint>(cancellationToken);
        }

        return new ValueTask<DatagramEndpoint>(OpenDatagramEndpointCore(local, remoteEndPoint, checkedOptions));
    }

    /// <summary>The policy's UDP endpoint, bound (and connected when <paramref name="remote"/> is given). Loop thread, arguments checked.</summary>
    private protected abstract DatagramEndpoint OpenDatagramEndpointCore(IPEndPoint local, IPEndPoint? remote, DatagramOptions options);
}
