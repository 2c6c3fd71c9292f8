using System.Net;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;

namespace EventLoop.Transports;

/// <summary>
/// What both transports' connects share: a <see cref="DnsEndPoint"/> is resolved (through <see cref="Dns"/>)
/// and each address is tried in turn, as <see cref="Socket.ConnectAsync(EndPoint)"/> does for a host name;
/// the last failure is reported if none connects.
/// </summary>
internal static class TcpConnect
{
    /// <summary>Connects to <paramref name="endpoint"/> with <paramref name="connectOne"/> per address.</summary>
    /// <exception cref="SocketException"><c>HostNotFound</c> when the name has no address; else the last address's failure.</exception>
    /// <exception cref="ArgumentException">The endpoint is neither an <see cref="IPEndPoint"/> nor a <see cref="DnsEndPoint"/>.</exception>
    public static async ValueTask<Connection> ConnectAsync<TState>(
        EndPoint endpoint,
        TState state,
        Func<TState, IPEndPoint, CancellationToken, ValueTask<Connection>> connectOne,
        CancellationToken cancellationToken)
    {
        if (endpoint is IPEndPoint ip)
        {
            return await connectOne(state, ip, cancellationToken).ConfigureAwait(true);
        }

        if (endpoint is not DnsEndPoint dns)
        {
            throw new ArgumentException(
                $"Connecting needs an IPEndPoint or a DnsEndPoint; got {endpoint.GetType().Name} '{endpoint}'.", nameof(endpoint));
        }

        IPAddress[] addresses = await Dns.GetHostAddressesAsync(dns.Host, dns.AddressFamily, cancellationToken).ConfigureAwait(true);
        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound, $"No address found for '{dns.Host}'.");
        }

        ExceptionDispatchInfo? last = null;
        foreach (IPAddress address in addresses)
        {
            try
            {
                return await connectOne(state, new IPEndPoint(address, dns.Port), cancellationToken).ConfigureAwait(true);
            }
            catch (SocketException ex)
            {
                last = ExceptionDispatchInfo.Capture(ex);
            }
        }

        last!.Throw();
        throw new System.Diagnostics.UnreachableException();
    }
}
