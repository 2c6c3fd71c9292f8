using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace EventLoop.Transports.Udp;

/// <summary>Linux's numbers for the UDP socket options (levels and names) and the layout of a multicast membership request.</summary>
internal static class UdpSocketOptions
{
    public const int SolSocket = 1;
    public const int SoReuseAddr = 2;
    public const int SoSndBuf = 7;
    public const int SoRcvBuf = 8;
    public const int SoBroadcast = 6;

    public const int IpProtoIp = 0;
    public const int IpMulticastIf = 32;
    public const int IpMulticastTtl = 33;
    public const int IpMulticastLoop = 34;
    public const int IpAddMembership = 35;
    public const int IpDropMembership = 36;

    public const int IpProtoIpv6 = 41;
    public const int Ipv6MulticastIf = 17;
    public const int Ipv6MulticastHops = 18;
    public const int Ipv6MulticastLoop = 19;
    public const int Ipv6AddMembership = 20;
    public const int Ipv6DropMembership = 21;

    /// <summary>
    /// Writes an <c>ip_mreq</c> (group, interface address: 8 bytes) or an <c>ipv6_mreq</c> (group, interface index: 20
    /// bytes) into <paramref name="request"/>; returns its length. An IPv6 <paramref name="localAddress"/> names its
    /// interface by the address's scope id (0: the system picks).
    /// </summary>
    public static int WriteMembership(Span<byte> request, IPAddress group, IPAddress? localAddress)
    {
        request.Clear();
        if (group.AddressFamily == AddressFamily.InterNetworkV6)
        {
            group.TryWriteBytes(request[..16], out _);
            BinaryPrimitives.WriteInt32LittleEndian(request[16..], (int)(localAddress?.ScopeId ?? 0));
            return 20;
        }

        group.TryWriteBytes(request[..4], out _);
        (localAddress ?? IPAddress.Any).TryWriteBytes(request[4..8], out _);
        return 8;
    }
}
