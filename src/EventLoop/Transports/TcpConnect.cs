using System.Net;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;

namespace EventLoop.Transports;

/// <summary>
/// What both transports' connects share: a <see cref="DnsEndPoint"/> is resolved (through <see cref="Dns"/>), and its
/// addresses are tried in turn, as <see cref="Socket.ConnectAsync(EndPoint)"/> does for a host name, or, when both
/// families resolved and <see cref="TcpOptions.HappyEyeballsDelay"/> is set, raced with staggered starts (RFC 8305);
/// the last failure is reported if none connects.
/// </summary>
internal static class TcpConnect
{
    /// <summary>Connects to <paramref name="endpoint"/> with <paramref name="connectOne"/> per address. Loop thread.</summary>
    /// <exception cref="SocketException"><c>HostNotFound</c> when the name has no address; else the last address's failure.</exception>
    /// <exception cref="ArgumentException">The endpoint is neither an <see cref="IPEndPoint"/> nor a <see cref="DnsEndPoint"/>.</exception>
    public static async ValueTask<Connection> ConnectAsync<TState>(
        Loop loop,
        EndPoint endpoint,
        TimeSpan? happyEyeballsDelay,
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

        IPAddress[] addresses = loop.HostResolverForTests is { } resolve
            ? await resolve(dns.Host, dns.AddressFamily, cancellationToken).ConfigureAwait(true)
            : await Dns.GetHostAddressesAsync(dns.Host, dns.AddressFamily, cancellationToken).ConfigureAwait(true);
        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound, $"No address found for '{dns.Host}'.");
        }

        bool bothFamilies = addresses.Any(a => a.AddressFamily == AddressFamily.InterNetwork) && addresses.Any(a => a.AddressFamily == AddressFamily.InterNetworkV6);
        if (happyEyeballsDelay is { } delay && bothFamilies)
        {
            return await RaceAsync(loop, Interleave(addresses), dns.Port, delay, state, connectOne, cancellationToken).ConfigureAwait(true);
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

    /// <summary>RFC 8305 §4: the families alternate, starting with the first address's.</summary>
    internal static IPAddress[] Interleave(IPAddress[] addresses)
    {
        var first = new Queue<IPAddress>(addresses.Where(a => a.AddressFamily == addresses[0].AddressFamily));
        var second = new Queue<IPAddress>(addresses.Where(a => a.AddressFamily != addresses[0].AddressFamily));
        var result = new List<IPAddress>(addresses.Length);
        while (first.Count > 0 || second.Count > 0)
        {
            if (first.TryDequeue(out IPAddress? a))
            {
                result.Add(a);
            }

            if (second.TryDequeue(out IPAddress? b))
            {
                result.Add(b);
            }
        }

        return [.. result];
    }

    /// <summary>
    /// Happy eyeballs: starts the first attempt, and each next one when the previous failed or <paramref name="delay"/>
    /// passed with no winner; the first connection wins, every other attempt is cancelled and any connection it still
    /// made is disposed.
    /// </summary>
    private static async ValueTask<Connection> RaceAsync<TState>(
        Loop loop,
        IPAddress[] addresses,
        int port,
        TimeSpan delay,
        TState state,
        Func<TState, IPEndPoint, CancellationToken, ValueTask<Connection>> connectOne,
        CancellationToken cancellationToken)
    {
        using var losers = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = new List<Task<Connection>>();
        ExceptionDispatchInfo? last = null;
        int next = 0;
        Connection? winner = null;
        try
        {
            while (winner is null)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (next < addresses.Length)
                {
                    running.Add(connectOne(state, new IPEndPoint(addresses[next++], port), losers.Token).AsTask());
                }

                if (running.Count == 0)
                {
                    break; // every address failed
                }

                // Wait for an attempt to end, or for the delay before the next one (if there is a next one).
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(losers.Token);
                Task wake = next < addresses.Length ? loop.DelayAsync(delay, timer.Token) : Task.Delay(Timeout.Infinite, timer.Token);
                Task done = await Task.WhenAny(running.Append(wake)).ConfigureAwait(true);
                timer.Cancel();
                if (done == wake)
                {
                    continue; // no winner yet: start the next attempt beside the ones running
                }

                var attempt = (Task<Connection>)done;
                running.Remove(attempt);
                if (attempt.IsCompletedSuccessfully)
                {
                    winner = attempt.Result;
                }
                else if (attempt.Exception?.InnerException is SocketException failure)
                {
                    last = ExceptionDispatchInfo.Capture(failure); // failed: the next attempt starts at once
                }
                else
                {
                    await attempt.ConfigureAwait(true); // cancelled or an unexpected failure: it leaves as it is
                }
            }
        }
        finally
        {
            // The losers: cancel them, and close any connection one made all the same.
            losers.Cancel();
            foreach (Task<Connection> attempt in running)
            {
                try
                {
                    Connection late = await attempt.ConfigureAwait(true);
                    await late.DisposeAsync().ConfigureAwait(true);
                }
                catch (Exception)
                {
                    // Cancelled or failed: nothing to close.
                }
            }
        }

        if (winner is not null)
        {
            return winner;
        }

        last!.Throw();
        throw new System.Diagnostics.UnreachableException();
    }
}
