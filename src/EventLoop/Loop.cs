using System.Diagnostics;
using System.Runtime.CompilerServices;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A single-threaded event loop, as asyncio's: every continuation of the code it runs, every
/// callback and every timer runs on the loop thread, one at a time, in order, so loop code needs no locks.
/// Create one from a <see cref="LoopPolicy"/>, or let <see cref="Run(Func{Task})"/> do it.
/// </summary>
/// <remarks>
/// <para>One iteration of the loop, the same on every policy (a backend supplies only the poll step):</para>
/// <list type="number">
/// <item>Read the clock; move every timer that is due to the ready queue, earliest first, FIFO among equal
/// deadlines. All are collected before any runs, so a timer added by a timer waits for the next iteration.</item>
/// <item>Move what other threads posted (the inject queue) to the ready queue.</item>
/// <item>Run ready callbacks in FIFO order, including ones they add, up to
/// <see cref="LoopOptions.CallbacksPerIteration"/>, so timers, posts and I/O are never starved.</item>
/// <item>Poll for I/O (managed: wait for a wake-up; libuv: <c>uv_run</c>'s poll phase) with timeout 0 when
/// work is ready, until the next timer when there is one, and forever otherwise. Other threads wake the
/// poll once per sleep, however many posts they make (a coalesced wake-up).</item>
/// </list>
/// <para>
/// Loop methods are loop-affine: call them on the loop thread, or use the <c>...ThreadSafe</c> ones.
/// <c>ConfigureAwait(false)</c> leaves the loop: what follows it runs on the thread pool, not on the loop.
/// </para>
/// </remarks>
public abstract partial class Loop : IDisposable
{
    [ThreadStatic]
    private static Loop? t_current;

    private readonly LoopOptions _options;
    private readonly TimeProvider _clock;
    private readonly bool _systemClock;
    private readonly int _callbacksPerIteration;
    private ReadyQueue _ready = new(256);
    private TimerHeap _timers = new(64);
    private readonly InjectQueue _inject = new();

    /// <summary>The queue other threads post to. Internal for the tests of the posting protocol.</summary>
    internal InjectQueue InjectQueueForTests => _inject;
    private int _sleeping; // 1 while the loop may be blocked in its poll and needs a wake-up
    private int _ownerThreadId;
    private volatile int _state; // LoopState
    private volatile bool _stopRequested;
    private readonly LoopSynchronizationContext _context;
    private readonly LoopTaskScheduler _scheduler;
    private LoopTimeProvider? _timeProvider;
    private CancellationTokenSource? _shutdownCts;
    private ShutdownNode? _shutdownHead;
    private Action<LoopExceptionContext>? _exceptionHandler;
    private bool _resourcesClosed;
    private ExecutionContext? _loopContext; // what callbacks run in unless they captured another (see CaptureContext)

    private enum LoopState
    {
        Created = 0,
        Running = 1,
        ShuttingDown = 2,
        Closing = 3, // the last drain: other threads' posts are refused
        Closed = 4,
    }

    /// <summary>Creates the loop's shared machinery. Only the policies in this library derive from it.</summary>
    private protected Loop(LoopOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _clock = options.Clock ?? TimeProvider.System;
        _systemClock = ReferenceEquals(_clock, TimeProvider.System);
        _callbacksPerIteration = options.CallbacksPerIteration;
        _exceptionHandler = options.ExceptionHandler;
        _ownerThreadId = Environment.CurrentManagedThreadId;
        _context = new LoopSynchronizationContext(this);
        _scheduler = new LoopTaskScheduler(this);
        _loopContext = ExecutionContext.Capture();
    }

    // ---------------------------------------------------------------- the loop's identity

    /// <summary>The loop running on the calling thread.</summary>
    /// <exception cref="InvalidOperationException">The calling thread is not running a loop.</exception>
    public static Loop Current => t_current ?? ThrowHelper.ThrowNoCurrentLoop();

    /// <summary>The loop running on the calling thread, if there is one.</summary>
    public static bool TryGetCurrent([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Loop? loop)
    {
        loop = t_current;
        return loop is not null;
    }

    /// <summary>The name of the policy that made this loop: <c>managed</c> or <c>libuv</c>.</summary>
    public abstract string PolicyName { get; }

    /// <summary>The options the loop was created with.</summary>
    public LoopOptions Options => _options;

    /// <summary>True while <see cref="RunUntilComplete(Func{Task})"/> is running this loop.</summary>
    public bool IsRunning => _state == (int)LoopState.Running;

    /// <summary>True once the loop has run and shut down; it cannot run again.</summary>
    public bool IsClosed => _state == (int)LoopState.Closed;

    /// <summary>True when called on the thread that owns the loop.</summary>
    public bool IsOnLoopThread => Environment.CurrentManagedThreadId == _ownerThreadId;

    /// <summary>True in debug mode (<see cref="LoopOptions.Debug"/>).</summary>
    public bool DebugMode => _options.Debug;

    /// <summary>The synchronization context installed on the loop thread while the loop runs.</summary>
    public LoopSynchronizationContext SynchronizationContext => _context;

    /// <summary>
    /// A task scheduler that runs tasks on the loop thread:
    /// <c>Task.Factory.StartNew(work, ct, TaskCreationOptions.None, loop.TaskScheduler)</c>.
    /// </summary>
    public LoopTaskScheduler TaskScheduler => _scheduler;

    /// <summary>
    /// A <see cref="System.TimeProvider"/> whose timers are the loop's own, so
    /// <c>Task.Delay(d, loop.TimeProvider)</c> and <c>new CancellationTokenSource(d, loop.TimeProvider)</c>
    /// fire on the loop thread from the loop's timer heap.
    /// </summary>
    public TimeProvider TimeProvider => _timeProvider ??= new LoopTimeProvider(this);

    /// <summary>
    /// Cancelled when the loop starts shutting down (main has completed or the loop was stopped), so
    /// work that outlives main can end: asyncio's cancellation of the tasks left at the end of <c>asyncio.run</c>.
    /// </summary>
    public CancellationToken ShutdownToken => _state >= (int)LoopState.ShuttingDown
        ? new CancellationToken(canceled: true) // first read during shutdown, or after close (the source is disposed then)
        : (_shutdownCts ??= new CancellationTokenSource()).Token;

    /// <summary>
    /// Receives exceptions thrown by callbacks (the loop goes on); null means write them to
    /// <see cref="LoopOptions.Log"/>. asyncio's <c>set_exception_handler</c>.
    /// </summary>
    public Action<LoopExceptionContext>? ExceptionHandler
    {
        get => _exceptionHandler;
        set => _exceptionHandler = value;
    }

    // ---------------------------------------------------------------- time

    /// <summary>
    /// The loop's monotonic clock (asyncio's <c>loop.time()</c>): the time since an arbitrary fixed point,
    /// on the same scale as <see cref="CallAt(TimeSpan, Action)"/>.
    /// </summary>
    public TimeSpan Time => TimestampToTime(GetTimestamp());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal long GetTimestamp() => _systemClock ? Stopwatch.GetTimestamp() : _clock.GetTimestamp();

    /// <summary>The clock the loop reads (<see cref="LoopOptions.Clock"/>).</summary>
    internal TimeProvider Clock => _clock;

    internal long TimestampFrequency => _systemClock ? Stopwatch.Frequency : _clock.TimestampFrequency;

    // Whole seconds and the remainder are converted separately, in integers: a double has 53 bits, so
    // large timestamps (a clock counting 100 ns ticks since year 1) lost microseconds and Time drifted.
    internal TimeSpan TimestampToTime(long timestamp)
    {
        long frequency = TimestampFrequency;
        if (frequency == TimeSpan.TicksPerSecond)
        {
            return TimeSpan.FromTicks(timestamp);
        }

        long seconds = Math.DivRem(timestamp, frequency, out long rest);
        return TimeSpan.FromTicks((seconds * TimeSpan.TicksPerSecond) + (rest * TimeSpan.TicksPerSecond / frequency));
    }

    internal long TimeToTimestamp(TimeSpan time)
    {
        long frequency = TimestampFrequency;
        if (frequency == TimeSpan.TicksPerSecond)
        {
            return time.Ticks;
        }

        long seconds = Math.DivRem(time.Ticks, TimeSpan.TicksPerSecond, out long rest);
        if (seconds >= (long.MaxValue / frequency) - 1)
        {
            return long.MaxValue; // clamp overflow
        }

        if (seconds <= -(long.MaxValue / frequency) + 1)
        {
            return long.MinValue; // far in the past: due at once
        }

        return (seconds * frequency) + (rest * frequency / TimeSpan.TicksPerSecond);
    }

    // ---------------------------------------------------------------- scheduling

    // Two kinds of overload, by design (measured, see the README's benchmark notes): the Action overloads capture the
    // caller's ExecutionContext, so AsyncLocal values flow into the callback as asyncio's contextvars do; the
    // state-passing <TState> overloads are the explicit no-capture, allocation-free path, as ThreadPool's
    // UnsafeQueueUserWorkItem is: reading the context costs a thread-static access per call (~2 ns here), which is a
    // tenth of the CallSoon hot path, so they do not pay it.

    /// <summary>
    /// Schedules <paramref name="callback"/> to run on the loop soon, after what is already ready (FIFO), in the caller's
    /// <see cref="ExecutionContext"/>: <see cref="AsyncLocal{T}"/> values set by the caller are seen by the callback, as
    /// asyncio's contextvars are, and what the callback sets there does not outlive it.
    /// </summary>
    /// <remarks>
    /// Every <c>Action</c> overload (<see cref="CallLater(TimeSpan, Action)"/>, <see cref="CallAt(TimeSpan, Action)"/>,
    /// <see cref="CallSoonThreadSafe(Action)"/>) captures the context the same way; nothing is captured, and nothing
    /// pooled, when it is the loop's own (no AsyncLocal set). The state-passing overloads, such as
    /// <see cref="CallSoon{TState}(Action{TState}, TState)"/>, capture nothing: pass what the callback needs as state.
    /// </remarks>
    /// <returns>A handle that can cancel the callback before it runs.</returns>
    public LoopHandle CallSoon(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        CheckLoopThread();
        return CallSoonCapturing(callback, CaptureContext());
    }

    /// <summary>
    /// Schedules <paramref name="callback"/>(<paramref name="state"/>) to run on the loop soon: the hot path. Use a static
    /// lambda and pass what it needs as state: this overload allocates nothing in steady state. It does not capture the
    /// caller's <see cref="ExecutionContext"/> (the callback runs in the loop's own, and sees no AsyncLocal value of the
    /// caller's); <see cref="CallSoon(Action)"/> does.
    /// </summary>
    public LoopHandle CallSoon<TState>(Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        CheckLoopThread();
        if (!typeof(TState).IsValueType)
        {
            // The hot path: the delegate and its state go straight into the ready queue, and the handle is the
            // entry's position in FIFO order, so nothing is allocated, pooled or retired.
            long index = _ready.NextIndex;
            _ready.Enqueue(callback, Unsafe.As<TState, object?>(ref state));
            return new LoopHandle(this, index);
        }

        CallbackItem item = RentItem(callback, state, null);
        int version = item.Version;
        _ready.Enqueue(item, null);
        return new LoopHandle(this, item, version, isTimer: false);
    }

    // CallSoon(Action): the hot path's code again rather than a shared helper, so the JIT compiles CallSoon<TState>
    // (shared generic code) exactly as before: an inlined helper taking the context added a write-barrier call to it.
    private LoopHandle CallSoonCapturing(Action callback, ExecutionContext? context)
    {
        if (context is null)
        {
            long index = _ready.NextIndex;
            _ready.Enqueue(ActionInvoker.Invoke, callback);
            return new LoopHandle(this, index);
        }

        CallbackItem item = RentItem(ActionInvoker.Invoke, callback, context);
        int version = item.Version;
        _ready.Enqueue(item, null);
        return new LoopHandle(this, item, version, isTimer: false);
    }

    /// <summary>
    /// The caller's <see cref="ExecutionContext"/> when a callback must carry it: null when it is the loop's own (a
    /// callback runs in that anyway) or flow is suppressed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ExecutionContext? CaptureContext()
    {
        ExecutionContext? context = ExecutionContext.Capture();
        return ReferenceEquals(context, _loopContext) ? null : context;
    }

    /// <summary>Schedules <paramref name="callback"/> to run after <paramref name="delay"/> (asyncio's <c>call_later</c>), in the caller's <see cref="ExecutionContext"/> (see <see cref="CallSoon(Action)"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public LoopHandle CallLater(TimeSpan delay, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return CallLaterCore(delay, ActionInvoker.Invoke, callback, capture: true);
    }

    /// <summary>
    /// Schedules <paramref name="callback"/>(<paramref name="state"/>) after <paramref name="delay"/>, allocating nothing in
    /// steady state; captures no <see cref="ExecutionContext"/> (see <see cref="CallSoon{TState}(Action{TState}, TState)"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public LoopHandle CallLater<TState>(TimeSpan delay, Action<TState> callback, TState state) =>
        CallLaterCore(delay, callback, state, capture: false);

    private LoopHandle CallLaterCore<TState>(TimeSpan delay, Action<TState> callback, TState state, bool capture)
    {
        if (delay < TimeSpan.Zero)
        {
            ThrowHelper.ThrowNegativeDelay(delay);
        }

        ArgumentNullException.ThrowIfNull(callback);
        CheckLoopThread();
        long now = GetTimestamp();
        long delta = TimeToTimestamp(delay);
        long due = delta >= long.MaxValue - now ? long.MaxValue : now + delta; // clamp overflow
        return AddTimer(due, callback, state, capture ? CaptureContext() : null);
    }

    /// <summary>
    /// Schedules <paramref name="callback"/> at loop time <paramref name="when"/> (see <see cref="Time"/>), in the caller's
    /// <see cref="ExecutionContext"/> (see <see cref="CallSoon(Action)"/>); a time in the past runs it at the next iteration.
    /// </summary>
    public LoopHandle CallAt(TimeSpan when, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        CheckLoopThread();
        return AddTimer(TimeToTimestamp(when), ActionInvoker.Invoke, callback, CaptureContext());
    }

    /// <summary>
    /// Schedules <paramref name="callback"/>(<paramref name="state"/>) at loop time <paramref name="when"/>, allocating
    /// nothing in steady state; captures no <see cref="ExecutionContext"/> (see <see cref="CallSoon{TState}(Action{TState}, TState)"/>).
    /// </summary>
    public LoopHandle CallAt<TState>(TimeSpan when, Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        CheckLoopThread();
        return AddTimer(TimeToTimestamp(when), callback, state, null);
    }

    /// <summary>
    /// Schedules <paramref name="callback"/> on the loop from any thread (asyncio's <c>call_soon_threadsafe</c>), in the
    /// caller's <see cref="ExecutionContext"/> (see <see cref="CallSoon(Action)"/>). Posts from many threads are kept in
    /// order per thread and wake the loop once.
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop is closed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    public LoopHandle CallSoonThreadSafe(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return CallSoonThreadSafeCore(ActionInvoker.Invoke, callback, CaptureContext());
    }

    /// <summary>
    /// Schedules <paramref name="callback"/>(<paramref name="state"/>) on the loop from any thread; captures no
    /// <see cref="ExecutionContext"/> (see <see cref="CallSoon{TState}(Action{TState}, TState)"/>).
    /// </summary>
    /// <remarks>
    /// A post either runs or is refused, never lost: once the loop has started its last shutdown step, posts
    /// from other threads are refused with an <see cref="InvalidOperationException"/>; posts made before run,
    /// even while the loop shuts down.
    /// </remarks>
    /// <exception cref="InvalidOperationException">The loop is closed, or closing and no longer takes posts from other threads.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    public LoopHandle CallSoonThreadSafe<TState>(Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return CallSoonThreadSafeCore(callback, state, null);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    private LoopHandle CallSoonThreadSafeCore<TState>(Action<TState> callback, TState state, ExecutionContext? context)
    {
        bool onLoop = IsOnLoopThread;
        int loopState = _state;
        if (loopState == (int)LoopState.Closed || (loopState == (int)LoopState.Closing && !onLoop))
        {
            ThrowHelper.ThrowClosed(this);
        }

        CallbackItem item = RentItem(callback, state, context);
        int version = item.Version;
        if (onLoop)
        {
            _ready.Enqueue(item, null);
        }
        else if (!TryInject(item))
        {
            item.Discard();
            ThrowHelper.ThrowClosed(this);
        }

        return new LoopHandle(this, item, version, isTimer: false);
    }

    /// <summary>
    /// Asks the loop to stop after the callback that is running. Safe from any thread. If main has not
    /// completed, <see cref="RunUntilComplete(Func{Task})"/> throws an <see cref="InvalidOperationException"/>
    /// after shutting the loop down, as asyncio's <c>run_until_complete</c> does.
    /// </summary>
    public void Stop()
    {
        _stopRequested = true;
        if (!IsOnLoopThread)
        {
            // A full fence between the store above and WakeIfSleeping's read of _sleeping. The loop announces its sleep
            // with an interlocked exchange and then reads _stopRequested (PrepareToSleep), so with fences on both sides
            // one of the two sees the other (Dekker). A volatile store followed by a volatile load may be reordered: the
            // store waited in this core's store buffer while both sides read the old values, and the loop slept through
            // the stop (LoopThread's start/stop benchmark hung once in ~3,000 stops on the libuv loop).
            Interlocked.MemoryBarrier();
            WakeIfSleeping();
        }
    }

    /// <summary>
    /// Completes after <paramref name="delay"/> on a loop timer (<c>asyncio.sleep</c>). Cancelled by
    /// <paramref name="cancellationToken"/> or when the loop shuts down.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken = default)
    {
        if (delay < TimeSpan.Zero)
        {
            ThrowHelper.ThrowNegativeDelay(delay);
        }

        CheckLoopThread();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        var sleep = new LoopSleep(this, cancellationToken);
        sleep.Start(delay);
        return sleep.Task;
    }

    // ---------------------------------------------------------------- executor

    /// <summary>
    /// Runs blocking or CPU-bound <paramref name="work"/> on the thread pool and completes the returned
    /// task on the loop thread (asyncio's <c>run_in_executor</c>): awaiting it from loop code resumes on the
    /// loop, and the work's result is published on the loop thread.
    /// </summary>
    public Task<T> RunInExecutor<T>(Func<T> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return RunInExecutor(static (w, _) => w(), work, cancellationToken);
    }

    /// <summary>Runs <paramref name="work"/> on the thread pool; the task completes on the loop thread.</summary>
    public Task RunInExecutor(Action work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return RunInExecutor(static (w, _) => { w(); return true; }, work, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="work"/>(<paramref name="state"/>, token) on the thread pool; the work sees the
    /// token so it can stop early; the task completes on the loop thread.
    /// </summary>
    public Task<T> RunInExecutor<TState, T>(Func<TState, CancellationToken, T> work, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        CheckNotClosed();
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        var job = new ExecutorJob<TState, T>(this, work, state, cancellationToken);
        ThreadPool.UnsafeQueueUserWorkItem(job, preferLocal: false);
        return job.Task;
    }

    // ---------------------------------------------------------------- running

    /// <summary>
    /// Runs <paramref name="main"/> on a new loop from <see cref="EventLoopPolicy.Current"/> until it completes,
    /// then cancels and drains what is left and closes the loop (asyncio's <c>asyncio.run</c>).
    /// main's own exception is rethrown as itself, not wrapped.
    /// </summary>
    public static void Run(Func<Task> main) => Run(main, EventLoopPolicy.Current);

    /// <summary>Runs <paramref name="main"/> on a new loop from <paramref name="policy"/> and returns its result.</summary>
    public static void Run(Func<Task> main, LoopPolicy policy, LoopOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(main);
        ArgumentNullException.ThrowIfNull(policy);
        CheckNotNested();
        using Loop loop = policy.CreateLoop(options);
        loop.RunUntilComplete(main);
    }

    /// <summary>Runs <paramref name="main"/> on a new loop from <see cref="EventLoopPolicy.Current"/> and returns its result.</summary>
    public static T Run<T>(Func<Task<T>> main) => Run(main, EventLoopPolicy.Current);

    /// <summary>Runs <paramref name="main"/> on a new loop from <paramref name="policy"/> and returns its result.</summary>
    public static T Run<T>(Func<Task<T>> main, LoopPolicy policy, LoopOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(main);
        ArgumentNullException.ThrowIfNull(policy);
        CheckNotNested();
        using Loop loop = policy.CreateLoop(options);
        return loop.RunUntilComplete(main);
    }

    /// <summary>
    /// Runs <paramref name="main"/> on this loop, on the calling thread, until it completes; then shuts
    /// the loop down: cancels <see cref="ShutdownToken"/> and every loop wait, runs what that makes ready,
    /// closes every resource and native handle, and closes the loop. A loop runs once.
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop already ran, a loop is already running on this
    /// thread, or the loop was stopped before main completed.</exception>
    public void RunUntilComplete(Func<Task> main)
    {
        ArgumentNullException.ThrowIfNull(main);
        Task task = RunMain(main);
        task.GetAwaiter().GetResult();
    }

    /// <summary>Runs <paramref name="main"/> to completion on this loop and returns its result; see <see cref="RunUntilComplete(Func{Task})"/>.</summary>
    public T RunUntilComplete<T>(Func<Task<T>> main)
    {
        ArgumentNullException.ThrowIfNull(main);
        Task task = RunMain(main);
        if (task is Task<T> result)
        {
            return result.GetAwaiter().GetResult();
        }

        // main threw before returning its task, or the loop was stopped first: RunMain made a plain faulted
        // Task, which rethrows the real exception here (a cast to Task<T> threw InvalidCastException instead).
        task.GetAwaiter().GetResult();
        throw new UnreachableException();
    }

    private Task RunMain(Func<Task> main)
    {
        CheckNotNested();
        if (_state != (int)LoopState.Created)
        {
            throw new InvalidOperationException(_state == (int)LoopState.Closed
                ? $"This {PolicyName} loop is closed: a loop runs once. Create a new one (or use Loop.Run)."
                : $"This {PolicyName} loop is already running.");
        }

        _ownerThreadId = Environment.CurrentManagedThreadId;
        _loopContext = ExecutionContext.Capture(); // the context the loop thread runs callbacks in
        _state = (int)LoopState.Running;
        Diagnostics.LoopMetrics.Register(this);
        SynchronizationContext? previousContext = System.Threading.SynchronizationContext.Current;
        t_current = this;
        System.Threading.SynchronizationContext.SetSynchronizationContext(_context);
        EventHandler<UnobservedTaskExceptionEventArgs>? unobserved = null;
        if (_options.Debug)
        {
            unobserved = OnUnobservedTaskException;
            System.Threading.Tasks.TaskScheduler.UnobservedTaskException += unobserved;
        }

        Task task;
        try
        {
            try
            {
                task = main() ?? throw new InvalidOperationException("main returned null instead of a Task.");
            }
            catch (Exception ex)
            {
                task = Task.FromException(ex);
            }

            if (_runningForever)
            {
                RunBackend(); // until Stop() (RunForever)
                task = Task.CompletedTask;
            }

            TrackTask(task); // for GetPendingTasks
            if (!task.IsCompleted)
            {
                // Posted through the loop's context: main usually completes on the loop thread, and then the stop is
                // queued there with no cross-thread wake-up (a pool thread used to run it, and had to wake the loop).
                task.GetAwaiter().UnsafeOnCompleted(Stop);
                RunBackend();
            }

            if (!task.IsCompleted)
            {
                task = Task.FromException(new InvalidOperationException(
                    "The loop was stopped before main completed (Loop.Stop was called)."));
            }
        }
        finally
        {
            try
            {
                Shutdown();
            }
            finally
            {
                if (unobserved is not null)
                {
                    System.Threading.Tasks.TaskScheduler.UnobservedTaskException -= unobserved;
                }

                System.Threading.SynchronizationContext.SetSynchronizationContext(previousContext);
                t_current = null;
                _state = (int)LoopState.Closed;
                Diagnostics.LoopMetrics.Unregister(this);
            }
        }

        return task;
    }

    private void OnUnobservedTaskException(object? sender, UnobservedTaskExceptionEventArgs e)
    {
        // Raised on the finalizer thread: report it on the loop if it still runs.
        try
        {
            if (_state == (int)LoopState.Running)
            {
                CallSoonThreadSafe(
                    static s => s.Loop.ReportException("Task exception was never observed", s.Error, null),
                    (Loop: this, Error: (Exception)e.Exception));
            }
            else
            {
                WriteLog($"EventLoop: task exception was never observed: {e.Exception}");
            }
        }
        catch (InvalidOperationException)
        {
            WriteLog($"EventLoop: task exception was never observed: {e.Exception}");
        }
    }

    private static void CheckNotNested()
    {
        if (t_current is { } running)
        {
            ThrowHelper.ThrowNested(running);
        }
    }

    /// <inheritdoc cref="IDisposable.Dispose"/>
    /// <remarks>Closes a loop that never ran; a loop closes itself at the end of its run.</remarks>
    public void Dispose()
    {
        if (_state == (int)LoopState.Created)
        {
            _state = (int)LoopState.Closed;
            CloseBackend();
        }
        else if (_state != (int)LoopState.Closed && IsOnLoopThread)
        {
            throw new InvalidOperationException("A loop cannot be disposed from inside its own callbacks; call Stop() instead.");
        }

        GC.SuppressFinalize(this);
    }

    // ---------------------------------------------------------------- exceptions and logging

    /// <summary>Hands an exception to the loop's exception handler (or the log). Never throws.</summary>
    public void ReportException(string message, Exception? exception, object? callback = null)
    {
        var context = new LoopExceptionContext(this, message, exception, callback);
        Action<LoopExceptionContext>? handler = _exceptionHandler;
        if (handler is not null)
        {
            try
            {
                handler(context);
                return;
            }
            catch (Exception handlerError)
            {
                WriteLog($"EventLoop: the exception handler threw {handlerError}");
            }
        }

        WriteLog($"EventLoop: {context}");
    }

    internal void WriteLog(string line)
    {
        try
        {
            (_options.Log ?? Console.Error).WriteLine(line);
        }
        catch (Exception)
        {
            // Logging must never take the loop down.
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{PolicyName} loop ({(LoopState)_state}, ready={_ready.Count}, timers={_timers.Count})";

    internal static class ActionInvoker
    {
        public static readonly Action<Action> Invoke = Call;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per CallSoonThreadSafe(Action): hot from the first post
        private static void Call(Action action) => action();
    }
}
