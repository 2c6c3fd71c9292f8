using System.Collections.Concurrent;

namespace EventLoop.Internal;

/// <summary>
/// Moves pooled objects between threads in batches (a "magazine" exchange, as in Bonwick's slab
/// allocator). Each thread keeps its own lock-free stack of pooled objects; a thread whose stack
/// overflows publishes a batch here, and a thread whose stack runs dry takes one. Objects rented on one
/// thread and returned on another (a post from a worker thread runs on the loop thread) therefore
/// circulate without allocation, at the cost of two queue operations per <see cref="BatchSize"/> objects.
/// </summary>
/// <remarks>Used through a static readonly instance of a non-generic pool, so the hot path never touches generic statics.</remarks>
internal sealed class BatchExchange<T>(int maxBatches)
    where T : class
{
    /// <summary>Objects per batch. A thread's own stack must hold at least twice as many.</summary>
    public const int BatchSize = 256;

    private readonly ConcurrentQueue<T[]> _full = new();
    private readonly ConcurrentQueue<T[]> _empty = new();
    private int _fullCount;

    /// <summary>
    /// Moves the top <see cref="BatchSize"/> objects of <paramref name="stack"/> (which holds
    /// <paramref name="count"/>, at least <see cref="BatchSize"/>) into the exchange. Returns false, moving
    /// nothing, when the exchange already holds its maximum: the caller lets the object go to the GC.
    /// </summary>
    public bool TryPublish(T[] stack, ref int count)
    {
        if (Volatile.Read(ref _fullCount) >= maxBatches)
        {
            return false;
        }

        Interlocked.Increment(ref _fullCount);
        if (!_empty.TryDequeue(out T[]? batch))
        {
            batch = new T[BatchSize];
        }

        count -= BatchSize;
        Array.Copy(stack, count, batch, 0, BatchSize);
        Array.Clear(stack, count, BatchSize);
        _full.Enqueue(batch);
        return true;
    }

    /// <summary>
    /// The slow path of a thread's rent, when its own stack is empty: refills the stack with a batch and pops one
    /// object, or returns null when the exchange is empty too (the caller allocates).
    /// </summary>
    public T? RefillAndPop(ref T[]? stack, ref int count, int capacity)
    {
        stack ??= new T[capacity];
        if (count != 0 || !TryTake(stack, ref count))
        {
            return null;
        }

        T item = stack[--count];
        stack[count] = null!;
        return item;
    }

    /// <summary>
    /// The slow path of a thread's return, when its stack is full (or not yet made): publishes a batch to make
    /// room and pushes <paramref name="item"/>, or drops it (to the GC) when the exchange is full too.
    /// </summary>
    public void PublishAndPush(ref T[]? stack, ref int count, T item, int capacity)
    {
        stack ??= new T[capacity];
        if (count == stack.Length && !TryPublish(stack, ref count))
        {
            return;
        }

        stack[count++] = item;
    }

    /// <summary>
    /// Moves one batch onto <paramref name="stack"/> (which holds <paramref name="count"/> and has room for
    /// <see cref="BatchSize"/> more). Returns false when the exchange is empty.
    /// </summary>
    public bool TryTake(T[] stack, ref int count)
    {
        if (!_full.TryDequeue(out T[]? batch))
        {
            return false;
        }

        Interlocked.Decrement(ref _fullCount);
        Array.Copy(batch, 0, stack, count, BatchSize);
        Array.Clear(batch);
        count += BatchSize;
        _empty.Enqueue(batch);
        return true;
    }
}
