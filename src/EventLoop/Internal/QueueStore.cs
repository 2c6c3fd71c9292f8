namespace EventLoop.Internal;

/// <summary>
/// Where an <see cref="AsyncQueue{T}"/> keeps the items nobody has taken yet, and so the order they come out in:
/// asyncio's <c>_init</c>/<c>_put</c>/<c>_get</c> hooks, which <c>LifoQueue</c> and <c>PriorityQueue</c> override.
/// The waiting, hand-off, completion and join logic is the queue's and is the same for every order.
/// Loop thread only.
/// </summary>
internal abstract class QueueStore<T>
{
    public abstract int Count { get; }

    public abstract void Add(T item);

    public abstract bool TryTake(out T item);

    /// <summary>Drops every item (an immediate completion).</summary>
    public abstract void Clear();
}

/// <summary>First in, first out: <see cref="AsyncQueue{T}"/>.</summary>
internal sealed class FifoStore<T> : QueueStore<T>
{
    private readonly Queue<T> _items = new();

    public override int Count => _items.Count;

    public override void Add(T item) => _items.Enqueue(item);

    public override bool TryTake(out T item) => _items.TryDequeue(out item!);

    public override void Clear() => _items.Clear();
}

/// <summary>Last in, first out: <see cref="AsyncLifoQueue{T}"/>.</summary>
internal sealed class LifoStore<T> : QueueStore<T>
{
    private readonly Stack<T> _items = new();

    public override int Count => _items.Count;

    public override void Add(T item) => _items.Push(item);

    public override bool TryTake(out T item) => _items.TryPop(out item!);

    public override void Clear() => _items.Clear();
}

/// <summary>
/// Smallest first by a comparer, FIFO among equals (a sequence number breaks ties, as the loop's timer heap
/// does): <see cref="AsyncPriorityQueue{T}"/>. asyncio's heapq order is not stable among equals; this one is.
/// </summary>
internal sealed class PriorityStore<T> : QueueStore<T>
{
    private readonly PriorityQueue<T, (T Item, long Sequence)> _items;
    private long _sequence;

    public PriorityStore(IComparer<T> comparer)
    {
        _items = new PriorityQueue<T, (T Item, long Sequence)>(Comparer<(T Item, long Sequence)>.Create((a, b) =>
        {
            int order = comparer.Compare(a.Item, b.Item);
            return order != 0 ? order : a.Sequence.CompareTo(b.Sequence);
        }));
    }

    public override int Count => _items.Count;

    public override void Add(T item) => _items.Enqueue(item, (item, _sequence++));

    public override bool TryTake(out T item) => _items.TryDequeue(out item!, out _);

    public override void Clear() => _items.Clear();
}
