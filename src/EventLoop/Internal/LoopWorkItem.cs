using System.Runtime.CompilerServices;

namespace EventLoop.Internal;

/// <summary>A unit of work the loop knows how to run without a delegate allocation.</summary>
internal abstract class LoopWorkItem : InjectNode
{
    /// <summary>Runs the work on the loop thread. Exceptions go to the loop's exception handler.</summary>
    internal abstract void Execute();

    /// <summary>
    /// Called, on whichever thread finds out, when a post of this item was refused because the loop closed.
    /// Returns true if the item completed itself (an executor job completes its task there); false means the
    /// loop logs it as dropped.
    /// </summary>
    internal virtual bool TryCompleteRefused() => false;
}

/// <summary>
/// A pooled callback behind a <see cref="LoopHandle"/>. Its <c>_state</c> packs a version (bumped
/// every time the item is retired) and a cancelled bit, so a stale handle can never cancel the
/// callback that reuses the item. Cancelling is loop-affine (as asyncio's <c>Handle.cancel</c>), so
/// the state needs no interlocked operations.
/// </summary>
internal abstract class CallbackItem : LoopWorkItem
{
    private int _state; // (version << 1) | cancelled

    /// <summary>
    /// Set, under the inject queue's lock, when a poster that found the loop closed took this item back on behalf
    /// of the <c>CallSoonThreadSafe</c> that posted it; that call then throws instead of returning a handle.
    /// </summary>
    internal bool RefusedWhilePosting;

    /// <summary>The scheduler's <see cref="ExecutionContext"/> to run the callback in, or null for the loop's own.</summary>
    internal ExecutionContext? Context;

    internal int Version => _state >> 1;

    internal bool TryCancel(int version)
    {
        if (_state != version << 1)
        {
            return false;
        }

        _state |= 1;
        return true;
    }

    internal bool IsCancelled(int version) => _state == ((version << 1) | 1);

    internal bool IsPending(int version) => _state == version << 1;

    /// <summary>
    /// Retires this use of the item: bumps the version so old handles go stale, and says whether
    /// the use was cancelled. Called once per use, on the loop thread, before the callback runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // into the items' Execute, which are optimised from the start (ColdPostsProbe)
    private protected bool Retire()
    {
        int state = _state;
        _state = ((state >> 1) + 1) << 1;
        return (state & 1) != 0;
    }

    /// <summary>Drops the callback and its state (a cancelled timer must not keep them alive).</summary>
    internal abstract void ClearCallback();

    /// <summary>
    /// Runs <paramref name="callback"/> in <paramref name="context"/> (asyncio's <c>Context.run</c>), then puts the loop
    /// thread's context back, so AsyncLocal values the callback set do not leak into the callbacks after it.
    /// <see cref="ExecutionContext.Restore"/> rather than <see cref="ExecutionContext.Run"/>: no delegate or closure to allocate.
    /// </summary>
    private protected static void RunInContext<T>(ExecutionContext context, Action<T> callback, T value)
    {
        ExecutionContext? loopContext = ExecutionContext.Capture();
        ExecutionContext.Restore(context);
        try
        {
            callback(value);
        }
        finally
        {
            if (loopContext is not null)
            {
                ExecutionContext.Restore(loopContext);
            }
        }
    }

    /// <summary>Retires a use that will never run (a timer dropped at shutdown) and pools the item.</summary>
    internal abstract void Discard();
}

/// <summary>
/// A callback whose state is a reference type (or none): the common case, kept out of generic code so
/// its per-thread pool is a plain thread static (statics of shared generic code need a runtime lookup).
/// The callback is an <c>Action&lt;TState&gt;</c> for a reference type TState, invoked through its
/// <c>Action&lt;object?&gt;</c> view: same signature at the machine level.
/// </summary>
internal sealed class ObjectCallbackItem : CallbackItem
{
    private const int LocalCapacity = 4 * BatchExchange<ObjectCallbackItem>.BatchSize;

    // Items rented on one thread run (and are returned) on a loop thread: a post from a worker thread,
    // or a burst of 100,000 timers. Each thread keeps up to LocalCapacity; beyond that, batches wait in
    // this exchange (up to 128 Ki items) for whichever thread runs dry.
    private static readonly BatchExchange<ObjectCallbackItem> s_exchange = new(maxBatches: 512);

    [ThreadStatic]
    private static ObjectCallbackItem[]? t_items;
    [ThreadStatic]
    private static int t_count;

    private object? _callback;
    private object? _value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ObjectCallbackItem Rent(object callback, object? state)
    {
        ObjectCallbackItem[]? items = t_items;
        int count = t_count;
        ObjectCallbackItem item;
        if (items is not null && count > 0)
        {
            t_count = --count;
            item = items[count];
            items[count] = null!;
        }
        else
        {
            item = RentSlow();
        }

        item._callback = callback;
        item._value = state;
        return item;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    private static ObjectCallbackItem RentSlow() =>
        s_exchange.RefillAndPop(ref t_items, ref t_count, LocalCapacity) ?? new ObjectCallbackItem();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    internal override void Execute()
    {
        object? callback = _callback;
        object? value = _value;
        ExecutionContext? context = Context;
        _callback = null;
        _value = null;
        Context = null;
        bool cancelled = Retire();
        Return(this);
        if (!cancelled && callback is not null)
        {
            if (context is null)
            {
                System.Runtime.CompilerServices.Unsafe.As<Action<object?>>(callback)(value);
            }
            else
            {
                RunInContext(context, System.Runtime.CompilerServices.Unsafe.As<Action<object?>>(callback), value);
            }
        }
    }

    internal override void ClearCallback()
    {
        _callback = null;
        _value = null;
        Context = null;
    }

    internal override void Discard()
    {
        ClearCallback();
        Retire();
        Return(this);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Return(ObjectCallbackItem item)
    {
        ObjectCallbackItem[]? items = t_items;
        int count = t_count;
        if (items is not null && count < items.Length)
        {
            items[count] = item;
            t_count = count + 1;
            return;
        }

        ReturnSlow(item);
    }

    private static void ReturnSlow(ObjectCallbackItem item) =>
        s_exchange.PublishAndPush(ref t_items, ref t_count, item, LocalCapacity);

    // CallSoon(Action) passes the Action as state to a shared invoker: name the Action then.
    public override string ToString() =>
        _value is Delegate inner ? Describe(inner) : _callback is Delegate d ? Describe(d) : "(retired callback)";

    internal static string Describe(Delegate d) => $"{d.Method.DeclaringType?.FullName}.{d.Method.Name}";
}

/// <summary>
/// A callback with value-type state (reference types use <see cref="ObjectCallbackItem"/>). Instances are pooled per thread, so the state-passing
/// <c>CallSoon&lt;TState&gt;</c> allocates nothing in steady state.
/// </summary>
internal sealed class CallbackItem<TState> : CallbackItem
{
    // Enough for a burst of outstanding timers (100,000 in the benchmark) to be reused, not reallocated.
    private const int MaxPooled = 1 << 17;

    [ThreadStatic]
    private static Pool? t_pool;

    private Action<TState>? _callback;
    private TState _value = default!;

    internal static CallbackItem<TState> Rent(Action<TState> callback, TState state)
    {
        Pool? pool = t_pool;
        CallbackItem<TState> item;
        if (pool is not null && pool.Count > 0)
        {
            int index = --pool.Count;
            item = pool.Items[index];
            pool.Items[index] = null!;
        }
        else
        {
            item = new CallbackItem<TState>();
        }

        item._callback = callback;
        item._value = state;
        return item;
    }

    internal override void Execute()
    {
        Action<TState>? callback = _callback;
        TState value = _value;
        ExecutionContext? context = Context;
        _callback = null;
        _value = default!;
        Context = null;
        bool cancelled = Retire();
        Return(this);
        if (!cancelled && callback is not null)
        {
            if (context is null)
            {
                callback(value);
            }
            else
            {
                RunInContext(context, callback, value);
            }
        }
    }

    internal override void ClearCallback()
    {
        _callback = null;
        _value = default!;
        Context = null;
    }

    internal override void Discard()
    {
        ClearCallback();
        Retire();
        Return(this);
    }

    private static void Return(CallbackItem<TState> item)
    {
        Pool pool = t_pool ??= new Pool();
        if (pool.Count == pool.Items.Length)
        {
            if (pool.Items.Length >= MaxPooled)
            {
                return;
            }

            Array.Resize(ref pool.Items, pool.Items.Length * 2);
        }

        pool.Items[pool.Count++] = item;
    }

    public override string ToString() => _callback is null ? "(retired callback)" : ObjectCallbackItem.Describe(_callback);

    private sealed class Pool
    {
        public CallbackItem<TState>[] Items = new CallbackItem<TState>[64];
        public int Count;
    }
}
