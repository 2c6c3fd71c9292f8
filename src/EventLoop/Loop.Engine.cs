using System.Diagnostics;
using System.Runtime.CompilerServices;
using EventLoop.Internal;

namespace EventLoop;

// The engine every backend shares: the ready queue, timers, the inject queue, the run step, affinity checks.
// Only the loop thread touches it, except where a member says otherwise.
public abstract partial class Loop
{
    // ---------------------------------------------------------------- the engine, shared by every backend

    /// <summary>The loop's main loop (managed: wait on an event; libuv: <c>uv_run</c>). Returns when <see cref="StopRequested"/>.</summary>
    private protected abstract void RunBackend();

    /// <summary>Wakes the backend's poll. Thread-safe. Called at most once per sleep.</summary>
    private protected abstract void WakeBackend();

    /// <summary>Closes every native handle and the backend itself. Called once, on the loop thread (or from Dispose of a loop that never ran).</summary>
    private protected abstract void CloseBackend();

    /// <summary>I/O operations started on this loop whose completion has not yet been posted back. Loop thread only.</summary>
    internal int PendingIo { get; set; }

    /// <summary>During shutdown: blocks up to <paramref name="milliseconds"/> for a post from another thread.</summary>
    private protected abstract void WaitForPostsDuringShutdown(int milliseconds);

    /// <summary>During shutdown, lets the backend process pending I/O completions once; returns true if anything happened.</summary>
    private protected virtual bool DrainBackendOnce() => false;

    internal bool StopRequested => _stopRequested;

    /// <summary>True when callbacks are waiting: ready, or posted by other threads.</summary>
    internal bool HasReadyWork => _ready.Count > 0 || !_inject.IsEmpty;

    internal int ReadyCount => _ready.Count;

    /// <summary>Step 2 filled an empty ready queue with posts from other threads: step 3 runs them with <see cref="RunInjectedBatch"/>. Loop thread only.</summary>
    private bool _readyFromInject;

    /// <summary>True when something only the loop thread can run is waiting: ready work, posts, or a due timer.</summary>
    internal bool HasPendingWork() => HasReadyWork || _timers.NextDue <= GetTimestamp() || HasReadyIo();

    /// <summary>
    /// True when the backend's poll has I/O ready that only the loop thread can process (libuv: its epoll
    /// descriptor is readable). The managed loop's I/O completes on other threads and arrives as posts, which
    /// <see cref="HasReadyWork"/> already counts. Loop thread only.
    /// </summary>
    private protected virtual bool HasReadyIo() => false;

    internal int TimerCount => _timers.Count;

    /// <summary>Timers that will still fire (cancelled ones wait in the heap until reached or compacted).</summary>
    internal int LiveTimerCount => _timers.LiveCount;

    /// <summary>Native handles and sockets still open. Used by leak checks.</summary>
    internal virtual int OpenNativeHandleCount => OpenSocketCount;

    /// <summary>Native requests (libuv's write, shutdown, connect) not yet freed. Used by leak checks.</summary>
    internal virtual int OpenNativeRequestCount => 0;

    /// <summary>Sockets (listeners, connections) the socket transport has open on this loop. Loop thread only.</summary>
    internal int OpenSocketCount { get; set; }

    /// <summary>Steps 1 and 2 of an iteration: due timers, then other threads' posts, into the ready queue.</summary>
    internal void MoveDueTimersAndInjected()
    {
        if (_timers.Count != 0)
        {
            long now = GetTimestamp();
            while (_timers.TryPopDue(now, out TimerHeap.Entry entry))
            {
                if (entry.Item.IsPending(entry.Version))
                {
                    if (Diagnostics.LoopMetrics.TimerLag.Enabled)
                    {
                        Diagnostics.LoopMetrics.RecordTimerLag(this, now - entry.Due);
                    }

                    _ready.Enqueue(entry.Item, null);
                }
                else
                {
                    _timers.NoteCancelledRemoved();
                    entry.Item.Discard();
                }
            }
        }

        MoveInjected();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void MoveInjected()
    {
        if (!_inject.IsEmpty)
        {
            MoveInjectedSlow();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    private void MoveInjectedSlow()
    {
        // Bounded by what one iteration runs, so a flood of posts waits in the inject queue instead of piling
        // up in the ready queue ahead of timers and I/O (which then ran late, behind millions of posts).
        int count = (2 * _callbacksPerIteration) - _ready.Count;
        if (count <= 0)
        {
            return;
        }

        int moved = 0;
        while (moved < count && _inject.TryDequeue(out ReadyEntry entry))
        {
            _ready.Enqueue(entry.Callback, entry.State);
            moved++;
        }

        _readyFromInject = moved != 0;
        if (moved == 0)
        {
            // A producer is between the two steps of its post (see InjectQueue). The loop will not sleep while
            // the queue is not empty; let that producer run (on one core it may be waiting for this thread).
            Thread.Yield();
        }
    }

    /// <summary>
    /// Milliseconds the poll may block: 0 when work is ready or a stop is pending, until the next timer when
    /// there is one, -1 (forever) otherwise.
    /// </summary>
    internal int GetPollTimeoutMilliseconds()
    {
        if (_stopRequested || HasReadyWork)
        {
            return 0;
        }

        long next = _timers.NextDue;
        if (next == long.MaxValue)
        {
            return -1;
        }

        long now = GetTimestamp();
        if (next <= now)
        {
            return 0; // compare before subtracting: a deadline far in the past must not overflow
        }

        long remaining = next - now;

        double ms = Math.Ceiling(remaining * 1000.0 / TimestampFrequency);
        return ms >= int.MaxValue ? int.MaxValue : (int)ms;
    }

    /// <summary>
    /// Before blocking in the poll: announces that a wake-up is needed, then re-checks for posted work.
    /// Returns false (do not block) if work arrived. Pairs with <see cref="WakeIfSleeping"/>.
    /// </summary>
    internal bool PrepareToSleep()
    {
        Interlocked.Exchange(ref _sleeping, 1);
        if (!_inject.IsEmpty || _stopRequested)
        {
            Volatile.Write(ref _sleeping, 0);
            return false;
        }

        return true;
    }

    /// <summary>After the poll returns.</summary>
    internal void AfterSleep() => Volatile.Write(ref _sleeping, 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WakeIfSleeping()
    {
        // The enqueue before this is an interlocked operation (a full fence), so either we see the
        // loop's _sleeping = 1 or the loop sees our item when it re-checks in PrepareToSleep.
        if (Volatile.Read(ref _sleeping) != 0 && Interlocked.Exchange(ref _sleeping, 0) != 0)
        {
            WakeBackend();
        }
    }

    /// <summary>Step 3 of an iteration: runs up to <see cref="LoopOptions.CallbacksPerIteration"/> ready callbacks.</summary>
    /// <remarks>
    /// Not marked AggressiveOptimization: that disables dynamic PGO, whose guarded devirtualization of the
    /// continuation delegates was measured to halve the cost of a yield hop (46 ns to 26 ns).
    /// </remarks>
    internal void RunReadyBatch()
    {
        if (_ready.Count == 0)
        {
            return;
        }

        int budget = _callbacksPerIteration;

        if (_options.Debug)
        {
            RunReadyBatchDebug(budget);
            return;
        }

        if (Diagnostics.LoopMetrics.TimesCallbacks)
        {
            RunReadyBatchTimed(budget);
            return;
        }

        if (_readyFromInject)
        {
            _readyFromInject = false;
            RunInjectedBatch(budget);
            return;
        }

        while (budget > 0)
        {
            try
            {
                // Callbacks added by these run in this batch too, within the budget.
                while (budget > 0 && _ready.Count > 0)
                {
                    budget--;
                    ReadyEntry entry = _ready.Dequeue();
                    if (_cancelledReady is not null && IsCancelledEntry())
                    {
                        continue;
                    }

                    Invoke(entry.Callback, entry.State);
                }

                break;
            }
            catch (Exception ex)
            {
                ReportException("Exception in callback", ex, null);
            }
        }

        RestoreLoopContextIfChanged();
    }

    /// <summary>
    /// The plain batch when every callback in it came from other threads (step 2 moved them into an empty ready
    /// queue): the same code as <see cref="RunReadyBatch"/>'s loop, fully optimised from its first call. In a fresh
    /// process the tiered batch runs tier-0 code for its first 10<sup>5</sup>-10<sup>6</sup> callbacks (tiering waits
    /// until no new method has been compiled for 100 ms), which cost a cold post from another thread about a third of
    /// its CPU time; a stream of posts is hot from its first one (benchmarks/results/posts.md). Batches of the loop's
    /// own callbacks (await continuations, <c>CallSoon</c>) keep the tiered copy and its dynamic PGO.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunInjectedBatch(int budget)
    {
        while (budget > 0)
        {
            try
            {
                while (budget > 0 && _ready.Count > 0)
                {
                    budget--;
                    ReadyEntry entry = _ready.Dequeue();
                    if (_cancelledReady is not null && IsCancelledEntry())
                    {
                        continue;
                    }

                    Invoke(entry.Callback, entry.State);
                }

                break;
            }
            catch (Exception ex)
            {
                ReportException("Exception in callback", ex, callback: null);
            }
        }

        RestoreLoopContextIfChanged();
    }

    private void RunReadyBatchDebug(int budget)
    {
        long threshold = TimeToTimestamp(_options.SlowCallbackThreshold);
        while (budget > 0 && _ready.Count > 0)
        {
            budget--;
            ReadyEntry entry = _ready.Dequeue();
            if (_cancelledReady is not null && IsCancelledEntry())
            {
                continue;
            }

            string? name = null;
            long start = Stopwatch.GetTimestamp();
            try
            {
                name = DescribeCallback(entry.Callback, entry.State);
                Invoke(entry.Callback, entry.State);
                TrackResumedTask(entry.State); // for GetPendingTasks
            }
            catch (Exception ex)
            {
                ReportException($"Exception in callback {name}", ex, entry.Callback);
            }

            long elapsed = Stopwatch.GetTimestamp() - start;
            if (elapsed > threshold)
            {
                CountSlowCallback();
                WriteLog($"EventLoop: executing {name} took {Stopwatch.GetElapsedTime(start).TotalMilliseconds:F0} ms " +
                         $"(slow callback threshold {_options.SlowCallbackThreshold.TotalMilliseconds:F0} ms): it blocked the loop.");
            }
        }

        RestoreLoopContextIfChanged();
    }

    /// <summary>The plain batch, timing each callback for the slow-callback metric (only while a listener enabled it).</summary>
    private void RunReadyBatchTimed(int budget)
    {
        long threshold = (long)(_options.SlowCallbackThreshold.TotalSeconds * Stopwatch.Frequency);
        while (budget > 0 && _ready.Count > 0)
        {
            budget--;
            ReadyEntry entry = _ready.Dequeue();
            if (_cancelledReady is not null && IsCancelledEntry())
            {
                continue;
            }

            long start = Stopwatch.GetTimestamp();
            try
            {
                Invoke(entry.Callback, entry.State);
            }
            catch (Exception ex)
            {
                ReportException("Exception in callback", ex, callback: null);
            }

            if (Stopwatch.GetTimestamp() - start > threshold)
            {
                CountSlowCallback();
            }
        }
    }

    private static string DescribeCallback(object callback, object? state) => callback switch
    {
        SendOrPostCallback when state is not null => DescribeContinuation(state),
        Action<Action> when state is Action action => ObjectCallbackItem.Describe(action), // CallSoon(Action)
        Delegate d => ObjectCallbackItem.Describe(d),
        Task t => $"Task {t.Id}",
        _ => callback.ToString() ?? callback.GetType().Name,
    };

    private static string DescribeContinuation(object state)
    {
        // Await continuations are the state machine's MoveNext: name the async method.
        if (state is Delegate d && d.Target is { } target)
        {
            string typeName = target.GetType().ToString();
            return $"continuation of {typeName}";
        }

        return state.ToString() ?? state.GetType().Name;
    }

    // Ready-queue handles (CallSoon with reference-type state): cancelled positions wait here until reached.
    private HashSet<long>? _cancelledReady;

    /// <summary>Whether the entry just dequeued was cancelled through its handle (and forgets it).</summary>
    private bool IsCancelledEntry()
    {
        bool cancelled = _cancelledReady!.Remove(_ready.Dequeued - 1);
        if (_cancelledReady.Count == 0)
        {
            _cancelledReady = null;
        }

        return cancelled;
    }

    internal bool IsReadyIndexPending(long index) => index >= _ready.Dequeued && !(_cancelledReady?.Contains(index) ?? false);

    internal bool IsReadyIndexCancelled(long index) => index >= _ready.Dequeued && (_cancelledReady?.Contains(index) ?? false);

    internal bool CancelReadyIndex(long index)
    {
        CheckLoopThreadOrClosed();
        if (index < _ready.Dequeued || _state == (int)LoopState.Closed)
        {
            return false; // already ran (or the loop is gone)
        }

        return (_cancelledReady ??= new HashSet<long>()).Add(index);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Invoke(object callback, object? state)
    {
        if (callback.GetType() == typeof(SendOrPostCallback))
        {
            Unsafe.As<SendOrPostCallback>(callback)(state);
        }
        else if (callback is LoopWorkItem item)
        {
            item.Execute();
        }
        else if (callback is Task task)
        {
            _scheduler.RunQueuedTask(task);
        }
        else
        {
            Unsafe.As<Action<object?>>(callback)(state);
        }
    }

    /// <summary>
    /// Puts the loop's own <see cref="ExecutionContext"/> back if a callback left another on the thread. Callbacks that
    /// carry a context restore the loop's after themselves, and await continuations run in their own; this catches a
    /// state-passing callback (which carries none) that set an AsyncLocal, once per batch rather than per callback: a
    /// thread-static read per callback would cost the hot path a tenth of its time.
    /// </summary>
    private void RestoreLoopContextIfChanged()
    {
        if (!ReferenceEquals(ExecutionContext.Capture(), _loopContext))
        {
            RestoreLoopContext();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RestoreLoopContext()
    {
        if (_loopContext is not null)
        {
            ExecutionContext.Restore(_loopContext);
        }
    }

    // ---------------------------------------------------------------- entry points for the context, scheduler and primitives

    /// <summary>Queues work from any thread: straight to the ready queue on the loop thread, else injected with a wake-up.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Post(object callback, object? state)
    {
        if (Environment.CurrentManagedThreadId == _ownerThreadId && _state != (int)LoopState.Closed)
        {
            _ready.Enqueue(callback, state);
        }
        else
        {
            PostFromOtherThread(callback, state);
        }
    }

    private void PostFromOtherThread(object callback, object? state)
    {
        if (_state >= (int)LoopState.Closing || !TryInject(callback, state))
        {
            RejectEntry(new ReadyEntry(callback, state));
        }
    }

    /// <summary>
    /// Posts <paramref name="item"/> from any thread. Returns false, without running or reporting it, when
    /// the loop no longer takes posts (it is closing or closed): the caller then completes it otherwise.
    /// </summary>
    internal bool TryPost(LoopWorkItem item)
    {
        if (IsOnLoopThread && _state != (int)LoopState.Closed)
        {
            _ready.Enqueue(item, null);
            return true;
        }

        return _state < (int)LoopState.Closing && TryInject(item, null);
    }

    /// <summary>
    /// Injects a post from another thread. True when the loop will run it. False when the loop began
    /// closing while it was being made and it was taken back: the caller refuses it.
    /// </summary>
    /// <remarks>
    /// The enqueue is a full fence, and so is the loop's switch to <c>Closing</c> before its last drain (see
    /// <see cref="Shutdown"/>). So if the state read here, after the enqueue, is not yet Closing, the loop's
    /// last drain sees this post and runs it. If it is, the loop may or may not have seen it: wait until the
    /// loop has closed, then take back under the queue's lock whatever it left. Each poster that saw Closing
    /// does this, so every post is run or refused, never lost. Costs one extra read on the fast path.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryInject(object callback, object? state)
    {
        _inject.Enqueue(callback, state);
        WakeIfSleeping();
        return _state < (int)LoopState.Closing || !TakeBackAfterClose(callback);
    }

    /// <summary>As <see cref="TryInject(object, object?)"/> for a callback item, which is its own queue node: one pooled object per post.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryInject(CallbackItem item)
    {
        _inject.Enqueue(item);
        WakeIfSleeping();
        return _state < (int)LoopState.Closing || !TakeBackAfterClose(item);
    }

    /// <summary>Returns true if <paramref name="own"/> was among the posts taken back (the others are refused here).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal bool TakeBackAfterClose(object own)
    {
        var spinner = default(SpinWait);
        while (_state != (int)LoopState.Closed)
        {
            spinner.SpinOnce(); // the loop is running its last drain
        }

        bool ownTaken = false;
        lock (_inject)
        {
            _inject.WaitUntilLinked();
            while (_inject.TryDequeue(out ReadyEntry entry))
            {
                if (ReferenceEquals(entry.Callback, own))
                {
                    ownTaken = true; // the poster refuses its own post
                }
                else if (entry.Callback is CallbackItem item)
                {
                    // Another CallSoonThreadSafe is still on its way here: it finds the mark and throws.
                    item.RefusedWhilePosting = true;
                }
                else
                {
                    RejectEntry(entry);
                }
            }

            if (own is CallbackItem ownItem && ownItem.RefusedWhilePosting)
            {
                ownItem.RefusedWhilePosting = false; // taken back earlier by another poster
                ownTaken = true;
            }
        }

        return ownTaken;
    }

    /// <summary>
    /// A post the loop will never run: a work item that can finish elsewhere does (an executor job completes
    /// its task), anything else is written to the log, so nothing vanishes silently.
    /// </summary>
    private void RejectEntry(in ReadyEntry entry)
    {
        if (entry.Callback is LoopWorkItem item && item.TryCompleteRefused())
        {
            return;
        }

        // Work for a closed loop cannot run anywhere that honours its contract; say so loudly.
        WriteLog($"EventLoop: dropped {DescribeCallback(entry.Callback, entry.State)}, posted from another thread to the {PolicyName} loop as it closed.");
        if (entry.Callback is CallbackItem callbackItem)
        {
            callbackItem.Discard();
        }
    }

    /// <summary>Loop-thread-only enqueue for <see cref="Action{T}"/> continuations (value task sources).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void EnqueueReady(Action<object?> callback, object? state) => _ready.Enqueue(callback, state);

    internal void EnqueueReady(LoopWorkItem item) => _ready.Enqueue(item, null);

    private LoopHandle AddTimer<TState>(long due, Action<TState> callback, TState state, ExecutionContext? context)
    {
        CallbackItem item = RentItem(callback, state, context);
        int version = item.Version;
        _timers.Add(due, item, version);
        OnTimersChanged();
        return new LoopHandle(this, item, version, isTimer: true);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CallbackItem RentItem<TState>(Action<TState> callback, TState state, ExecutionContext? context)
    {
        CallbackItem item = !typeof(TState).IsValueType
            ? ObjectCallbackItem.Rent(callback, Unsafe.As<TState, object?>(ref state))
            : CallbackItem<TState>.Rent(callback, state);
        item.Context = context;
        return item;
    }

    /// <summary>Called after a timer was added on the loop thread; the libuv backend re-arms its timer.</summary>
    private protected virtual void OnTimersChanged()
    {
    }

    internal void OnTimerCancelled(CallbackItem item)
    {
        if (_state != (int)LoopState.Closed)
        {
            item.ClearCallback();
            _timers.NoteCancelled();
        }
    }

    /// <summary>
    /// True while the loop thread waits in the backend's own poll (the managed loop's wake-up event): that wait
    /// is the loop's, not a blocking call of the app's, so the blocking-wait check lets it through.
    /// </summary>
    internal bool IsInBackendWait { get; private protected set; }

    /// <summary>True while the loop runs or shuts down: loop code may be running and a blocking wait would deadlock.</summary>
    internal bool IsActive => _state is (int)LoopState.Running or (int)LoopState.ShuttingDown or (int)LoopState.Closing;

    /// <summary>The loop-affinity check behind every loop-affine call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CheckLoopThread()
    {
        if (Environment.CurrentManagedThreadId != _ownerThreadId || _state >= (int)LoopState.Closed)
        {
            ThrowHelper.ThrowWrongThreadOrClosed(this);
        }
    }

    /// <summary>Affinity check that lets calls on a closed loop through (cancelling a handle after close is a no-op).</summary>
    internal void CheckLoopThreadOrClosed()
    {
        if (Environment.CurrentManagedThreadId != _ownerThreadId && _state != (int)LoopState.Closed)
        {
            ThrowHelper.ThrowWrongThreadOrClosed(this);
        }
    }

    internal void CheckNotClosed()
    {
        if (_state == (int)LoopState.Closed)
        {
            ThrowHelper.ThrowClosed(this);
        }
    }

}
