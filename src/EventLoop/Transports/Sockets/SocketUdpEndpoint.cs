using System.Net;
using System.Net.Sockets;

namespace EventLoop.Transports.Sockets;

/// <summary>
/// A UDP endpoint over a .NET <see cref="Socket"/> (the managed loop's portable I/O): a receive takes a datagram the
/// last socket receive left, or starts one (<see cref="Socket.ReceiveFromAsync(Memory{byte}, SocketFlags, SocketAddress, CancellationToken)"/>)
/// that, when it does not complete at once, finishes on the thread pool and posts its result back to the loop.
/// At most one socket receive is in flight; a cancelled wait leaves its datagram for the next receive.
/// </summary>
internal sealed class SocketUdpEndpoint : DatagramEndpoint
{
    private readonly Socket _socket;
    private readonly SocketAddress _from;
    private bool _inFlight;
    private bool _closed;

    // What the last socket receive got, when nobody took it yet.
    private bool _stashed;
    private Datagram _stash;
    private Exception? _stashError;

    private SocketUdpEndpoint(Loop loop, Socket socket, DatagramOptions options, AddressFamily family)
        : base(loop, options, family)
    {
        _socket = socket;
        _from = new SocketAddress(family);
    }

    internal override int Descriptor => (int)_socket.Handle;

    internal static SocketUdpEndpoint Open(Loop loop, IPEndPoint local, IPEndPoint? remote, DatagramOptions options)
    {
        var socket = new Socket(local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        loop.OpenSocketCount++;
        var endpoint = new SocketUdpEndpoint(loop, socket, options, local.AddressFamily);
        try
        {
            endpoint.Setup(local, remote);
            return endpoint;
        }
        catch (Exception)
        {
            _ = endpoint.DisposeAsync();
            throw;
        }
    }

    private void Setup(IPEndPoint local, IPEndPoint? remote)
    {
        DatagramOptions options = Options;
        bool v6 = Family == AddressFamily.InterNetworkV6;
        if (v6)
        {
            _socket.DualMode = true; // as a Linux socket bound to :: is by default (and the other policies' are)
        }

        if (options.ReuseAddress)
        {
            _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        }

        if (options.Broadcast)
        {
            _socket.EnableBroadcast = true;
        }

        if (options.ReceiveBufferSize > 0)
        {
            _socket.ReceiveBufferSize = options.ReceiveBufferSize;
        }

        if (options.SendBufferSize > 0)
        {
            _socket.SendBufferSize = options.SendBufferSize;
        }

        if (options.MulticastTimeToLive is { } ttl)
        {
            _socket.SetSocketOption(v6 ? SocketOptionLevel.IPv6 : SocketOptionLevel.IP, SocketOptionName.MulticastTimeToLive, ttl);
        }

        if (options.MulticastLoopback is { } loopback)
        {
            _socket.SetSocketOption(v6 ? SocketOptionLevel.IPv6 : SocketOptionLevel.IP, SocketOptionName.MulticastLoopback, loopback);
        }

        if (options.MulticastInterface is { } multicastInterface)
        {
            if (v6)
            {
                _socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastInterface, (int)multicastInterface.ScopeId);
            }
            else
            {
                _socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastInterface, multicastInterface.GetAddressBytes());
            }
        }

        _socket.Bind(local);
        if (remote is not null)
        {
            _socket.Connect(remote);
            RemoteEndPoint = (IPEndPoint?)_socket.RemoteEndPoint ?? remote;
        }

        LocalEndPoint = (IPEndPoint?)_socket.LocalEndPoint ?? local;
    }

    private protected override bool TryReceiveCore(out Datagram datagram, out Exception? error)
    {
        if (_stashed)
        {
            _stashed = false;
            datagram = _stash;
            error = _stashError;
            _stash = default;
            _stashError = null;
            return true;
        }

        datagram = default;
        error = null;
        if (_inFlight || _closed)
        {
            return false;
        }

        DatagramBuffer buffer = RentBuffer();
        ValueTask<int> receive;
        try
        {
            receive = _socket.ReceiveFromAsync(buffer.Array, SocketFlags.None, _from);
        }
        catch (Exception ex)
        {
            ReturnBuffer(buffer);
            error = Translate(ex);
            return true;
        }

        if (receive.IsCompleted)
        {
            Finish(receive, buffer, out datagram, out error);
            return true;
        }

        _inFlight = true;
        _loop.PendingIo++; // the loop's shutdown waits for its completion, which posts back here
        _ = CompleteLaterAsync(receive, buffer);
        return false;
    }

    private async Task CompleteLaterAsync(ValueTask<int> receive, DatagramBuffer buffer)
    {
        int length = 0;
        Exception? failure = null;
        try
        {
            length = await receive.ConfigureAwait(true); // resumes on the loop, through its context
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        _inFlight = false;
        _loop.PendingIo--;
        if (_closed)
        {
            return;
        }

        Finish(length, failure, buffer, out _stash, out _stashError);
        _stashed = true;
        OnReceiveReady();
    }

    private void Finish(ValueTask<int> receive, DatagramBuffer buffer, out Datagram datagram, out Exception? error)
    {
        int length = 0;
        Exception? failure = null;
        try
        {
            length = receive.GetAwaiter().GetResult();
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        Finish(length, failure, buffer, out datagram, out error);
    }

    private void Finish(int length, Exception? failure, DatagramBuffer buffer, out Datagram datagram, out Exception? error)
    {
        if (failure is null && length <= Options.MaxDatagramSize)
        {
            datagram = MakeDatagram(buffer, length, _from.Buffer.Span[.._from.Size]);
            error = null;
            return;
        }

        ReturnBuffer(buffer);
        datagram = default;
        error = failure is null || failure is SocketException { SocketErrorCode: SocketError.MessageSize } ? DatagramTooLong() : Translate(failure);
    }

    private Exception Translate(Exception ex) =>
        _closed && ex is SocketException or ObjectDisposedException ? new ObjectDisposedException(ToString()) : ex;

    private protected override ValueTask SendCoreAsync(ReadOnlyMemory<byte> datagram, SocketAddress? address, CancellationToken cancellationToken)
    {
        ValueTask<int> send = address is null
            ? _socket.SendAsync(datagram, SocketFlags.None, cancellationToken)
            : _socket.SendToAsync(datagram, SocketFlags.None, address, cancellationToken);
        if (send.IsCompletedSuccessfully)
        {
            _ = send.Result;
            return default;
        }

        return AwaitSendAsync(send);
    }

    private async ValueTask AwaitSendAsync(ValueTask<int> send)
    {
        _loop.PendingIo++;
        try
        {
            await send.ConfigureAwait(true);
        }
        finally
        {
            _loop.PendingIo--;
        }
    }

    private protected override void SetMembershipCore(IPAddress group, IPAddress? localAddress, bool join)
    {
        if (Family == AddressFamily.InterNetworkV6)
        {
            var option = new IPv6MulticastOption(group, localAddress?.ScopeId ?? 0);
            _socket.SetSocketOption(SocketOptionLevel.IPv6, join ? SocketOptionName.AddMembership : SocketOptionName.DropMembership, option);
        }
        else
        {
            var option = new MulticastOption(group, localAddress ?? IPAddress.Any);
            _socket.SetSocketOption(SocketOptionLevel.IP, join ? SocketOptionName.AddMembership : SocketOptionName.DropMembership, option);
        }
    }

    private protected override void CloseCore()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        _stashed = false;
        _stash = default;
        _socket.Dispose(); // a receive in flight ends (aborted) and finds the endpoint closed
        _loop.OpenSocketCount--;
    }

    public override string ToString() => $"UDP (managed sockets) {LocalEndPoint}{(RemoteEndPoint is null ? "" : $" -> {RemoteEndPoint}")}";
}
