namespace EventLoop.Internal;

/// <summary>
/// A binary min-heap of timers ordered by deadline, then by a sequence number so timers with equal
/// deadlines fire in the order they were scheduled (libuv <c>src/timer.c</c> does the same).
/// Cancelled timers stay in the heap until they surface or until more than half the heap is cancelled,
/// when it is compacted (asyncio's rule), so cancelling is O(1).
/// Touched only by the loop thread. Mutable struct! Don't make this readonly.
/// </summary>
internal struct TimerHeap
{
    internal struct Entry
    {
        public long Due;
        public long Sequence;
        public CallbackItem Item;
        public int Version;
    }

    private Entry[] _entries;
    private int _count;
    private long _nextSequence;
    private int _cancelled;

    public TimerHeap(int capacity)
    {
        _entries = new Entry[capacity];
    }

    public readonly int Count => _count;

    /// <summary>Timers that will still fire: <see cref="Count"/> less the cancelled ones awaiting removal.</summary>
    public readonly int LiveCount => _count - _cancelled;

    /// <summary>The earliest deadline, or <see cref="long.MaxValue"/> when there is no timer.</summary>
    public readonly long NextDue => _count == 0 ? long.MaxValue : _entries[0].Due;

    public void Add(long due, CallbackItem item, int version)
    {
        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2);
        }

        var entry = new Entry { Due = due, Sequence = _nextSequence++, Item = item, Version = version };
        SiftUp(_count++, entry);
    }

    /// <summary>Removes the earliest timer if it is due at or before <paramref name="now"/>.</summary>
    public bool TryPopDue(long now, out Entry entry)
    {
        if (_count == 0 || _entries[0].Due > now)
        {
            entry = default;
            return false;
        }

        entry = _entries[0];
        RemoveRoot();
        return true;
    }

    /// <summary>Counts a cancellation; compacts when cancelled timers are the majority.</summary>
    public void NoteCancelled()
    {
        _cancelled++;
        if (_cancelled > 100 && _cancelled * 2 > _count)
        {
            Compact();
        }
    }

    /// <summary>A popped timer that was cancelled no longer counts.</summary>
    public void NoteCancelledRemoved()
    {
        if (_cancelled > 0)
        {
            _cancelled--;
        }
    }

    /// <summary>Removes every timer, retiring their items. Used when the loop shuts down.</summary>
    public void Clear()
    {
        for (int i = 0; i < _count; i++)
        {
            _entries[i].Item.Discard();
            _entries[i] = default;
        }

        _count = 0;
        _cancelled = 0;
    }

    private void Compact()
    {
        int kept = 0;
        for (int i = 0; i < _count; i++)
        {
            Entry e = _entries[i];
            if (e.Item.IsPending(e.Version))
            {
                _entries[kept++] = e;
            }
            else
            {
                e.Item.Discard();
            }
        }

        Array.Clear(_entries, kept, _count - kept);
        _count = kept;
        _cancelled = 0;
        for (int i = (_count / 2) - 1; i >= 0; i--)
        {
            SiftDown(i, _entries[i]);
        }
    }

    private void RemoveRoot()
    {
        int last = --_count;
        Entry moved = _entries[last];
        _entries[last] = default;
        if (last > 0)
        {
            SiftDown(0, moved);
        }
    }

    private static bool Less(in Entry a, in Entry b) => a.Due < b.Due || (a.Due == b.Due && a.Sequence < b.Sequence);

    private readonly void SiftUp(int index, Entry entry)
    {
        Entry[] entries = _entries;
        while (index > 0)
        {
            int parent = (index - 1) >> 1;
            if (!Less(entry, entries[parent]))
            {
                break;
            }

            entries[index] = entries[parent];
            index = parent;
        }

        entries[index] = entry;
    }

    private readonly void SiftDown(int index, Entry entry)
    {
        Entry[] entries = _entries;
        int count = _count;
        while (true)
        {
            int child = (index * 2) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && Less(entries[child + 1], entries[child]))
            {
                child++;
            }

            if (!Less(entries[child], entry))
            {
                break;
            }

            entries[index] = entries[child];
            index = child;
        }

        entries[index] = entry;
    }
}
