using System.Runtime.CompilerServices;

namespace EventLoop.Internal;

/// <summary>
/// One unit of ready work: a callback object and its state. What <see cref="Callback"/> is decides
/// how it runs (see <see cref="Loop"/>'s dispatch): a <see cref="SendOrPostCallback"/> from the
/// synchronization context, a <see cref="LoopWorkItem"/>, a <see cref="Task"/> from the task
/// scheduler, or an <see cref="Action{T}"/> of object.
/// </summary>
internal readonly struct ReadyEntry(object callback, object? state)
{
    public readonly object Callback = callback;
    public readonly object? State = state;
}

/// <summary>
/// A growable ring buffer touched only by the loop thread, so it takes no lock.
/// Mutable struct! Don't make this readonly, and never copy it.
/// </summary>
internal struct ReadyQueue
{
    private ReadyEntry[] _items;
    private int _head;
    private int _count;
    private long _dequeued; // entries ever dequeued: the i-th entry enqueued is the i-th dequeued (FIFO)

    public ReadyQueue(int capacity)
    {
        _items = new ReadyEntry[capacity];
        _head = 0;
        _count = 0;
    }

    public readonly int Count => _count;

    /// <summary>How many entries were ever dequeued; an entry's index is <see cref="NextIndex"/> when it was enqueued.</summary>
    public readonly long Dequeued => _dequeued;

    /// <summary>The index the next enqueued entry gets.</summary>
    public readonly long NextIndex => _dequeued + _count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enqueue(object callback, object? state)
    {
        ReadyEntry[] items = _items;
        if (_count == items.Length)
        {
            Grow();
            items = _items;
        }

        int tail = _head + _count;
        if (tail >= items.Length)
        {
            tail -= items.Length;
        }

        items[tail] = new ReadyEntry(callback, state);
        _count++;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadyEntry Dequeue()
    {
        ReadyEntry[] items = _items;
        int head = _head;
        ReadyEntry entry = items[head];
        items[head] = default; // let the GC have the callback and its state
        head++;
        _head = head == items.Length ? 0 : head;
        _count--;
        _dequeued++;
        return entry;
    }

    public void Clear()
    {
        Array.Clear(_items);
        _dequeued += _count;
        _head = 0;
        _count = 0;
    }

    private void Grow()
    {
        var bigger = new ReadyEntry[_items.Length * 2];
        int firstPart = Math.Min(_count, _items.Length - _head);
        Array.Copy(_items, _head, bigger, 0, firstPart);
        Array.Copy(_items, 0, bigger, firstPart, _count - firstPart);
        _items = bigger;
        _head = 0;
    }
}
