using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// An <see cref="AsyncQueue{T}"/> that hands out the smallest item first, asyncio's <c>PriorityQueue</c>:
/// put <c>(priority, data)</c> tuples, as in Python (value tuples compare element by element), or give a comparer.
/// Items that compare equal come out in the order they were put (asyncio's heap does not promise that).
/// Bounds, waiting, completion and <see cref="AsyncQueue{T}.JoinAsync"/> are the queue's; only the order differs.
/// </summary>
/// <example><code>
/// var jobs = new AsyncPriorityQueue&lt;(int Priority, string Job)&gt;();
/// await jobs.PutAsync((2, "later"));
/// await jobs.PutAsync((1, "first"));
/// var (_, job) = await jobs.GetAsync(); // "first"
/// </code></example>
public sealed class AsyncPriorityQueue<T> : AsyncQueue<T>
{
    /// <summary>Creates a priority queue on <paramref name="loop"/> (default: the current loop).</summary>
    /// <param name="capacity">The most items it holds; 0 (the default) means unbounded.</param>
    /// <param name="comparer">Orders the items, smallest first; default <see cref="Comparer{T}.Default"/>.</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is negative.</exception>
    public AsyncPriorityQueue(int capacity = 0, IComparer<T>? comparer = null, Loop? loop = null)
        : base(capacity, loop, new PriorityStore<T>(comparer ?? Comparer<T>.Default))
    {
    }
}
