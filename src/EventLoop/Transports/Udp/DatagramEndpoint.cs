using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A UDP socket on a loop (asyncio's datagram transport, from <see cref="Loop.OpenDatagramEndpointAsync"/>): bound to a
/// local address, optionally connected to one remote address. Send with <see cref="SendToAsync"/> (or
/// <see cref="SendAsync"/> when connected); receive with <see cref="ReceiveAsync"/>, one <see cref="Datagram"/> at a
/// time, or with <c>await foreach</c> over <see cref="ReceiveAllAsync"/>.
/// </summary>
/// <remarks>
/// <para>Loop thread only (an <see cref="InvalidOperationException"/> elsewhere), but for <see cref="DisposeAsync"/>, which
/// hops to the loop. One receive at a time. Errors are <see cref="SocketException"/>s with the system's
/// <see cref="SocketException.SocketErrorCode"/>: on a connected endpoint an ICMP port-unreachable from the peer
/// surfaces as <c>ConnectionRefused</c> on the next receive (or send), as on any connected UDP socket.</para>
/// <para>Allocation: on the libuv loop and on the managed loop's epoll I/O (Linux's default), a receive allocates nothing
/// once warm: it completes synchronously when a datagram waits, or through one reusable awaitable otherwise; its
/// buffer comes from the endpoint's pool and returns there when the <see cref="Datagram"/> is disposed; its
/// <see cref="Datagram.RemoteEndPoint"/> is the same instance as the previous one's when the sender is the same. A send
/// to the endpoint a datagram came from (or to any endpoint sent to just before) reuses its encoded address. On the
/// managed loop's portable sockets I/O (<c>EVENTLOOP_MANAGED_IO=sockets</c>) a receive that has to wait allocates its
/// .NET socket operation's state.</para>
/// <para>Fairness: after 32 receives in a row that completed synchronously, the next one waits for the loop's next turn
/// even if a datagram is ready, so a flood of datagrams cannot keep the loop from its timers and other I/O.</para>
/// </remarks>
public abstract class DatagramEndpoint : IAsyncDisposable
{
    private const int SyncReceiveBudget = 32;
    private const int MaxPooledBuffers = 64;

    private protected readonly Loop _loop;
    private readonly ReceiveSource _receive;
    private readonly Stack<DatagramBuffer> _freeBuffers = new();
    private readonly ResourceNode _node;
    private readonly IPEndPoint _anyTemplate;
    private bool _disposed;
    private int _syncBudget = SyncReceiveBudget;

    // The last sender (raw sockaddr and its endpoint): consecutive datagrams from one peer share the instance.
    private readonly byte[] _lastFrom = new byte[28];
    private int _lastFromLength;
    private IPEndPoint? _lastFromEndPoint;

    // The last destination and its encoded address.
    private EndPoint? _lastTo;
    private SocketAddress? _lastToAddress;

    private protected DatagramEndpoint(Loop loop, DatagramOptions options, AddressFamily family)
    {
        _loop = loop;
        Options = options;
        Family = family;
        _anyTemplate = new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        LocalEndPoint = _anyTemplate;
        _receive = new ReceiveSource(this);
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
    }

    /// <summary>The local address and port (the port the system picked when bound to port 0).</summary>
    public IPEndPoint LocalEndPoint { get; private protected set; }

    /// <summary>The remote address the endpoint is connected to, or null when it is not connected.</summary>
    public IPEndPoint? RemoteEndPoint { get; private protected set; }

    /// <summary>The options it was opened with.</summary>
    internal DatagramOptions Options { get; }

    /// <summary>The socket's address family.</summary>
    internal AddressFamily Family { get; }

    /// <summary>The socket's descriptor (tests read its options with <c>getsockopt</c>). Loop thread.</summary>
    internal abstract int Descriptor { get; }

    internal bool IsOnLoopThread => _loop.IsOnLoopThread;

    private protected bool IsDisposed => _disposed;

    // ------------------------------------------------------------------ receiving

    /// <summary>
    /// Receives the next datagram: at once when one waits, else when one arrives. Dispose the result when done with
    /// its <see cref="Datagram.Data"/>.
    /// </summary>
    /// <exception cref="SocketException">The receive failed: <c>MessageSize</c> for a datagram longer than
    /// <see cref="DatagramOptions.MaxDatagramSize"/> (dropped), <c>ConnectionRefused</c> on a connected endpoint whose peer
    /// answered an earlier datagram with ICMP port-unreachable.</exception>
    /// <exception cref="ObjectDisposedException">The endpoint was disposed, before or while the receive waited.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread, or while another receive is pending.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled; a datagram arriving later is left for the next receive.</exception>
    public ValueTask<Datagram> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_receive.Pending)
        {
            throw new InvalidOperationException("A receive is already pending on this endpoint: await it before starting the next.");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Datagram>(cancellationToken);
        }

        if (_syncBudget > 0)
        {
            if (TryReceiveCore(out Datagram datagram, out Exception? error))
            {
                _syncBudget--;
                return error is null ? new ValueTask<Datagram>(datagram) : ValueTask.FromException<Datagram>(error);
            }

            return _receive.Start(cancellationToken, retryNextTurn: false);
        }

        _syncBudget = SyncReceiveBudget;
        return _receive.Start(cancellationToken, retryNextTurn: true);
    }

    /// <summary>
    /// The datagrams as they arrive, until the endpoint is disposed (the enumeration then ends) or the token is
    /// cancelled. Each datagram is disposed when the enumeration moves past it: copy what must outlive that.
    /// </summary>
    /// <exception cref="SocketException">A receive failed (see <see cref="ReceiveAsync"/>); the enumeration ends.</exception>
    public async IAsyncEnumerable<Datagram> ReceiveAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (!_disposed)
        {
            Datagram datagram;
            try
            {
                datagram = await ReceiveAsync(cancellationToken).ConfigureAwait(true);
            }
            catch (ObjectDisposedException) when (_disposed)
            {
                yield break;
            }

            try
            {
                yield return datagram;
            }
            finally
            {
                datagram.Dispose();
            }
        }
    }

    /// <summary>
    /// Takes a datagram (or a receive error) that is ready now, without waiting. False when none is: the policy then
    /// calls <see cref="OnReceiveReady"/> once one may be. Loop thread.
    /// </summary>
    private protected abstract bool TryReceiveCore(out Datagram datagram, out Exception? error);

    /// <summary>A receive is about to wait: the policy makes sure it will call <see cref="OnReceiveReady"/> (libuv starts receiving).</summary>
    private protected virtual void OnReceiveWaiting()
    {
    }

    /// <summary>The policy saw a datagram (or an error) arrive: completes a waiting receive with it. Loop thread.</summary>
    private protected void OnReceiveReady()
    {
        if (_receive.Pending && TryReceiveCore(out Datagram datagram, out Exception? error))
        {
            _receive.Complete(datagram, error);
        }
    }

    /// <summary>
    /// A buffer for one receive, from the pool: one byte longer than <see cref="DatagramOptions.MaxDatagramSize"/>, so a
    /// datagram that does not fit shows as filling it (where the system does not say it cut one short).
    /// </summary>
    private protected DatagramBuffer RentBuffer() =>
        _freeBuffers.TryPop(out DatagramBuffer? buffer) ? buffer : new DatagramBuffer(this, Options.MaxDatagramSize + 1);

    /// <summary>Takes a buffer back (loop thread; a disposed endpoint lets it go).</summary>
    internal void ReturnBuffer(DatagramBuffer buffer)
    {
        if (!_disposed && _freeBuffers.Count < MaxPooledBuffers)
        {
            _freeBuffers.Push(buffer);
        }
    }

    /// <summary>A datagram of <paramref name="length"/> bytes in <paramref name="buffer"/> from the sender in <paramref name="address"/> (a raw sockaddr).</summary>
    private protected Datagram MakeDatagram(DatagramBuffer buffer, int length, ReadOnlySpan<byte> address) =>
        new(buffer, length, RemoteFrom(address));

    /// <summary>The endpoint of a raw sockaddr: the previous instance when it is the same sender.</summary>
    private IPEndPoint RemoteFrom(ReadOnlySpan<byte> address)
    {
        if (_lastFromEndPoint is { } last && address.SequenceEqual(_lastFrom.AsSpan(0, _lastFromLength)))
        {
            return last;
        }

        if (address.Length < 16 || address.Length > _lastFrom.Length)
        {
            return RemoteEndPoint ?? _anyTemplate; // no address (libuv passes none for some errors): who else could it be
        }

        AddressFamily family = address[0] == 10 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;
        var socketAddress = new SocketAddress(family, address.Length);
        address.CopyTo(socketAddress.Buffer.Span);
        var endpoint = (IPEndPoint)_anyTemplate.Create(socketAddress);
        address.CopyTo(_lastFrom);
        _lastFromLength = address.Length;
        _lastFromEndPoint = endpoint;
        return endpoint;
    }

    /// <summary>A datagram longer than the receive buffer was dropped: the error its receive reports.</summary>
    private protected SocketException DatagramTooLong() =>
        new((int)SocketError.MessageSize,
            $"A datagram longer than DatagramOptions.MaxDatagramSize ({Options.MaxDatagramSize} bytes) arrived; it was dropped.");

    // ------------------------------------------------------------------ sending

    /// <summary>
    /// Sends one datagram to <paramref name="remoteEndPoint"/>. It usually completes at once: the datagram is with the
    /// kernel (which may still drop it: UDP does not promise delivery). On a connected endpoint the address must be the
    /// connected one (or use <see cref="SendAsync"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The address is not an <see cref="IPEndPoint"/> of the endpoint's address family.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread, or the endpoint is connected to another address.</exception>
    /// <exception cref="SocketException">The send failed: <c>MessageSize</c> for a datagram too long for UDP, <c>AccessDenied</c>
    /// for a broadcast address without <see cref="DatagramOptions.Broadcast"/>, <c>ConnectionRefused</c> after an ICMP port-unreachable on a connected endpoint.</exception>
    /// <exception cref="ObjectDisposedException">The endpoint was disposed.</exception>
    public ValueTask SendToAsync(ReadOnlyMemory<byte> datagram, EndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        if (RemoteEndPoint is { } connected)
        {
            if (!connected.Equals(remoteEndPoint))
            {
                throw new InvalidOperationException($"This endpoint is connected to {connected}: it cannot send to {remoteEndPoint}.");
            }

            return SendCoreAsync(datagram, null, cancellationToken);
        }

        return SendCoreAsync(datagram, AddressOf(remoteEndPoint), cancellationToken);
    }

    /// <summary>Sends one datagram to the address the endpoint is connected to.</summary>
    /// <exception cref="InvalidOperationException">Called off the loop thread, or the endpoint is not connected.</exception>
    /// <exception cref="SocketException">The send failed (see <see cref="SendToAsync"/>).</exception>
    /// <exception cref="ObjectDisposedException">The endpoint was disposed.</exception>
    public ValueTask SendAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (RemoteEndPoint is null)
        {
            throw new InvalidOperationException("This endpoint is not connected: use SendToAsync with an address, or open it with a remote endpoint.");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return SendCoreAsync(datagram, null, cancellationToken);
    }

    /// <summary>The policy's send: to <paramref name="address"/>, or the connected peer when null. Loop thread, arguments checked.</summary>
    private protected abstract ValueTask SendCoreAsync(ReadOnlyMemory<byte> datagram, SocketAddress? address, CancellationToken cancellationToken);

    private SocketAddress AddressOf(EndPoint remoteEndPoint)
    {
        if (ReferenceEquals(remoteEndPoint, _lastTo) && _lastToAddress is { } cached)
        {
            return cached;
        }

        if (remoteEndPoint is not IPEndPoint ip)
        {
            throw new ArgumentException($"A datagram is sent to an IPEndPoint; got {remoteEndPoint.GetType().Name} '{remoteEndPoint}'.", nameof(remoteEndPoint));
        }

        if (ip.AddressFamily != Family)
        {
            throw new ArgumentException(
                $"This endpoint's socket is {(Family == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4")}; it cannot send to {ip} " +
                "(open an endpoint of that family, or map an IPv4 address with IPAddress.MapToIPv6).", nameof(remoteEndPoint));
        }

        SocketAddress address = ip.Serialize();
        _lastTo = remoteEndPoint;
        _lastToAddress = address;
        return address;
    }

    // ------------------------------------------------------------------ multicast

    /// <summary>Joins the multicast <paramref name="group"/> on the interface with <paramref name="localAddress"/> (null: the system picks one by its routes).</summary>
    /// <exception cref="ArgumentException">The group is not a multicast address of the endpoint's family.</exception>
    /// <exception cref="SocketException">The system refused (no such interface, no multicast route).</exception>
    public void JoinMulticastGroup(IPAddress group, IPAddress? localAddress = null) => ChangeMembership(group, localAddress, join: true);

    /// <summary>Leaves a multicast group joined with <see cref="JoinMulticastGroup"/>.</summary>
    /// <exception cref="SocketException">The endpoint is not a member (<c>AddressNotAvailable</c>) or the system refused.</exception>
    public void LeaveMulticastGroup(IPAddress group, IPAddress? localAddress = null) => ChangeMembership(group, localAddress, join: false);

    private void ChangeMembership(IPAddress group, IPAddress? localAddress, bool join)
    {
        ArgumentNullException.ThrowIfNull(group);
        _loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool multicast = group.AddressFamily == AddressFamily.InterNetworkV6 ? group.IsIPv6Multicast : (group.GetAddressBytes()[0] & 0xF0) == 0xE0;
        if (group.AddressFamily != Family || !multicast)
        {
            throw new ArgumentException($"{group} is not a multicast address of this endpoint's family ({Family}).", nameof(group));
        }

        if (localAddress is not null && localAddress.AddressFamily != Family)
        {
            throw new ArgumentException($"{localAddress} is not an address of this endpoint's family ({Family}).", nameof(localAddress));
        }

        SetMembershipCore(group, localAddress, join);
    }

    /// <summary>The policy's membership change. Loop thread, arguments checked; throws a <see cref="SocketException"/> on failure.</summary>
    private protected abstract void SetMembershipCore(IPAddress group, IPAddress? localAddress, bool join);

    // ------------------------------------------------------------------ closing

    /// <summary>
    /// Closes the socket. A pending receive fails with <see cref="ObjectDisposedException"/> (and an enumeration of
    /// <see cref="ReceiveAllAsync"/> ends). Safe from any thread: off the loop thread it hops to the loop. Idempotent.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (!_loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(_loop, this, static e => e.DisposeAsync());
        }

        if (_disposed)
        {
            return default;
        }

        _disposed = true;
        _loop.UnregisterShutdown(_node);
        CloseCore();
        _freeBuffers.Clear();
        if (_receive.Pending)
        {
            _receive.Complete(default, new ObjectDisposedException(ToString(), "The datagram endpoint was disposed while a receive waited."));
        }

        return default;
    }

    /// <summary>The policy closes its socket or handle (once). Loop thread.</summary>
    private protected abstract void CloseCore();

    private sealed class ResourceNode(DatagramEndpoint owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync();
    }

    /// <summary>
    /// The one reusable awaitable of a waiting receive. It is completed on the loop thread only, so its continuation runs
    /// inline there even when the awaiting code captured the loop's context (nothing is posted, nothing allocated).
    /// </summary>
    private sealed class ReceiveSource(DatagramEndpoint owner) : IValueTaskSource<Datagram>
    {
        private readonly DatagramEndpoint _owner = owner;

        private static readonly Action<object?> s_cancelOnLoop = static state => ((ReceiveSource)state!).CancelIfStillPending();

        private static readonly Action<object?, CancellationToken> s_onCanceled = static (state, _) =>
            ((ReceiveSource)state!)._owner._loop.Post(s_cancelOnLoop, state);

        private static readonly Action<object?> s_retry = static state => ((ReceiveSource)state!)._owner.OnReceiveReady();

        private ManualResetValueTaskSourceCore<Datagram> _core = new() { RunContinuationsAsynchronously = false }; // Mutable struct: not readonly
        private CancellationTokenRegistration _registration;
        private CancellationToken _token;

        public bool Pending { get; private set; }

        public ValueTask<Datagram> Start(CancellationToken cancellationToken, bool retryNextTurn)
        {
            _core.Reset();
            Pending = true;
            _token = cancellationToken;
            if (cancellationToken.CanBeCanceled)
            {
                _registration = cancellationToken.UnsafeRegister(s_onCanceled, this);
            }

            if (retryNextTurn)
            {
                _owner._loop.EnqueueReady(s_retry, this);
            }
            else
            {
                _owner.OnReceiveWaiting();
            }

            return new ValueTask<Datagram>(this, _core.Version);
        }

        public void Complete(Datagram datagram, Exception? error)
        {
            Pending = false;
            _registration.Unregister(); // never blocks (a cancellation callback in flight only posts)
            _registration = default;
            _token = default;
            if (error is null)
            {
                _core.SetResult(datagram);
            }
            else
            {
                _core.SetException(error);
            }
        }

        private void CancelIfStillPending()
        {
            if (Pending && _token.IsCancellationRequested)
            {
                Complete(default, new OperationCanceledException(_token));
            }
        }

        public Datagram GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            if (SynchronizationContext.Current is LoopSynchronizationContext context && context.Loop == _owner._loop)
            {
                // Completed on this loop's thread only: running the continuation inline is running it in this context.
                flags &= ~ValueTaskSourceOnCompletedFlags.UseSchedulingContext;
            }

            _core.OnCompleted(continuation, state, token, flags);
        }
    }
}
