using System.Net;
using EventLoop.Managed.Epoll;

namespace EventLoop.Managed;

/// <summary>
/// The pure .NET loop. On Linux it polls for itself, as asyncio's selector loop and libuv do: its poll step is
/// <c>epoll_wait</c> on the loop thread (with the timeout its timers give), other threads wake it through an
/// eventfd, and its TCP sockets are non-blocking descriptors in that epoll set, read and written by the loop
/// thread when they are ready (<see cref="EpollPoller"/>): no hop through .NET's socket engine and the thread pool.
/// Elsewhere (or with <c>EVENTLOOP_MANAGED_IO=sockets</c>) its poll step waits on one event that other threads set,
/// coalesced, when they post, and its sockets are <see cref="System.Net.Sockets.Socket"/>s whose completions
/// arrive on the thread pool and post back here.
/// </summary>
internal sealed class ManagedLoop : Loop
{
    /// <summary>The environment variable that picks the managed loop's I/O: <c>epoll</c> (Linux's default) or <c>sockets</c>.</summary>
    internal const string IoVariable = "EVENTLOOP_MANAGED_IO";

    private readonly ManualResetEventSlim? _wake;
    private readonly EpollPoller? _poller;

    internal ManagedLoop(LoopOptions options, bool? useEpoll = null)
        : base(options)
    {
        if (useEpoll ?? UseEpollByDefault())
        {
            _poller = new EpollPoller(this);
        }
        else
        {
            _wake = new ManualResetEventSlim(initialState: false);
        }
    }

    public override string PolicyName => "managed";

    /// <summary>True when this loop polls with its own epoll (and its TCP is the epoll transport).</summary>
    internal bool UsesEpoll => _poller is not null;

    private static bool UseEpollByDefault() =>
        Linux.IsSupported && !string.Equals(Environment.GetEnvironmentVariable(IoVariable), "sockets", StringComparison.OrdinalIgnoreCase);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private protected override void RunBackend()
    {
        // The iteration order is written once, on Loop.
        while (!StopRequested)
        {
            MoveDueTimersAndInjected();
            RunReadyBatch();
            if (StopRequested)
            {
                break;
            }

            int timeout = GetPollTimeoutMilliseconds();
            if (_poller is not null)
            {
                // I/O is polled every iteration, even with work ready (timeout 0), so a busy loop still serves sockets;
                // with no socket registered and work ready there is nothing to poll.
                if (timeout != 0 && PrepareToSleep())
                {
                    // Only the wait itself is the backend's: the handlers run app code (resumed reads), whose blocking
                    // waits the deadlock check must still see.
                    IsInBackendWait = true;
                    int ready = _poller.Poll(timeout);
                    IsInBackendWait = false;
                    AfterSleep();
                    _poller.Dispatch(ready);
                }
                else if (_poller.Registered != 0)
                {
                    _poller.Wait(0);
                }
            }
            else if (timeout != 0 && PrepareToSleep())
            {
                IsInBackendWait = true;
                _wake!.Wait(timeout);
                IsInBackendWait = false;
                _wake.Reset();
                AfterSleep();
            }
        }
    }

    private protected override void WakeBackend()
    {
        if (_poller is not null)
        {
            _poller.Wake();
        }
        else
        {
            _wake!.Set();
        }
    }

    private protected override bool DrainBackendOnce() => _poller is not null && _poller.Wait(0) > 0;

    private protected override void WaitForPostsDuringShutdown(int milliseconds)
    {
        if (!PrepareToSleep())
        {
            return;
        }

        if (_poller is not null)
        {
            _poller.Wait(milliseconds);
        }
        else
        {
            IsInBackendWait = true;
            _wake!.Wait(milliseconds);
            IsInBackendWait = false;
            _wake.Reset();
        }

        AfterSleep();
    }

    /// <summary>I/O events wait in the epoll set: only this thread can handle them (the blocking-wait check asks).</summary>
    private protected override bool HasReadyIo() => _poller is not null && Linux.IsReadable(_poller.Descriptor);

    private protected override void CloseBackend()
    {
        _poller?.Dispose();
        _wake?.Dispose();
    }

    private protected override ValueTask<ConnectionListener> ListenTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        _poller is not null
            ? new(EpollListener.Listen(this, _poller, endpoint, options))
            : new(Transports.Sockets.SocketListener.Listen(this, endpoint, options));

    private protected override ValueTask<Connection> ConnectTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        _poller is not null
            ? EpollConnector.ConnectAsync(this, _poller, endpoint, options, cancellationToken)
            : Transports.Sockets.SocketListener.ConnectAsync(this, endpoint, options, cancellationToken);

    private protected override Connection AdoptAcceptedTcpSocketCore(System.Net.Sockets.Socket socket, TcpOptions options) =>
        _poller is not null
            ? EpollHandOff.Adopt(this, _poller, socket, options)
            : base.AdoptAcceptedTcpSocketCore(socket, options);

    private protected override ValueTask<ConnectionListener> ListenUnixCoreAsync(Transports.Unix.UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken) =>
        _poller is not null
            ? new(EpollListener.ListenUnix(this, _poller, path, options))
            : new(Transports.Sockets.SocketListener.ListenUnix(this, path, options));

    private protected override ValueTask<Connection> ConnectUnixCoreAsync(Transports.Unix.UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken) =>
        _poller is not null
            ? EpollConnector.ConnectUnixAsync(this, _poller, path, options, cancellationToken)
            : Transports.Sockets.SocketListener.ConnectUnixAsync(this, path, options, cancellationToken);

    private protected override DatagramEndpoint OpenDatagramEndpointCore(IPEndPoint local, IPEndPoint? remote, DatagramOptions options) =>
        _poller is not null
            ? EpollUdpEndpoint.Open(this, _poller, local, remote, options)
            : Transports.Sockets.SocketUdpEndpoint.Open(this, local, remote, options);

    private protected override Connection OpenPipeCore(Transports.Pipes.PipeDescriptor pipe, TcpOptions options) =>
        Transports.Pipes.ManagedPipes.Open(this, _poller, pipe, options);

    private protected override ConnectionListener ListenInheritedCore(Transports.Pipes.PipeDescriptor socket, TcpOptions options) =>
        Transports.Pipes.ManagedPipes.Listen(this, _poller, socket, options);

    private protected override LoopFileSystem CreateFileSystem() => new Transports.Files.ManagedFileSystem(this);

    private Transports.Processes.SpawnedChildren? _children;

    private protected override LoopProcess StartProcessCore(Transports.Processes.ProcessLaunch launch) =>
        Transports.Processes.SpawnedProcess.Start(
            _children ??= new(this, (fd, l, stream) => Transports.Processes.SpawnedProcess.OpenManagedPipe(this, _poller, fd, l, stream)),
            launch);
}
