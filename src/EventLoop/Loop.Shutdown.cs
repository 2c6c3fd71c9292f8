using System.Diagnostics;
using System.Runtime.CompilerServices;
using EventLoop.Internal;

namespace EventLoop;

// The shutdown half of the loop: asyncio.run's cancel-and-drain, the registry of what to cancel or close.
public abstract partial class Loop
{
    /// <summary>
    /// Shuts the loop down after main: asyncio.run's cancel-and-drain. Runs on the loop thread with the
    /// context still installed so cancellation continuations run here.
    /// </summary>
    private void Shutdown()
    {
        _state = (int)LoopState.ShuttingDown;
        _stopRequested = false;
        try
        {
            _shutdownCts?.Cancel();
        }
        catch (Exception ex)
        {
            ReportException("A ShutdownToken callback threw during shutdown", ex, null);
        }

        CancelShutdownNodes();
        Drain();

        // Close what holds resources (listeners, connections), then let their completions run.
        CloseResources();
        _resourcesClosed = true;
        Drain();
        _timers.Clear();
        try
        {
            CloseBackend();
        }
        finally
        {
            _ready.Clear();
            while (_inject.TryDequeue(out _))
            {
            }

            _shutdownCts?.Dispose();
        }
    }

    /// <summary>Runs ready work until none is left (bounded, so a callback that keeps rescheduling itself cannot hang shutdown).</summary>
    private void Drain()
    {
        long deadline = 0;
        for (int round = 0; round < 10_000; round++)
        {
            MoveInjected();
            if (_ready.Count == 0)
            {
                if (DrainBackendOnce())
                {
                    continue;
                }

                if (PendingIo <= 0 || !_resourcesClosed)
                {
                    return; // before resources are closed, open sockets owe nothing
                }

                // Closed sockets still owe us their completions (they arrive from other threads): wait for
                // them, bounded, so every pump and accept ends on the loop before it closes.
                long now = Stopwatch.GetTimestamp();
                deadline = deadline == 0 ? now + (5 * Stopwatch.Frequency) : deadline;
                if (now > deadline)
                {
                    WriteLog($"EventLoop: {PendingIo} I/O operation(s) did not complete within 5 s of shutdown.");
                    return;
                }

                WaitForPostsDuringShutdown(20);
                continue;
            }

            RunReadyBatch();
            CancelShutdownNodes();
        }

        WriteLog("EventLoop: shutdown stopped draining after 10,000 rounds; callbacks keep scheduling callbacks.");
    }

    // ---------------------------------------------------------------- shutdown registry

    /// <summary>Registers something to cancel or close when the loop shuts down (a wait, a connection). Loop thread only.</summary>
    internal void RegisterShutdown(ShutdownNode node)
    {
        node.Next = _shutdownHead;
        node.Previous = null;
        if (_shutdownHead is not null)
        {
            _shutdownHead.Previous = node;
        }

        _shutdownHead = node;
        node.Registered = true;
    }

    internal void UnregisterShutdown(ShutdownNode node)
    {
        if (!node.Registered)
        {
            return;
        }

        if (node.Previous is not null)
        {
            node.Previous.Next = node.Next;
        }
        else
        {
            _shutdownHead = node.Next;
        }

        if (node.Next is not null)
        {
            node.Next.Previous = node.Previous;
        }

        node.Next = node.Previous = null;
        node.Registered = false;
    }

    internal bool IsShuttingDown => _state >= (int)LoopState.ShuttingDown;

    private void CancelShutdownNodes() => WalkShutdownNodes(resources: false);

    private void CloseResources() => WalkShutdownNodes(resources: true);

    private void WalkShutdownNodes(bool resources)
    {
        ShutdownNode? node = _shutdownHead;
        while (node is not null)
        {
            ShutdownNode? next = node.Next;
            if (node.IsResource == resources)
            {
                UnregisterShutdown(node);
                try
                {
                    node.OnShutdown();
                }
                catch (Exception ex)
                {
                    ReportException("Exception while shutting down", ex, node);
                }
            }

            node = next;
        }
    }

}
