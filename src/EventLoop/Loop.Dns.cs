using System.Net;
using System.Net.Sockets;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Resolves <paramref name="host"/> (a name or an address literal) to its addresses, each with
    /// <paramref name="port"/> (asyncio's <c>loop.getaddrinfo</c>), in the resolver's order, without blocking the loop:
    /// <c>uv_getaddrinfo</c> on libuv's thread pool, <see cref="Dns"/> on the managed loop. Completes on the loop thread.
    /// </summary>
    /// <param name="host">The host name or address.</param>
    /// <param name="port">The port the endpoints carry, 0 to 65535.</param>
    /// <param name="family"><see cref="AddressFamily.InterNetwork"/> or <see cref="AddressFamily.InterNetworkV6"/> for one family; unspecified for both.</param>
    /// <param name="cancellationToken">Cancels the wait at once (the lookup itself is abandoned where it cannot be stopped).</param>
    /// <exception cref="SocketException">The name does not resolve (<c>SocketError.HostNotFound</c>, or <c>TryAgain</c> when the resolver could not be reached).</exception>
    /// <exception cref="ArgumentException">The host is empty, the port out of range, or the family is not an IP family.</exception>
    public Task<IPEndPoint[]> GetAddrInfoAsync(string host, int port = 0, AddressFamily family = AddressFamily.Unspecified, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, IPEndPoint.MinPort);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        if (family is not (AddressFamily.Unspecified or AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"GetAddrInfoAsync resolves IPv4 and IPv6 addresses; {family} is neither.", nameof(family));
        }

        CheckLoopThread();
        CheckNotClosed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<IPEndPoint[]>(cancellationToken);
        }

        return GetAddrInfoCoreAsync(host, port, family, cancellationToken);
    }

    /// <summary>
    /// The host name of <paramref name="address"/> (asyncio's <c>loop.getnameinfo</c>, with <c>NI_NAMEREQD</c>), without
    /// blocking the loop: <c>uv_getnameinfo</c> on libuv, <see cref="Dns"/> on the managed loop. Completes on the loop thread.
    /// </summary>
    /// <exception cref="SocketException">The address has no name (<c>SocketError.HostNotFound</c>).</exception>
    public Task<string> GetNameInfoAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        CheckLoopThread();
        CheckNotClosed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<string>(cancellationToken);
        }

        return GetNameInfoCoreAsync(address, cancellationToken);
    }

    /// <summary>The policy's resolver; the managed loop's is <see cref="Dns"/>. Loop thread, arguments checked.</summary>
    private protected virtual async Task<IPEndPoint[]> GetAddrInfoCoreAsync(string host, int port, AddressFamily family, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, ShutdownToken); // shutdown ends the wait
        PendingIo++;
        try
        {
            Task<IPAddress[]> lookup = Dns.GetHostAddressesAsync(host, family, linked.Token);
            addresses = await DeliverLaterAsync(lookup.WaitAsync(linked.Token)).ConfigureAwait(true);
            linked.Token.ThrowIfCancellationRequested(); // cancelled before the result reached the loop: cancellation wins
        }
        finally
        {
            PendingIo--;
        }

        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound, $"No {(family == AddressFamily.Unspecified ? "" : family + " ")}address found for '{host}'.");
        }

        var endpoints = new IPEndPoint[addresses.Length];
        for (int i = 0; i < addresses.Length; i++)
        {
            endpoints[i] = new IPEndPoint(addresses[i], port);
        }

        return endpoints;
    }

    /// <summary>The policy's reverse lookup; the managed loop's is <see cref="Dns"/>. Loop thread, arguments checked.</summary>
    private protected virtual async Task<string> GetNameInfoCoreAsync(IPAddress address, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, ShutdownToken); // shutdown ends the wait
        PendingIo++;
        try
        {
            // No overload takes a token: the wait is what is cancelled, and a lookup left running completes unobserved.
            Task<IPHostEntry> lookup = Dns.GetHostEntryAsync(address);
            IPHostEntry entry = await DeliverLaterAsync(lookup.WaitAsync(linked.Token)).ConfigureAwait(true);
            linked.Token.ThrowIfCancellationRequested(); // cancelled before the result reached the loop: cancellation wins
            return entry.HostName;
        }
        finally
        {
            PendingIo--;
        }
    }

    /// <summary>
    /// A lookup that has finished by the time it is awaited (an address literal, a name in /etc/hosts, or a lookup that
    /// completed on the thread pool an instant after it started) is still delivered in a later loop turn, as libuv's
    /// callback is, so a cancellation the caller makes before the loop turns wins on both loops alike. (Checking the
    /// lookup once and then awaiting it left a window: a lookup completing in between was awaited synchronously, and
    /// the caller got a result before it could cancel.)
    /// </summary>
    private static async Task<T> DeliverLaterAsync<T>(Task<T> wait)
    {
        if (wait.IsCompleted)
        {
            await Task.Yield();
        }

        return await wait.ConfigureAwait(true);
    }
}
