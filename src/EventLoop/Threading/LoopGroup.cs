using System.Net;

namespace EventLoop;

/// <summary>
/// A group of loops, each on its own thread (<see cref="LoopThread"/>), for a service that needs more than one core:
/// work is spread round-robin (<see cref="Next"/>), and a TCP server can spread its connections across every loop
/// (<see cref="ListenTcpAsync"/>), each connection living on one loop for its whole life. Netty's event loop group,
/// libuv's one loop per thread.
/// </summary>
/// <example><code>
/// await using LoopGroup group = LoopGroup.Start(count: 4, new LibuvLoopPolicy());
/// await using LoopGroupServer server = await group.ListenTcpAsync(new IPEndPoint(IPAddress.Any, 5000), async connection =&gt;
/// {
///     await connection.Input.CopyToAsync(connection.Output); // on the connection's own loop, every callback
/// });
/// </code></example>
public sealed class LoopGroup : IAsyncDisposable
{
    private readonly LoopThread[] _threads;
    private readonly List<LoopGroupServer> _servers = [];
    private int _next = -1;
    private bool _disposed; // under _servers' lock
    private Task? _disposeTask;

    private LoopGroup(LoopThread[] threads, AcceptSpreading spreading)
    {
        _threads = threads;
        Spreading = spreading;
    }

    /// <summary>
    /// Starts <paramref name="count"/> loops (default <see cref="Environment.ProcessorCount"/>) of <paramref name="policy"/>
    /// (default <see cref="EventLoopPolicy.Current"/>), each on its own background thread, and returns once all run.
    /// </summary>
    /// <param name="count">How many loops; default one per processor.</param>
    /// <param name="policy">The loop policy; null for <see cref="EventLoopPolicy.Current"/>.</param>
    /// <param name="options">The options of every loop (one object, shared: its exception handler and log are called from every loop thread).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is less than 1.</exception>
    public static LoopGroup Start(int? count = null, LoopPolicy? policy = null, LoopOptions? options = null)
    {
        int loops = count ?? Environment.ProcessorCount;
        ArgumentOutOfRangeException.ThrowIfLessThan(loops, 1, nameof(count));
        policy ??= EventLoopPolicy.Current;
        AcceptSpreading spreading = DefaultSpreading();
        var threads = new LoopThread[loops];
        try
        {
            for (int i = 0; i < loops; i++)
            {
                threads[i] = LoopThread.Start(policy, options, $"EventLoop {policy.Name} loop {i + 1}/{loops}");
            }
        }
        catch
        {
            foreach (LoopThread? started in threads)
            {
                started?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            throw;
        }

        return new LoopGroup(threads, spreading);
    }

    /// <summary>The loops, each on its own thread, in a fixed order.</summary>
    public IReadOnlyList<LoopThread> Loops => _threads;

    /// <summary>
    /// The next loop in round-robin order. Thread-safe and lock-free. Use its thread-safe members (<see cref="Loop.CallSoonThreadSafe(Action)"/>,
    /// <see cref="Loop.SynchronizationContext"/>, <see cref="Loop.TaskScheduler"/>), or the matching <see cref="LoopThread"/>
    /// in <see cref="Loops"/>.
    /// </summary>
    public Loop Next() => NextThread().Loop;

    internal LoopThread NextThread()
    {
        uint turn = (uint)Interlocked.Increment(ref _next);
        return _threads[turn % (uint)_threads.Length];
    }

    /// <summary>
    /// Listens for TCP connections on <paramref name="endpoint"/> with every loop of the group, and runs
    /// <paramref name="handler"/> for each connection on the loop that accepted it: every callback of a connection runs on
    /// that one thread, for its whole life. When the handler's task completes, the connection is disposed (gracefully).
    /// </summary>
    /// <remarks>
    /// <para>
    /// On Linux each loop has its own listener on the port (<see cref="TcpOptions.ReusePort"/>, <c>SO_REUSEPORT</c>), and
    /// the kernel spreads the connections across them by a hash of their addresses: no thread hands connections to
    /// another. With port 0 the first listener takes a free port and the others join it. Elsewhere one listener accepts
    /// on the thread pool and hands each connection to the next loop in turn.
    /// </para>
    /// <para>
    /// A handler's <see cref="IOException"/> (a reset, or the abort at stop) and <see cref="OperationCanceledException"/>
    /// end its connection quietly; any other exception goes to the loop's exception handler, and the server goes on.
    /// </para>
    /// </remarks>
    /// <exception cref="System.Net.Sockets.SocketException">The address is in use or not available.</exception>
    /// <exception cref="ObjectDisposedException">The group is disposed.</exception>
    public async Task<LoopGroupServer> ListenTcpAsync(
        EndPoint endpoint, Func<Connection, Task> handler, TcpOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(handler);
        if (endpoint is not IPEndPoint ip)
        {
            throw new ArgumentException(
                $"Listening needs an IPEndPoint (an IP address and a port); got {endpoint.GetType().Name} '{endpoint}'.", nameof(endpoint));
        }

        TcpOptions checkedOptions = options?.Validate() ?? TcpOptions.Default;
        cancellationToken.ThrowIfCancellationRequested();
        lock (_servers)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        LoopGroupServer server = await LoopGroupServer.StartAsync(this, ip, handler, checkedOptions, Spreading, cancellationToken).ConfigureAwait(false);
        lock (_servers)
        {
            if (!_disposed)
            {
                _servers.Add(server);
                return server;
            }
        }

        await server.StopAsync(TimeSpan.Zero).ConfigureAwait(false); // the group was disposed meanwhile
        throw new ObjectDisposedException(ToString());
    }

    /// <summary>How <see cref="ListenTcpAsync"/> spreads connections: see <see cref="AcceptSpreading"/>.</summary>
    internal AcceptSpreading Spreading { get; set; }

    /// <summary>The environment variable that picks the spreading (<c>reuseport</c> or <c>handoff</c>), so the echo harness can measure one against the other.</summary>
    internal const string SpreadingVariable = "EVENTLOOP_GROUP_SPREADING";

    private static AcceptSpreading DefaultSpreading()
    {
        string? chosen = Environment.GetEnvironmentVariable(SpreadingVariable)?.Trim().ToLowerInvariant();
        return chosen switch
        {
            "handoff" => AcceptSpreading.HandOff,
            "reuseport" when OperatingSystem.IsLinux() => AcceptSpreading.ReusePort,
            null or "" when OperatingSystem.IsLinux() => AcceptSpreading.ReusePort,
            null or "" or "reuseport" => AcceptSpreading.HandOff, // SO_REUSEPORT spreads connections only on Linux
            _ => throw new ArgumentException($"{SpreadingVariable} must be 'reuseport' or 'handoff', not '{chosen}'."),
        };
    }

    internal void Forget(LoopGroupServer server)
    {
        lock (_servers)
        {
            _servers.Remove(server);
        }
    }

    /// <summary>
    /// Stops every server of the group (as <see cref="LoopGroupServer.DisposeAsync"/> does: stop accepting, let handlers
    /// finish within <see cref="LoopGroupServer.DefaultStopTimeout"/>, abort the rest), then every loop (as
    /// <see cref="LoopThread.DisposeAsync"/> does). Safe from any thread and idempotent.
    /// </summary>
    /// <remarks>
    /// On one of the group's own loop threads it cannot wait for that loop to close: there it starts the stop and
    /// returns a completed task at once; await <see cref="LoopThread.Completion"/> of each loop from elsewhere to know when
    /// the group has ended.
    /// </remarks>
    public ValueTask DisposeAsync()
    {
        Task dispose;
        lock (_servers)
        {
            _disposed = true;
            dispose = _disposeTask ??= Task.Run(DisposeCoreAsync);
        }

        foreach (LoopThread thread in _threads)
        {
            if (thread.Loop.IsOnLoopThread)
            {
                return default; // waiting here would wait for this very thread
            }
        }

        return new ValueTask(dispose);
    }

    private async Task DisposeCoreAsync()
    {
        LoopGroupServer[] servers;
        lock (_servers)
        {
            servers = [.. _servers];
        }

        await Task.WhenAll(servers.Select(server => server.DisposeAsync().AsTask())).ConfigureAwait(false);
        await Task.WhenAll(_threads.Select(thread => thread.DisposeAsync().AsTask())).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override string ToString() => $"LoopGroup of {_threads.Length} {_threads[0].Loop.PolicyName} loops";
}

/// <summary>How a <see cref="LoopGroup"/>'s TCP server spreads accepted connections across its loops.</summary>
internal enum AcceptSpreading
{
    /// <summary>One listener per loop on the same port (<c>SO_REUSEPORT</c>); the kernel picks the listener. Linux.</summary>
    ReusePort,

    /// <summary>One listener, accepting on the thread pool, hands each socket to the next loop in turn. Anywhere.</summary>
    HandOff,
}
