using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EventLoop.Internal;

/// <summary>
/// The queue other threads post to (many producers, one consumer: the loop thread). An intrusive linked
/// queue (Vyukov's MPSC design): a post is one <see cref="Interlocked.Exchange{T}(ref T, T)"/> on the tail
/// and one store, a take touches no interlocked operation at all. Nodes are pooled per thread and travel
/// back from the loop thread to posting threads through a <see cref="BatchExchange{T}"/>, so a steady
/// stream of posts allocates nothing, however deep the backlog grows (up to the pool's bound).
/// </summary>
/// <remarks>
/// A producer links its node in two steps (swap the tail, then set the old tail's <c>Next</c>). Between them
/// the queue is not empty (<see cref="IsEmpty"/> is false) yet <see cref="TryDequeue"/> finds nothing: the
/// loop must then poll again rather than sleep, which <see cref="Loop"/>'s sleep check guarantees because
/// it asks <see cref="IsEmpty"/>.
/// </remarks>
internal sealed class InjectQueue
{
    private readonly Padded _tail; // producers swap here; on its own cache line
    private Node _head;            // the consumer's stub: its Next is the first entry

    public InjectQueue()
    {
        _head = new Node();
        _tail = new Padded { Node = _head };
    }

    /// <summary>True when no producer has started a post that the consumer has not taken.</summary>
    public bool IsEmpty => Volatile.Read(ref _tail.Node) == _head;

    /// <summary>Posts one entry. Thread-safe; the swap is a full fence.</summary>
    public void Enqueue(object callback, object? state)
    {
        Node node = Node.Rent();
        node.Callback = callback;
        node.State = state;
        Node previous = Interlocked.Exchange(ref _tail.Node, node);
        Volatile.Write(ref previous.Next, node);
    }

    /// <summary>
    /// Waits (yielding) until every producer that has swapped the tail has also linked its node, so
    /// <see cref="TryDequeue"/> can take every post made so far. Consumer only.
    /// </summary>
    public void WaitUntilLinked()
    {
        Node tail = Volatile.Read(ref _tail.Node);
        var spinner = default(SpinWait);
        for (Node node = _head; node != tail; )
        {
            Node? next = Volatile.Read(ref node.Next);
            if (next is null)
            {
                spinner.SpinOnce(); // a producer is between its two steps: let it finish
                continue;
            }

            node = next;
        }
    }

    /// <summary>Takes the oldest entry. Consumer only (the loop thread; after the loop closed, whoever holds the queue's lock). False when empty or when the next post is still being linked.</summary>
    public bool TryDequeue(out ReadyEntry entry)
    {
        Node head = _head;
        Node? next = Volatile.Read(ref head.Next);
        if (next is null)
        {
            entry = default;
            return false;
        }

        // next becomes the stub; the old stub is no longer referenced by any producer (the one that
        // linked next has finished with it), so it goes back to the pool.
        entry = new ReadyEntry(next.Callback!, next.State);
        next.Callback = null;
        next.State = null;
        _head = next;
        head.Next = null;
        Node.Return(head);
        return true;
    }

    private sealed class Node
    {
        private const int LocalCapacity = 4 * BatchExchange<Node>.BatchSize;

        // Up to 512 batches (128 Ki nodes, 4 MiB) wait in the exchange for posting threads.
        private static readonly BatchExchange<Node> s_exchange = new(maxBatches: 512);

        [ThreadStatic]
        private static Node[]? t_items;
        [ThreadStatic]
        private static int t_count;

        public object? Callback;
        public object? State;
        public Node? Next;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Node Rent()
        {
            Node[]? items = t_items;
            int count = t_count;
            if (items is not null && count > 0)
            {
                t_count = --count;
                Node node = items[count];
                items[count] = null!;
                return node;
            }

            return RentSlow();
        }

        private static Node RentSlow() => s_exchange.RefillAndPop(ref t_items, ref t_count, LocalCapacity) ?? new Node();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Return(Node node)
        {
            Node[]? items = t_items;
            int count = t_count;
            if (items is not null && count < items.Length)
            {
                items[count] = node;
                t_count = count + 1;
                return;
            }

            ReturnSlow(node);
        }

        private static void ReturnSlow(Node node) => s_exchange.PublishAndPush(ref t_items, ref t_count, node, LocalCapacity);
    }

    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private sealed class Padded
    {
        [FieldOffset(64)]
        public Node Node = null!;
    }
}
