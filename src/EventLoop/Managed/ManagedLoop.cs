using System.Net;

namespace EventLoop.Managed;

/// <summary>
/// The pure .NET loop. Its poll step waits on one event that other threads set, coalesced, when they post;
/// managed I/O (sockets) completes on the thread pool and posts back here.
/// </summary>
internal sealed class ManagedLoop : Loop
{
    private readonly ManualResetEventSlim _wake = new(initialState: false);

    internal ManagedLoop(LoopOptions options)
        : base(options)
    {
    }

    public override string PolicyName => "managed";

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
            if (timeout != 0 && PrepareToSleep())
            {
                IsInBackendWait = true;
                _wake.Wait(timeout);
                IsInBackendWait = false;
                _wake.Reset();
                AfterSleep();
            }
        }
    }

    private protected override void WakeBackend() => _wake.Set();

    private protected override void WaitForPostsDuringShutdown(int milliseconds)
    {
        if (PrepareToSleep())
        {
            IsInBackendWait = true;
            _wake.Wait(milliseconds);
            IsInBackendWait = false;
            _wake.Reset();
            AfterSleep();
        }
    }

    private protected override void CloseBackend() => _wake.Dispose();

    private protected override ValueTask<ConnectionListener> ListenTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        new(Transports.Sockets.SocketListener.Listen(this, endpoint, options));

    private protected override ValueTask<Connection> ConnectTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        Transports.Sockets.SocketListener.ConnectAsync(this, endpoint, options, cancellationToken);
}
