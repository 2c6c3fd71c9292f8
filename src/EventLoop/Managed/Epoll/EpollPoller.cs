using System.Runtime.InteropServices;

namespace EventLoop.Managed.Epoll;

/// <summary>Something registered with the <see cref="EpollPoller"/>: told on the loop thread which events its descriptor has.</summary>
internal interface IEpollHandler
{
    /// <summary>Handles <paramref name="events"/> (<see cref="Linux.EpollIn"/> and friends). Loop thread; may throw (reported).</summary>
    void OnEvents(uint events);
}

/// <summary>
/// The managed loop's own poll step on Linux, as asyncio's selector loop and libuv have: one epoll descriptor the
/// loop thread waits on (with the timeout the timers give it), and an eventfd other threads write to wake it.
/// Sockets register a handler; their readiness is handled inline on the loop thread, so a read resumes the
/// application in the same turn, with no hop through the thread pool. Loop thread only, but for <see cref="Wake"/>.
/// </summary>
internal sealed unsafe class EpollPoller : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeToken = ulong.MaxValue;

    private readonly Loop _loop;
    private readonly int _epfd;
    private readonly int _eventFd;
    private readonly byte* _events;
    private readonly int _eventSize;
    private Slot[] _slots = new Slot[64];
    private int _slotCount;
    private readonly Stack<int> _freeSlots = new();
    private bool _disposed;
    private int _closing; // set before the descriptors close; wakers check it (see Wake)
    private int _wakers;  // threads inside Wake right now

    private struct Slot
    {
        public IEpollHandler? Handler;
        public uint Generation;
    }

    public EpollPoller(Loop loop)
    {
        _loop = loop;
        _epfd = Linux.EpollCreate();
        if (_epfd < 0)
        {
            Linux.Throw(_epfd, "epoll_create1");
        }

        _eventFd = Linux.EventFd();
        if (_eventFd < 0)
        {
            Linux.Close(_epfd);
            Linux.Throw(_eventFd, "eventfd");
        }

        int status = Linux.EpollControl(_epfd, Linux.EpollCtlAdd, _eventFd, Linux.EpollIn, WakeToken);
        if (status < 0)
        {
            Linux.Close(_eventFd);
            Linux.Close(_epfd);
            Linux.Throw(status, "epoll_ctl(eventfd)");
        }

        _eventSize = Linux.PackedEpollEvent ? sizeof(Linux.EpollEventPacked) : sizeof(Linux.EpollEventAligned);
        _events = (byte*)NativeMemory.Alloc((nuint)(_eventSize * MaxEvents));
    }

    /// <summary>The epoll descriptor: readable when events wait (the blocking-wait check asks).</summary>
    public int Descriptor => _epfd;

    /// <summary>Descriptors registered now.</summary>
    public int Registered => _slotCount - _freeSlots.Count;

    /// <summary>Watches <paramref name="fd"/> for <paramref name="events"/>; returns the registration's token (for <see cref="Modify"/> and <see cref="Remove"/>).</summary>
    /// <returns>The token, or a negated errno.</returns>
    public long Add(int fd, uint events, IEpollHandler handler)
    {
        int index;
        if (!_freeSlots.TryPop(out index))
        {
            if (_slotCount == _slots.Length)
            {
                Array.Resize(ref _slots, _slots.Length * 2);
            }

            index = _slotCount++;
            _slots[index].Generation = 1; // generations start at 1, so no token is 0 (0 means "not registered")
        }

        ref Slot slot = ref _slots[index];
        slot.Handler = handler;
        ulong data = ((ulong)slot.Generation << 32) | (uint)index;
        int status = Linux.EpollControl(_epfd, Linux.EpollCtlAdd, fd, events, data);
        if (status < 0)
        {
            Release(index);
            return status;
        }

        return (long)data;
    }

    /// <summary>Changes what a registration watches for.</summary>
    public int Modify(long token, int fd, uint events) => Linux.EpollControl(_epfd, Linux.EpollCtlMod, fd, events, (ulong)token);

    /// <summary>
    /// Stops watching (call before closing the descriptor). Events already fetched for it in this turn are dropped:
    /// the slot's generation moves on.
    /// </summary>
    public void Remove(long token, int fd)
    {
        if (_disposed)
        {
            return;
        }

        Linux.EpollControl(_epfd, Linux.EpollCtlDel, fd, 0, 0); // an error here means it is gone already
        Release((int)(uint)token);
    }

    private void Release(int index)
    {
        ref Slot slot = ref _slots[index];
        slot.Handler = null;
        slot.Generation = slot.Generation == uint.MaxValue ? 1 : slot.Generation + 1;
        _freeSlots.Push(index);
    }

    /// <summary>Wakes the loop thread from <see cref="Wait"/>. Thread-safe; the caller coalesces (one per sleep).</summary>
    /// <remarks>
    /// A waker may run late, after the loop closed: it must never write to a closed descriptor (its number may
    /// already belong to another file). Wakers announce themselves and then check the closing flag; Dispose sets
    /// the flag and then waits for announced wakers, both through full fences, so one of them sees the other.
    /// </remarks>
    public void Wake()
    {
        Interlocked.Increment(ref _wakers);
        if (Volatile.Read(ref _closing) == 0)
        {
            Linux.Signal(_eventFd);
        }

        Interlocked.Decrement(ref _wakers);
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMilliseconds"/> (0: just look, -1: until something happens) and runs the
    /// handlers of what became ready, inline. Returns how many I/O events it handled (wake-ups not counted).
    /// </summary>
    public int Wait(int timeoutMilliseconds) => Dispatch(Poll(timeoutMilliseconds));

    /// <summary>The wait alone (<c>epoll_wait</c>): returns how many events to <see cref="Dispatch"/>.</summary>
    public int Poll(int timeoutMilliseconds)
    {
        int count = Linux.EpollWait(_epfd, _events, MaxEvents, timeoutMilliseconds);
        return count < 0 ? 0 : count; // EINTR: the loop simply comes round again
    }

    /// <summary>Runs the handlers of the <paramref name="count"/> events the last <see cref="Poll"/> fetched. Returns the I/O events handled.</summary>
    public int Dispatch(int count)
    {
        int handled = 0;
        for (int i = 0; i < count; i++)
        {
            byte* entry = _events + (i * _eventSize);
            uint events = *(uint*)entry;
            ulong data = Linux.PackedEpollEvent ? ((Linux.EpollEventPacked*)entry)->Data : ((Linux.EpollEventAligned*)entry)->Data;
            if (data == WakeToken)
            {
                Linux.Drain(_eventFd);
                continue;
            }

            int index = (int)(uint)data;
            if ((uint)index >= (uint)_slotCount)
            {
                continue;
            }

            ref Slot slot = ref _slots[index];
            if (slot.Handler is not { } handler || slot.Generation != (uint)(data >> 32))
            {
                continue; // removed earlier in this turn
            }

            handled++;
            try
            {
                handler.OnEvents(events);
            }
            catch (Exception ex)
            {
                _loop.ReportException("Exception in an I/O callback", ex, handler);
            }
        }

        return handled;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Interlocked.Exchange(ref _closing, 1);
        var spinner = default(SpinWait);
        while (Volatile.Read(ref _wakers) != 0)
        {
            spinner.SpinOnce();
        }

        Linux.Close(_eventFd);
        Linux.Close(_epfd);
        NativeMemory.Free(_events);
    }
}
