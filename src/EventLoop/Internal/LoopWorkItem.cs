namespace EventLoop.Internal;

/// <summary>A unit of work the loop knows how to run without a delegate allocation.</summary>
internal abstract class LoopWorkItem
{
    /// <summary>Runs the work on the loop thread. Exceptions go to the loop's exception handler.</summary>
    internal abstract void Execute();
}

/// <summary>
/// A pooled callback behind a <see cref="LoopHandle"/>. Its <c>_state</c> packs a version (bumped
/// every time the item is recycled) and a cancelled bit, so a stale handle can never cancel the
/// callback that reuses the item.
/// </summary>
internal abstract class CallbackItem : LoopWorkItem
{
    private int _state; // (version << 1) | cancelled

    internal int Version => Volatile.Read(ref _state) >> 1;

    internal bool TryCancel(int version)
    {
        int expected = version << 1;
        return Interlocked.CompareExchange(ref _state, expected | 1, expected) == expected;
    }

    internal bool IsCancelled(int version)
    {
        int state = Volatile.Read(ref _state);
        return state == ((version << 1) | 1);
    }

    internal bool IsPending(int version) => Volatile.Read(ref _state) == version << 1;

    /// <summary>
    /// Retires this use of the item: bumps the version so old handles go stale, and says whether
    /// the use was cancelled. Called once per use, on the loop thread, before the callback runs.
    /// </summary>
    private protected bool Retire()
    {
        int state = Volatile.Read(ref _state);
        int old = Interlocked.Exchange(ref _state, ((state >> 1) + 1) << 1);
        return (old & 1) != 0;
    }

    /// <summary>Drops the callback and its state (a cancelled timer must not keep them alive).</summary>
    internal abstract void ClearCallback();

    /// <summary>Retires a use that will never run (a timer dropped at shutdown) and pools the item.</summary>
    internal abstract void Discard();
}

/// <summary>
/// A callback with typed state. Instances are pooled per thread, so the state-passing
/// <c>CallSoon&lt;TState&gt;</c> allocates nothing in steady state.
/// </summary>
internal sealed class CallbackItem<TState> : CallbackItem
{
    private const int MaxPooled = 1024;

    [ThreadStatic]
    private static CallbackItem<TState>[]? t_pool;
    [ThreadStatic]
    private static int t_pooled;

    private Action<TState>? _callback;
    private TState _value = default!;

    internal static CallbackItem<TState> Rent(Action<TState> callback, TState state)
    {
        CallbackItem<TState>? item = null;
        CallbackItem<TState>[]? pool = t_pool;
        if (pool is not null && t_pooled > 0)
        {
            int index = --t_pooled;
            item = pool[index];
            pool[index] = null!;
        }

        item ??= new CallbackItem<TState>();
        item._callback = callback;
        item._value = state;
        return item;
    }

    internal override void Execute()
    {
        Action<TState>? callback = _callback;
        TState value = _value;
        _callback = null;
        _value = default!;
        bool cancelled = Retire();
        Return(this);
        if (!cancelled && callback is not null)
        {
            callback(value);
        }
    }

    internal override void ClearCallback()
    {
        _callback = null;
        _value = default!;
    }

    internal override void Discard()
    {
        ClearCallback();
        Retire();
        Return(this);
    }

    private static void Return(CallbackItem<TState> item)
    {
        CallbackItem<TState>[] pool = t_pool ??= new CallbackItem<TState>[MaxPooled];
        if (t_pooled < pool.Length)
        {
            pool[t_pooled++] = item;
        }
    }

    public override string ToString() => _callback?.Method.ToString() ?? "(retired callback)";
}
