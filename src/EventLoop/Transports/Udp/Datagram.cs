using System.Net;

namespace EventLoop;

/// <summary>
/// One datagram received by a <see cref="DatagramEndpoint"/>: its bytes, in a buffer the endpoint lends from its pool,
/// and who sent it. Dispose it (on the loop thread) when done with <see cref="Data"/>: the buffer goes back to the
/// endpoint's pool for the next receive, which is how receiving allocates nothing once warm. <see cref="Data"/> must
/// not be used after that. Disposing twice, or a copy, is harmless; one never disposed only costs the pool a buffer.
/// </summary>
public readonly struct Datagram : IDisposable
{
    private readonly DatagramBuffer? _buffer;
    private readonly int _version;
    private readonly int _length;

    internal Datagram(DatagramBuffer buffer, int length, IPEndPoint remoteEndPoint)
    {
        _buffer = buffer;
        _version = buffer.Version;
        _length = length;
        RemoteEndPoint = remoteEndPoint;
    }

    /// <summary>The datagram's bytes (empty for an empty datagram). Valid until <see cref="Dispose"/>.</summary>
    public ReadOnlyMemory<byte> Data => _buffer is null ? default : new ReadOnlyMemory<byte>(_buffer.Array, 0, _length);

    /// <summary>The sender's address. The same instance for consecutive datagrams from one sender, so a reply to it allocates nothing either.</summary>
    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>Returns the buffer to the endpoint's pool (on the loop thread; elsewhere the buffer is left to the GC).</summary>
    public void Dispose() => _buffer?.Return(_version);
}

/// <summary>A pooled receive buffer (pinned: libuv and the epoll path receive straight into it) and the version that stops a stale <see cref="Datagram"/> from returning it twice.</summary>
internal sealed class DatagramBuffer(DatagramEndpoint owner, int size)
{
    public readonly byte[] Array = GC.AllocateUninitializedArray<byte>(size, pinned: true);

    public int Version;

    public void Return(int version)
    {
        if (Version != version || !owner.IsOnLoopThread)
        {
            return;
        }

        Version++;
        owner.ReturnBuffer(this);
    }
}
