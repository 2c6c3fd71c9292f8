using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace EventLoop.Internal;

/// <summary>
/// One pending wait on a loop primitive (a queue get or put, a lock, an event, a semaphore): the
/// <see cref="IValueTaskSource{TResult}"/> behind the returned <see cref="ValueTask{TResult}"/>. Waiters are
/// pooled per <see cref="WaiterQueue{T}"/> and versioned like <c>ManualResetValueTaskSourceCore</c>, so a
/// steady-state wait allocates nothing. Completion happens on the loop thread; a continuation that captured
/// the loop's context is queued straight onto the ready queue (after what is already ready, as asyncio
/// schedules a future's callbacks with call_soon), without allocating.
/// </summary>
internal sealed class LoopWaiter<T> : ShutdownNode, IValueTaskSource<T>, IValueTaskSource
{
    private static readonly Action<object?> s_completedSentinel = static _ => throw new InvalidOperationException("completed sentinel");

    private readonly WaiterQueue<T> _owner;
    private short _version;
    private bool _completed;
    private bool _linked;
    private T _value = default!;
    private Exception? _error;
    private Action<object?>? _continuation;
    private object? _continuationState;
    private object? _capturedContext; // null: the loop; a SynchronizationContext / TaskScheduler; or s_threadPool
    private CancellationToken _token;
    private CancellationTokenRegistration _registration;
    private bool _retired;

    internal LoopWaiter<T>? WaitNext;
    internal LoopWaiter<T>? WaitPrevious;

    private static readonly object s_threadPool = new();

    internal LoopWaiter(WaiterQueue<T> owner) => _owner = owner;

    /// <summary>The item a put waiter carries, or the result a get waiter received.</summary>
    internal T Value
    {
        get => _value;
        set => _value = value;
    }

    internal bool IsLinked
    {
        get => _linked;
        set => _linked = value;
    }

    internal ValueTask<T> AsValueTask() => new(this, _version);

    internal ValueTask AsNonGenericValueTask() => new(this, _version);

    /// <summary>Arms the waiter for a new wait: registers for shutdown and for <paramref name="token"/>.</summary>
    internal void Arm(Loop loop, CancellationToken token)
    {
        _completed = false;
        _error = null;
        _token = token;
        loop.RegisterShutdown(this);
        if (token.CanBeCanceled)
        {
            _registration = token.UnsafeRegister(static (s, _) => ((LoopWaiter<T>)s!).OnTokenCancelled(), this);
        }
    }

    private void OnTokenCancelled()
    {
        Loop loop = _owner.Loop;
        short version = _version;
        if (loop.IsOnLoopThread)
        {
            CancelIfPending(version, _token);
            return;
        }

        try
        {
            loop.CallSoonThreadSafe(static s => s.Waiter.CancelIfPending(s.Version, s.Waiter._token), (Waiter: this, Version: version));
        }
        catch (InvalidOperationException)
        {
            // The loop closed: shutdown already cancelled every waiter.
        }
    }

    private void CancelIfPending(short version, CancellationToken token)
    {
        if (version != _version || _completed)
        {
            return;
        }

        _owner.Remove(this);
        SetException(new OperationCanceledException(token));
    }

    internal override void OnShutdown()
    {
        if (!_completed)
        {
            _owner.Remove(this);
            SetException(new OperationCanceledException("The loop shut down while this wait was pending.", _owner.Loop.ShutdownToken));
        }
    }

    internal void SetResult(T value)
    {
        _value = value;
        Complete();
    }

    internal void SetException(Exception error)
    {
        _error = error;
        Complete();
    }

    private void Complete()
    {
        _completed = true;
        _owner.Loop.UnregisterShutdown(this);
        if (_token.CanBeCanceled && !_registration.Unregister())
        {
            // The token's callback is running or has run on another thread and may still look at this
            // waiter: never reuse it, or a late cancellation could hit the next wait.
            _retired = true;
        }

        _registration = default;

        Action<object?>? continuation = _continuation;
        if (continuation is not null && !ReferenceEquals(continuation, s_completedSentinel))
        {
            _continuation = s_completedSentinel;
            Schedule(continuation, _continuationState);
        }
        else
        {
            _continuation = s_completedSentinel;
        }
    }

    private void Schedule(Action<object?> continuation, object? state)
    {
        object? context = _capturedContext;
        _capturedContext = null;
        _continuationState = null;
        if (context is null)
        {
            _owner.Loop.EnqueueReady(continuation, state);
        }
        else if (ReferenceEquals(context, s_threadPool))
        {
            ThreadPool.UnsafeQueueUserWorkItem(continuation, state, preferLocal: false);
        }
        else if (context is SynchronizationContext sc)
        {
            sc.Post(static s =>
            {
                var tuple = (Tuple<Action<object?>, object?>)s!;
                tuple.Item1(tuple.Item2);
            }, Tuple.Create(continuation, state));
        }
        else
        {
            Task.Factory.StartNew(continuation, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, (TaskScheduler)context);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token)
    {
        ValidateToken(token);
        if (!_completed)
        {
            return ValueTaskSourceStatus.Pending;
        }

        return _error is null ? ValueTaskSourceStatus.Succeeded
            : _error is OperationCanceledException ? ValueTaskSourceStatus.Canceled
            : ValueTaskSourceStatus.Faulted;
    }

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        ValidateToken(token);
        Loop loop = _owner.Loop;
        object? context = s_threadPool;
        if ((flags & ValueTaskSourceOnCompletedFlags.UseSchedulingContext) != 0)
        {
            SynchronizationContext? sc = SynchronizationContext.Current;
            if (sc is LoopSynchronizationContext lsc && ReferenceEquals(lsc.Loop, loop))
            {
                context = null; // the zero-allocation path: straight onto the ready queue
            }
            else if (sc is not null && sc.GetType() != typeof(SynchronizationContext))
            {
                context = sc;
            }
            else if (TaskScheduler.Current is var ts && ts != TaskScheduler.Default)
            {
                context = ts;
            }
        }

        if ((flags & ValueTaskSourceOnCompletedFlags.FlowExecutionContext) != 0 && ExecutionContext.Capture() is { } ec)
        {
            // Rare (async methods flow the context themselves): wrap the continuation to run in the captured
            // context. In its own method, so the closure is not allocated on the common path.
            (continuation, state) = WrapInExecutionContext(ec, continuation, state);
        }

        _capturedContext = context;
        if (_completed || ReferenceEquals(_continuation, s_completedSentinel))
        {
            Schedule(continuation, state);
            return;
        }

        _continuation = continuation;
        _continuationState = state;
    }

    private static (Action<object?>, object?) WrapInExecutionContext(ExecutionContext context, Action<object?> continuation, object? state) =>
        (static s =>
        {
            var (ec, inner, innerState) = ((ExecutionContext, Action<object?>, object?))s!;
            ExecutionContext.Run(ec, static t => { var (c, st) = ((Action<object?>, object?))t!; c(st); }, (inner, innerState));
        }, (context, continuation, state));

    T IValueTaskSource<T>.GetResult(short token) => GetResultCore(token);

    void IValueTaskSource.GetResult(short token) => GetResultCore(token);

    private T GetResultCore(short token)
    {
        ValidateToken(token);
        if (!_completed)
        {
            throw new InvalidOperationException("The wait has not completed; await the ValueTask instead of reading its result.");
        }

        Exception? error = _error;
        T value = _value;
        Reset();
        if (!_retired)
        {
            _owner.Return(this);
        }
        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        return value;
    }

    private void Reset()
    {
        _version++;
        _completed = false;
        _error = null;
        _value = default!;
        _continuation = null;
        _continuationState = null;
        _capturedContext = null;
        _token = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ValidateToken(short token)
    {
        if (token != _version)
        {
            ThrowMisuse();
        }
    }

    /// <summary>What this wait is for (the queue's <see cref="WaiterQueue{T}.Description"/>): shown by <see cref="Loop.DescribePendingTasks"/>.</summary>
    public override string ToString() => _owner.Description ?? "a wait on a loop primitive";

    private static void ThrowMisuse() =>
        throw new InvalidOperationException("This ValueTask was already awaited or its result read; a ValueTask may be consumed only once.");
}

/// <summary>
/// A FIFO of pending waiters for one primitive, with a small pool of waiter objects. Loop thread only.
/// </summary>
internal sealed class WaiterQueue<T>(Loop loop)
{
    private const int MaxPooled = 16;
    private LoopWaiter<T>? _head;
    private LoopWaiter<T>? _tail;
    private LoopWaiter<T>? _pool; // singly linked through WaitNext
    private int _pooled;

    public Loop Loop { get; } = loop;

    /// <summary>The primitive whose waits these are, for <see cref="Description"/>.</summary>
    public object? Owner { get; init; }

    /// <summary>The method that waits, for <see cref="Description"/>.</summary>
    public string? Operation { get; init; }

    /// <summary>What its waiters wait for, e.g. <c>AsyncQueue&lt;Int32&gt;.GetAsync</c>; for debugging output, built only when asked for.</summary>
    public string? Description => Owner is null ? Operation : $"{TaskDescriber.FriendlyName(Owner.GetType())}.{Operation}";

    public int Count { get; private set; }

    public bool IsEmpty => _head is null;

    /// <summary>Adds a waiter at the tail and arms it.</summary>
    public LoopWaiter<T> Enqueue(CancellationToken token, T value = default!)
    {
        LoopWaiter<T> waiter = Rent();
        waiter.Value = value;
        waiter.WaitPrevious = _tail;
        waiter.WaitNext = null;
        if (_tail is null)
        {
            _head = waiter;
        }
        else
        {
            _tail.WaitNext = waiter;
        }

        _tail = waiter;
        waiter.IsLinked = true;
        Count++;
        waiter.Arm(Loop, token);
        return waiter;
    }

    /// <summary>Takes the oldest waiter out of the queue (the caller completes it).</summary>
    public bool TryDequeue(out LoopWaiter<T> waiter)
    {
        LoopWaiter<T>? head = _head;
        if (head is null)
        {
            waiter = null!;
            return false;
        }

        Remove(head);
        waiter = head;
        return true;
    }

    /// <summary>Unlinks a waiter (cancelled, or dequeued). Idempotent.</summary>
    public void Remove(LoopWaiter<T> waiter)
    {
        if (!waiter.IsLinked)
        {
            return;
        }

        if (waiter.WaitPrevious is null)
        {
            _head = waiter.WaitNext;
        }
        else
        {
            waiter.WaitPrevious.WaitNext = waiter.WaitNext;
        }

        if (waiter.WaitNext is null)
        {
            _tail = waiter.WaitPrevious;
        }
        else
        {
            waiter.WaitNext.WaitPrevious = waiter.WaitPrevious;
        }

        waiter.WaitNext = waiter.WaitPrevious = null;
        waiter.IsLinked = false;
        Count--;
    }

    private LoopWaiter<T> Rent()
    {
        LoopWaiter<T>? waiter = _pool;
        if (waiter is null)
        {
            return new LoopWaiter<T>(this);
        }

        _pool = waiter.WaitNext;
        waiter.WaitNext = null;
        _pooled--;
        return waiter;
    }

    public void Return(LoopWaiter<T> waiter)
    {
        if (_pooled < MaxPooled && Loop.IsOnLoopThread)
        {
            waiter.WaitNext = _pool;
            _pool = waiter;
            _pooled++;
        }
    }
}
