namespace EventLoop;

/// <summary>Options for a datagram (UDP) endpoint on either loop policy (see <see cref="Loop.OpenDatagramEndpointAsync"/>).</summary>
public sealed class DatagramOptions
{
    /// <summary>The largest <see cref="MaxDatagramSize"/>: 65,536 bytes, more than any UDP payload (65,507 over IPv4, 65,527 over IPv6).</summary>
    public const int MaxDatagramSizeLimit = 65_536;

    /// <summary>
    /// The largest datagram a receive takes, from 1 to <see cref="MaxDatagramSizeLimit"/>: each pooled receive buffer
    /// has this size. A longer datagram is not delivered cut short: its receive fails with a <see cref="System.Net.Sockets.SocketException"/>
    /// whose <c>SocketErrorCode</c> is <c>MessageSize</c> (as <see cref="System.Net.Sockets.Socket.ReceiveFrom(byte[], ref System.Net.EndPoint)"/>
    /// does), and the next receive goes on with the next datagram. Default 65,536 (any datagram).
    /// </summary>
    public int MaxDatagramSize { get; set; } = MaxDatagramSizeLimit;

    /// <summary>Set <c>SO_REUSEADDR</c> before binding, so several endpoints (that all set it) can bind the same address and port. Off by default.</summary>
    public bool ReuseAddress { get; set; }

    /// <summary>Allow sending to broadcast addresses (<c>SO_BROADCAST</c>, asyncio's <c>allow_broadcast</c>). Off by default.</summary>
    public bool Broadcast { get; set; }

    /// <summary>The kernel's receive buffer size in bytes (<c>SO_RCVBUF</c>; Linux doubles it), or 0 to keep the system's default.</summary>
    public int ReceiveBufferSize { get; set; }

    /// <summary>The kernel's send buffer size in bytes (<c>SO_SNDBUF</c>; Linux doubles it), or 0 to keep the system's default.</summary>
    public int SendBufferSize { get; set; }

    /// <summary>The time-to-live (IPv4) or hop limit (IPv6) of multicast datagrams sent, from 0 to 255, or null to keep the system's default (1).</summary>
    public int? MulticastTimeToLive { get; set; }

    /// <summary>Whether multicast datagrams sent are looped back to this host's members of the group, or null to keep the system's default (on).</summary>
    public bool? MulticastLoopback { get; set; }

    /// <summary>
    /// The interface multicast datagrams are sent from (<c>IP_MULTICAST_IF</c>): for IPv4 the interface's address (such as
    /// <see cref="System.Net.IPAddress.Loopback"/>), for IPv6 an address whose <see cref="System.Net.IPAddress.ScopeId"/>
    /// is the interface's index; null lets the system pick by its routes.
    /// </summary>
    public System.Net.IPAddress? MulticastInterface { get; set; }

    internal static readonly DatagramOptions Default = new();

    /// <summary>Checks every option; returns this.</summary>
    internal DatagramOptions Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDatagramSize, 1, nameof(MaxDatagramSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxDatagramSize, MaxDatagramSizeLimit, nameof(MaxDatagramSize));
        ArgumentOutOfRangeException.ThrowIfNegative(ReceiveBufferSize, nameof(ReceiveBufferSize));
        ArgumentOutOfRangeException.ThrowIfNegative(SendBufferSize, nameof(SendBufferSize));
        if (MulticastTimeToLive is { } ttl && (ttl < 0 || ttl > 255))
        {
            throw new ArgumentOutOfRangeException(nameof(MulticastTimeToLive), ttl, "A multicast time-to-live is from 0 to 255.");
        }

        return this;
    }
}
