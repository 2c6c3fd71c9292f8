using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// An <see cref="AsyncQueue{T}"/> that hands out the newest item first, asyncio's <c>LifoQueue</c>. Bounds,
/// waiting, completion and <see cref="AsyncQueue{T}.JoinAsync"/> are the queue's; only the order differs.
/// </summary>
public sealed class AsyncLifoQueue<T> : AsyncQueue<T>
{
    /// <summary>Creates a LIFO queue on <paramref name="loop"/> (default: the current loop).</summary>
    /// <param name="capacity">The most items it holds; 0 (the default) means unbounded.</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is negative.</exception>
    public AsyncLifoQueue(int capacity = 0, Loop? loop = null)
        : base(capacity, loop, new LifoStore<T>())
    {
    }
}
