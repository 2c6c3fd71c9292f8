using System.Net;

namespace EventLoop;

/// <summary>
/// A TCP server whose connections are spread across the loops of a <see cref="LoopGroup"/> (see
/// <see cref="LoopGroup.ListenTcpAsync"/>). Stop it with <see cref="StopAsync"/> or <see cref="DisposeAsync"/>.
/// </summary>
public sealed partial class LoopGroupServer : IAsyncDisposable
{
    private readonly LoopGroup _group;
    private readonly IPEndPoint _localEndPoint;
    private readonly LoopServing[] _serving;
    private readonly HandOffAcceptor? _handOff;
    private readonly object _stopLock = new();
    private Task? _stopping;

    private LoopGroupServer(LoopGroup group, IPEndPoint localEndPoint, LoopServing[] serving, HandOffAcceptor? handOff)
    {
        _group = group;
        _localEndPoint = localEndPoint;
        _serving = serving;
        _handOff = handOff;
    }

    /// <summary>How long <see cref="DisposeAsync"/> (and the group's dispose) lets handlers finish before aborting their connections: 5 seconds.</summary>
    public static TimeSpan DefaultStopTimeout { get; } = TimeSpan.FromSeconds(5);

    /// <summary>The address the server listens on (with the real port when port 0 was asked for).</summary>
    public EndPoint LocalEndPoint => _localEndPoint;

    /// <summary>
    /// Stops gracefully: stops accepting on every loop, lets the handlers that are running finish for up to
    /// <paramref name="timeout"/>, then aborts the connections still open (their reads and writes fail with a
    /// <see cref="ConnectionAbortedException"/>, which ends a handler that uses its connection) and gives their handlers a
    /// moment to end. Safe from any thread; every call returns the first call's stop.
    /// </summary>
    /// <param name="timeout">How long handlers may take to finish; <see cref="TimeSpan.Zero"/> aborts at once,
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits for them however long they take.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative (and not infinite).</exception>
    public Task StopAsync(TimeSpan timeout)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The stop timeout must not be negative (or Timeout.InfiniteTimeSpan).");
        }

        lock (_stopLock)
        {
            return _stopping ??= Task.Run(() => StopCoreAsync(timeout));
        }
    }

    /// <summary>Stops as <see cref="StopAsync"/> does, with <see cref="DefaultStopTimeout"/>.</summary>
    public ValueTask DisposeAsync() => new(StopAsync(DefaultStopTimeout));

    private async Task StopCoreAsync(TimeSpan timeout)
    {
        // 1. No more connections: every listener closes, and each loop's accept loop ends. After that no handler
        // starts, so the handlers gathered next are all there will be.
        if (_handOff is not null)
        {
            await _handOff.StopAsync().ConfigureAwait(false);
        }

        await Task.WhenAll(_serving.Select(serving => serving.StopAcceptingAsync())).ConfigureAwait(false);

        // 2. Let the handlers finish, within the timeout.
        Task[] handlers = (await Task.WhenAll(_serving.Select(serving => serving.RunningHandlersAsync())).ConfigureAwait(false))
            .SelectMany(tasks => tasks).ToArray();
        Task all = Task.WhenAll(handlers);
        if (!await CompletesWithinAsync(all, timeout).ConfigureAwait(false))
        {
            // 3. Abort the connections still open; a handler that uses its connection ends with the abort.
            string reason =
                $"The server on {_localEndPoint} stopped, and this connection's handler had not finished within the stop timeout ({timeout.TotalSeconds:0.###} s).";
            await Task.WhenAll(_serving.Select(serving => serving.AbortAllAsync(reason))).ConfigureAwait(false);
            await CompletesWithinAsync(all, AbortGrace).ConfigureAwait(false);
        }

        _group.Forget(this);
    }

    /// <summary>
    /// After the abort, how long the stop waits for handlers to notice it. A handler that awaits something other than its
    /// connection may not; it is left running, and its loop's shutdown cancels what it waits for.
    /// </summary>
    private static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(1);

    private static async Task<bool> CompletesWithinAsync(Task task, TimeSpan timeout)
    {
        if (task.IsCompleted || timeout == Timeout.InfiniteTimeSpan)
        {
            await task.ConfigureAwait(false);
            return true;
        }

        using var delay = new CancellationTokenSource();
        Task first = await Task.WhenAny(task, Task.Delay(timeout, delay.Token)).ConfigureAwait(false);
        await delay.CancelAsync().ConfigureAwait(false);
        return first == task;
    }

    /// <summary>Opens the listeners (or the hand-off acceptor) and starts accepting on every loop.</summary>
    internal static async Task<LoopGroupServer> StartAsync(
        LoopGroup group, IPEndPoint endpoint, Func<Connection, Task> handler, TcpOptions options, AcceptSpreading spreading, CancellationToken cancellationToken)
    {
        IReadOnlyList<LoopThread> threads = group.Loops;
        var serving = new LoopServing[threads.Count];
        for (int i = 0; i < serving.Length; i++)
        {
            serving[i] = new LoopServing(threads[i], handler);
        }

        if (spreading == AcceptSpreading.HandOff && threads.Count > 1)
        {
            var handOff = HandOffAcceptor.Listen(serving, endpoint, options);
            return new LoopGroupServer(group, handOff.LocalEndPoint, serving, handOff);
        }

        // One listener per loop on one port. The first binds what was asked (port 0 picks one); the others join its port.
        TcpOptions shared = options;
        if (threads.Count > 1 && !options.ReusePort)
        {
            shared = options.Clone();
            shared.ReusePort = true;
        }

        IPEndPoint bound = endpoint;
        try
        {
            for (int i = 0; i < serving.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                EndPoint local = await serving[i].ListenAsync(bound, shared).ConfigureAwait(false);
                if (i == 0)
                {
                    bound = (IPEndPoint)local;
                }
            }
        }
        catch
        {
            await Task.WhenAll(serving.Select(s => s.StopAcceptingAsync())).ConfigureAwait(false);
            throw;
        }

        return new LoopGroupServer(group, bound, serving, handOff: null);
    }

    /// <inheritdoc />
    public override string ToString() => $"LoopGroupServer on {_localEndPoint} ({_serving.Length} loops)";
}
