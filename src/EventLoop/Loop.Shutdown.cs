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
    /// <remarks>
    /// <para>The order, each step once:</para>
    /// <list type="number">
    /// <item>Cancel <see cref="ShutdownToken"/> and every loop wait (sleeps, accepts), and run what that makes
    /// ready, so code awaiting them unwinds. Bounded without a warning: open connections may keep posting
    /// completions until step 2 closes them, and that is live I/O, not a callback loop.</item>
    /// <item>Close every resource (listeners, connections, connects in flight), then run their completions,
    /// waiting (bounded) for I/O that still owes one. Posts from other threads that arrive meanwhile run.</item>
    /// <item>Stop taking posts from other threads (<see cref="CallSoonThreadSafe(Action)"/> throws from now on)
    /// and run every post already made: a post either runs or is refused, never lost (see <see cref="TryInject(object, object?)"/>).</item>
    /// <item>Count what is still open (the leak check), close the backend and every native handle.</item>
    /// </list>
    /// </remarks>
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
        Drain(maxRounds: 1_000, warn: false);

        // Close what holds resources (listeners, connections), then let their completions run.
        CloseResources();
        _resourcesClosed = true;
        Drain(maxRounds: 10_000, warn: true);

        // Other threads' posts are refused from here on. The exchange is a full fence; a poster re-reads the
        // state after its own (full-fence) enqueue, so either this thread sees its post below, or it sees
        // Closing and takes the post back itself once the loop is closed (Dekker's pattern, see TryInject).
        Interlocked.Exchange(ref _state, (int)LoopState.Closing);
        _inject.WaitUntilLinked();
        MoveInjectedDuringShutdown();

        // Every post accepted is in the ready queue now, and no more come: run all of them, however many a
        // flood of posts left (the bounded drains above may not have caught up with it).
        long accepted = _ready.NextIndex;
        while (_ready.Dequeued < accepted)
        {
            RunReadyBatch();
        }

        // What they scheduled or started (a callback, a connection, a wait) ends as in the steps above.
        for (int round = 0; round < 10; round++)
        {
            MoveInjectedDuringShutdown();
            if (_ready.Count == 0 && !HasShutdownNodes)
            {
                break;
            }

            CancelShutdownNodes();
            CloseResources();
            Drain(maxRounds: 1_000, warn: round == 9);
        }

        OpenAtClose = DescribeOpenResources();
        if (OpenAtClose is not null)
        {
            ReportException(
                $"The {PolicyName} loop finished shutting down with resources still open: {OpenAtClose}. " +
                "Whatever opened them did not close them, and the loop's shutdown did not know of them (a leak).",
                new InvalidOperationException("Leaked loop resources: " + OpenAtClose));
        }

        _timers.Clear();
        try
        {
            CloseBackend();
        }
        finally
        {
            _ready.Clear();
            _shutdownCts?.Dispose();
        }
    }

    /// <summary>
    /// What was still open when shutdown had closed everything it knew of, just before the backend closed
    /// (null when nothing): sockets of the socket transport, and on libuv every native handle that was not
    /// closing and every native request. The leak check of the tests reads it; the loop also reports it.
    /// </summary>
    internal string? OpenAtClose { get; private set; }

    /// <summary>Describes resources still open (see <see cref="OpenAtClose"/>), or null. Loop thread, before the backend closes.</summary>
    private protected virtual string? DescribeOpenResources() =>
        OpenSocketCount != 0 ? $"{OpenSocketCount} socket(s)"
        : OpenSignalHandlerCount != 0 ? $"{OpenSignalHandlerCount} signal handler(s)"
        : null;

    /// <summary>
    /// Runs ready work until none is left, and, once resources are closed, until closed I/O has delivered its
    /// completions (bounded, 5 s). Bounded in rounds too, so a callback that keeps rescheduling itself cannot
    /// hang shutdown; with <paramref name="warn"/>, hitting that bound is logged with the callbacks that kept
    /// the loop busy.
    /// </summary>
    private void Drain(int maxRounds, bool warn)
    {
        long deadline = 0;
        int posted = 0;
        for (int round = 0; round < maxRounds; round++)
        {
            posted = MoveInjectedDuringShutdown();
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

        if (warn && _ready.Count > 0)
        {
            string cause = posted > 0
                ? $"other threads keep posting ({posted:N0} posts in the last round)"
                : "callbacks keep scheduling callbacks";
            WriteLog($"EventLoop: shutdown stopped draining after {maxRounds:N0} rounds: {cause}. The busiest callbacks: " +
                     $"{DescribeBusiestReady(256)}. Shutdown goes on; what is left runs once the loop stops taking posts, " +
                     "or is dropped if it keeps rescheduling itself.");
        }
    }

    /// <summary>During shutdown every post is moved (the run loop moves a bounded batch per iteration). Returns how many.</summary>
    private int MoveInjectedDuringShutdown()
    {
        int moved = 0;
        while (_inject.TryDequeue(out ReadyEntry entry))
        {
            _ready.Enqueue(entry.Callback, entry.State);
            moved++;
        }

        return moved;
    }

    /// <summary>Runs up to <paramref name="count"/> ready callbacks, naming and counting them: the warning's evidence.</summary>
    private string DescribeBusiestReady(int count)
    {
        var names = new Dictionary<string, int>();
        for (int i = 0; i < count && _ready.Count > 0; i++)
        {
            ReadyEntry entry = _ready.Dequeue();
            if (_cancelledReady is not null && IsCancelledEntry())
            {
                continue;
            }

            string name = DescribeCallback(entry.Callback, entry.State);
            names[name] = names.GetValueOrDefault(name) + 1;
            try
            {
                Invoke(entry.Callback, entry.State);
            }
            catch (Exception ex)
            {
                ReportException($"Exception in callback {name}", ex, entry.Callback);
            }
        }

        return string.Join(", ", names.OrderByDescending(pair => pair.Value).Take(3).Select(pair => $"{pair.Key} ({pair.Value} of the last {count})"));
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

    private bool HasShutdownNodes => _shutdownHead is not null;

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

                if (next is not null && !next.Registered)
                {
                    // The shutdown of this node closed the next one too (a process closing its pipes, a group
                    // its members): its Next is gone, so carry on from the head. Nodes done are unregistered,
                    // so only the other kind is walked again.
                    next = _shutdownHead;
                }
            }

            node = next;
        }
    }

}
