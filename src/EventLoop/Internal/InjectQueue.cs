using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EventLoop.Internal;

/// <summary>A node of the <see cref="InjectQueue"/>: a pooled callback item itself, or a <see cref="InjectQueue.PostNode"/>.</summary>
internal abstract class InjectNode
{
    /// <summary>The next node in the inject queue. Only the queue touches it.</summary>
    internal InjectNode? InjectNext;
}

/// <summary>
/// The queue other threads post to (many producers, one consumer: the loop thread). An intrusive linked queue
/// (Vyukov's intrusive MPSC design): a post is one <see cref="Interlocked.Exchange{T}(ref T, T)"/> on the tail and one
/// store, a take touches no interlocked operation except when it takes the last node. A
/// <c>CallSoonThreadSafe</c> links its pooled <see cref="CallbackItem"/> itself, which carries the handle's version and
/// cancel bit, so such a post moves one pooled object between threads; other posts (a context's continuation, a work
/// item) travel in a pooled <see cref="PostNode"/>. Both pools travel back from the loop thread to posting threads
/// through a <see cref="BatchExchange{T}"/>, so a steady stream of posts allocates nothing.
/// </summary>
/// <remarks>
/// <para>A producer links its node in two steps (swap the tail, then set the old tail's <c>InjectNext</c>). Between them
/// the queue is not empty (<see cref="IsEmpty"/> is false) yet <see cref="TryDequeue"/> finds nothing: the loop must
/// then poll again rather than sleep, which <see cref="Loop"/>'s sleep check guarantees because it asks
/// <see cref="IsEmpty"/>.</para>
/// <para>A node is handed out only once a node behind it is linked (its producer is done with it), so it can go back
/// to its pool at once. The last node gets one behind it from the consumer, which links the queue's own stub
/// node after it.</para>
/// </remarks>
internal sealed class InjectQueue
{
    private readonly Padded _tail;   // producers swap here; on its own cache line
    private readonly PostNode _stub; // the queue's own node, linked when the consumer takes the last one
    private InjectNode _head;        // the consumer's: the next node to hand out, or the stub

    public InjectQueue()
    {
        _stub = new PostNode();
        _head = _stub;
        _tail = new Padded { Node = _stub };
    }

    /// <summary>True when no producer has started a post that the consumer has not taken. Consumer only.</summary>
    public bool IsEmpty => _head == _stub && Volatile.Read(ref _tail.Node) == _stub;

    /// <summary>Posts one entry in a pooled node. Thread-safe; the swap is a full fence.</summary>
    public void Enqueue(object callback, object? state)
    {
        PostNode node = PostNode.Rent();
        node.Callback = callback;
        node.State = state;
        Link(node);
    }

    /// <summary>Posts a callback item, which is its own node (not queued anywhere else until the loop runs it). Thread-safe; a full fence.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enqueue(CallbackItem item) => Link(item);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Link(InjectNode node)
    {
        node.InjectNext = null;
        InjectNode previous = Interlocked.Exchange(ref _tail.Node, node);
        Volatile.Write(ref previous.InjectNext, node);
    }

    /// <summary>
    /// Waits (yielding) until every producer that has swapped the tail has also linked its node, so
    /// <see cref="TryDequeue"/> can take every post made so far. Consumer only.
    /// </summary>
    public void WaitUntilLinked()
    {
        InjectNode tail = Volatile.Read(ref _tail.Node);
        var spinner = default(SpinWait);
        for (InjectNode node = _head; node != tail;)
        {
            InjectNode? next = Volatile.Read(ref node.InjectNext);
            if (next is null)
            {
                spinner.SpinOnce(); // a producer is between its two steps: let it finish
                continue;
            }

            node = next;
        }
    }

    /// <summary>Takes the oldest entry. Consumer only (the loop thread; after the loop closed, whoever holds the queue's lock). False when empty or when the next post is still being linked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see ColdPostsProbe: posts from other threads are hot from the first one; tier-0 code doubled their cost
    public bool TryDequeue(out ReadyEntry entry)
    {
        InjectNode head = _head;
        InjectNode? next = Volatile.Read(ref head.InjectNext);
        if (head == _stub)
        {
            if (next is null)
            {
                entry = default;
                return false;
            }

            _head = next; // step over the stub
            head = next;
            next = Volatile.Read(ref head.InjectNext);
        }

        if (next is null)
        {
            // head may be the last node: link the stub behind it, so that it has a successor and can be handed out.
            // If another producer swapped the tail first, its link to head is pending: try again later.
            if (head != Volatile.Read(ref _tail.Node))
            {
                entry = default;
                return false;
            }

            Link(_stub);
            next = Volatile.Read(ref head.InjectNext);
            if (next is null)
            {
                entry = default; // a producer got in between; it links to head shortly
                return false;
            }
        }

        // A node behind head is linked, so no producer touches head any more: it may go back to its pool.
        _head = next;
        entry = Take(head);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ReadyEntry Take(InjectNode node)
    {
        if (node is PostNode post)
        {
            var entry = new ReadyEntry(post.Callback!, post.State);
            post.Callback = null;
            post.State = null;
            post.InjectNext = null;
            PostNode.Return(post);
            return entry;
        }

        node.InjectNext = null;
        return new ReadyEntry(node, null);
    }

    /// <summary>A post that is not a callback item of its own: the callback and its state.</summary>
    internal sealed class PostNode : InjectNode
    {
        private const int LocalCapacity = 4 * BatchExchange<PostNode>.BatchSize;

        // Up to 512 batches (128 Ki nodes, 4 MiB) wait in the exchange for posting threads.
        private static readonly BatchExchange<PostNode> s_exchange = new(maxBatches: 512);

        [ThreadStatic]
        private static PostNode[]? t_items;
        [ThreadStatic]
        private static int t_count;

        public object? Callback;
        public object? State;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static PostNode Rent()
        {
            PostNode[]? items = t_items;
            int count = t_count;
            if (items is not null && count > 0)
            {
                t_count = --count;
                PostNode node = items[count];
                items[count] = null!;
                return node;
            }

            return RentSlow();
        }

        private static PostNode RentSlow() => s_exchange.RefillAndPop(ref t_items, ref t_count, LocalCapacity) ?? new PostNode();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Return(PostNode node)
        {
            PostNode[]? items = t_items;
            int count = t_count;
            if (items is not null && count < items.Length)
            {
                items[count] = node;
                t_count = count + 1;
                return;
            }

            ReturnSlow(node);
        }

        private static void ReturnSlow(PostNode node) => s_exchange.PublishAndPush(ref t_items, ref t_count, node, LocalCapacity);
    }

    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private sealed class Padded
    {
        [FieldOffset(64)]
        public InjectNode Node = null!;
    }
}
