using System.Runtime.CompilerServices;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A FIFO queue for producers and consumers on one loop, asyncio's <c>Queue</c>: optionally bounded,
/// with <see cref="TaskDone"/>/<see cref="JoinAsync"/> to wait until every item was processed.
/// </summary>
/// <remarks>
/// Loop-affine and lock-free: every member must be called on the loop thread (an
/// <see cref="InvalidOperationException"/> says so otherwise). A hand-off between a waiting consumer and a
/// producer allocates nothing. Waiters are served in FIFO order; a cancelled <see cref="GetAsync"/> consumes
/// no item and a cancelled <see cref="PutAsync"/> adds none. Waits still pending when the loop shuts down
/// complete with <see cref="OperationCanceledException"/>.
/// </remarks>
public sealed class AsyncQueue<T>
{
    private readonly Loop _loop;
    private readonly int _capacity;
    private readonly Queue<T> _items = new();
    private readonly WaiterQueue<T> _getters;
    private readonly WaiterQueue<T> _putters;
    private int _unfinished;
    private JoinWaiter? _join;

    /// <summary>Creates a queue on <paramref name="loop"/> (default: the current loop).</summary>
    /// <param name="capacity">The most items it holds; 0 (the default) means unbounded.</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is negative.</exception>
    public AsyncQueue(int capacity = 0, Loop? loop = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _loop = loop ?? Loop.Current;
        _capacity = capacity;
        _getters = new WaiterQueue<T>(_loop);
        _putters = new WaiterQueue<T>(_loop);
    }

    /// <summary>The bound, or 0 when unbounded.</summary>
    public int Capacity => _capacity;

    /// <summary>Items in the queue now.</summary>
    public int Count => _items.Count;

    /// <summary>True when the queue holds no item.</summary>
    public bool IsEmpty => _items.Count == 0;

    /// <summary>True when a bounded queue holds <see cref="Capacity"/> items.</summary>
    public bool IsFull => _capacity > 0 && _items.Count >= _capacity;

    /// <summary>Items put and not yet marked done with <see cref="TaskDone"/>.</summary>
    public int UnfinishedTasks => _unfinished;

    /// <summary>Adds <paramref name="item"/>, waiting while a bounded queue is full.</summary>
    public ValueTask PutAsync(T item, CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (TryPutCore(item))
        {
            return default;
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return _putters.Enqueue(cancellationToken, item).AsNonGenericValueTask();
    }

    /// <summary>Adds <paramref name="item"/> if there is room (or a consumer waiting); never waits.</summary>
    public bool TryPut(T item)
    {
        _loop.CheckLoopThread();
        return TryPutCore(item);
    }

    /// <summary>Removes and returns the oldest item, waiting while the queue is empty.</summary>
    public ValueTask<T> GetAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (TryGetCore(out T item))
        {
            return new ValueTask<T>(item);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        return _getters.Enqueue(cancellationToken).AsValueTask();
    }

    /// <summary>Removes the oldest item if there is one; never waits.</summary>
    public bool TryGet(out T item)
    {
        _loop.CheckLoopThread();
        return TryGetCore(out item);
    }

    /// <summary>Marks one item taken from the queue as processed (asyncio's <c>task_done</c>).</summary>
    /// <exception cref="InvalidOperationException">Called more times than items were put.</exception>
    public void TaskDone()
    {
        _loop.CheckLoopThread();
        if (_unfinished == 0)
        {
            throw new InvalidOperationException("TaskDone() was called more times than there were items put in the queue.");
        }

        if (--_unfinished == 0 && _join is { } join)
        {
            _join = null;
            join.Finish(null);
        }
    }

    /// <summary>Completes when every item put so far has been marked done with <see cref="TaskDone"/>.</summary>
    public Task JoinAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (_unfinished == 0)
        {
            return Task.CompletedTask;
        }

        _join ??= new JoinWaiter(_loop, this);
        return cancellationToken.CanBeCanceled ? _join.Task.WaitAsync(cancellationToken) : _join.Task;
    }

    /// <summary>Reads items as they come until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async IAsyncEnumerable<T> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            yield return await GetAsync(cancellationToken).ConfigureAwait(true);
        }
    }

    private bool TryPutCore(T item)
    {
        // A waiting consumer takes the item directly (the queue is empty whenever consumers wait).
        if (_getters.TryDequeue(out LoopWaiter<T> getter))
        {
            _unfinished++;
            getter.SetResult(item);
            return true;
        }

        if (_capacity > 0 && _items.Count >= _capacity)
        {
            return false;
        }

        _items.Enqueue(item);
        _unfinished++;
        return true;
    }

    private bool TryGetCore(out T item)
    {
        if (!_items.TryDequeue(out item!))
        {
            // An unbounded or zero-length wait: a waiting producer may still hand over directly.
            if (_putters.TryDequeue(out LoopWaiter<T> direct))
            {
                item = direct.Value;
                _unfinished++;
                direct.SetResult(default!);
                return true;
            }

            return false;
        }

        // Room was made: the oldest waiting producer's item goes in.
        if (_putters.TryDequeue(out LoopWaiter<T> putter))
        {
            _items.Enqueue(putter.Value);
            _unfinished++;
            putter.SetResult(default!);
        }

        return true;
    }

    private sealed class JoinWaiter : ShutdownNode
    {
        private readonly Loop _loop;
        private readonly AsyncQueue<T> _queue;
        private readonly TaskCompletionSource _completion = new();

        public JoinWaiter(Loop loop, AsyncQueue<T> queue)
        {
            _loop = loop;
            _queue = queue;
            loop.RegisterShutdown(this);
        }

        public Task Task => _completion.Task;

        public void Finish(Exception? error)
        {
            _loop.UnregisterShutdown(this);
            if (error is null)
            {
                _completion.TrySetResult();
            }
            else
            {
                _completion.TrySetException(error);
            }
        }

        internal override void OnShutdown()
        {
            if (ReferenceEquals(_queue._join, this))
            {
                _queue._join = null;
            }

            _completion.TrySetCanceled(_loop.ShutdownToken);
        }
    }
}
