using System.Runtime.CompilerServices;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A FIFO queue for producers and consumers on one loop, asyncio's <c>Queue</c>: optionally bounded,
/// with <see cref="TaskDone"/>/<see cref="JoinAsync"/> to wait until every item was processed, and
/// <see cref="Complete"/> to say that no more items will come (asyncio 3.13's <c>shutdown</c>).
/// <see cref="AsyncLifoQueue{T}"/> and <see cref="AsyncPriorityQueue{T}"/> share all of it and change only the order.
/// </summary>
/// <remarks>
/// <para>
/// Loop-affine and lock-free: every member must be called on the loop thread (an
/// <see cref="InvalidOperationException"/> says so otherwise), except the <c>...ThreadSafe</c> ones, which other
/// threads use. A hand-off between a waiting consumer and a producer allocates nothing. Waiters are served in FIFO
/// order; a cancelled <see cref="GetAsync"/> consumes no item and a cancelled <see cref="PutAsync"/> adds none.
/// Waits still pending when the loop shuts down complete with <see cref="OperationCanceledException"/>.
/// </para>
/// <para>
/// Completion (asyncio's <c>shutdown(immediate=False)</c> is <c>Complete()</c>, <c>shutdown(immediate=True)</c> is
/// <c>Complete(immediate: true)</c>, <c>QueueShutDown</c> is <see cref="QueueCompletedException"/>):
/// </para>
/// <list type="bullet">
/// <item>Putting after <see cref="Complete"/> fails: <see cref="PutAsync"/> with <see cref="QueueCompletedException"/>,
/// <see cref="TryPut"/> returns false. Producers still waiting for room fail the same way; their items are not added.</item>
/// <item>Items already in the queue can still be taken. Once it is empty, <see cref="GetAsync"/> (pending or later)
/// throws <see cref="QueueCompletedException"/>, <see cref="TryGet"/> returns false (check <see cref="IsCompleted"/>
/// to tell "empty for now" from "empty for good"), and <see cref="ReadAllAsync"/> ends normally.</item>
/// <item>Completed with an error, <see cref="GetAsync"/> and <see cref="ReadAllAsync"/> throw a
/// <see cref="QueueCompletedException"/> whose <see cref="Exception.InnerException"/> is the error, once the queue is empty.</item>
/// <item><c>immediate: true</c> drops the items still queued (they count as done for <see cref="JoinAsync"/>) and
/// wakes every waiting consumer at once.</item>
/// </list>
/// </remarks>
public class AsyncQueue<T>
{
    private readonly Loop _loop;
    private readonly int _capacity;
    private readonly QueueStore<T> _items;
    private readonly WaiterQueue<T> _getters;
    private readonly WaiterQueue<T> _putters;
    private int _unfinished;
    private JoinWaiter? _join;
    private bool _completed;
    private Exception? _completionError;

    /// <summary>Creates a queue on <paramref name="loop"/> (default: the current loop).</summary>
    /// <param name="capacity">The most items it holds; 0 (the default) means unbounded.</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is negative.</exception>
    public AsyncQueue(int capacity = 0, Loop? loop = null)
        : this(capacity, loop, new FifoStore<T>())
    {
    }

    private protected AsyncQueue(int capacity, Loop? loop, QueueStore<T> store)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _loop = loop ?? Loop.Current;
        _capacity = capacity;
        _items = store;
        _getters = new WaiterQueue<T>(_loop) { Owner = this, Operation = "GetAsync" };
        _putters = new WaiterQueue<T>(_loop) { Owner = this, Operation = "PutAsync (queue full)" };
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

    /// <summary>True once <see cref="Complete"/> was called: nothing more can be put.</summary>
    public bool IsCompleted => _completed;

    /// <summary>Adds <paramref name="item"/>, waiting while a bounded queue is full.</summary>
    /// <exception cref="QueueCompletedException">The queue was completed (before or while waiting); the item was not added.</exception>
    public ValueTask PutAsync(T item, CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (_completed)
        {
            return ValueTask.FromException(PutAfterCompletion());
        }

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
    /// <returns>False when the queue is full or completed.</returns>
    public bool TryPut(T item)
    {
        _loop.CheckLoopThread();
        return !_completed && TryPutCore(item);
    }

    /// <summary>Removes and returns the next item (the oldest, for this FIFO queue), waiting while the queue is empty.</summary>
    /// <exception cref="QueueCompletedException">The queue was completed and is empty (before or while waiting).</exception>
    public ValueTask<T> GetAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        if (TryGetCore(out T item))
        {
            return new ValueTask<T>(item);
        }

        if (_completed)
        {
            return ValueTask.FromException<T>(GetAfterCompletion());
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        return _getters.Enqueue(cancellationToken).AsValueTask();
    }

    /// <summary>Removes the next item if there is one; never waits. False when empty, completed or not (see <see cref="IsCompleted"/>).</summary>
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

    /// <summary>
    /// Ends the queue: nothing more can be put, and consumers end once it is empty (asyncio's <c>shutdown</c>; see
    /// the type's remarks). Producers waiting for room fail with <see cref="QueueCompletedException"/>; so do
    /// consumers waiting on an empty queue. Calling it again changes nothing, except that <c>immediate: true</c>
    /// still drops what is left; the first call's <paramref name="error"/> is kept.
    /// </summary>
    /// <param name="error">When given, consumers that find the queue completed and empty get a
    /// <see cref="QueueCompletedException"/> with this as its inner exception, and <see cref="ReadAllAsync"/> throws it
    /// instead of ending normally.</param>
    /// <param name="immediate">Drops the items still queued (they count as done for <see cref="JoinAsync"/>), so
    /// every consumer ends at once: asyncio's <c>shutdown(immediate=True)</c>.</param>
    public void Complete(Exception? error = null, bool immediate = false)
    {
        _loop.CheckLoopThread();
        if (!_completed)
        {
            _completed = true;
            _completionError = error;
        }

        if (immediate && _items.Count > 0)
        {
            _unfinished -= _items.Count;
            _items.Clear();
            if (_unfinished == 0 && _join is { } join)
            {
                _join = null;
                join.Finish(null);
            }
        }

        // Producers wait only while the queue is full and consumers only while it is empty, so at most one of
        // these loops finds anyone.
        while (_putters.TryDequeue(out LoopWaiter<T> putter))
        {
            putter.SetException(PutAfterCompletion());
        }

        while (_getters.TryDequeue(out LoopWaiter<T> getter))
        {
            getter.SetException(GetAfterCompletion());
        }
    }

    /// <summary>
    /// Reads items as they come, until the queue is completed and empty (then the enumeration ends normally) or
    /// <paramref name="cancellationToken"/> is cancelled. A queue completed with an error throws
    /// <see cref="QueueCompletedException"/> (the error inside) once it is empty.
    /// </summary>
    public async IAsyncEnumerable<T> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            T item;
            try
            {
                item = await GetAsync(cancellationToken).ConfigureAwait(true);
            }
            catch (QueueCompletedException) when (_completed && _completionError is null)
            {
                break;
            }

            yield return item;
        }
    }

    /// <summary>
    /// Puts <paramref name="item"/> from any thread: the put runs on the loop (waiting there while a bounded queue
    /// is full), and the task completes, on the thread pool, once the item is in the queue, or fails as
    /// <see cref="PutAsync"/> would. Puts from one thread keep their order.
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop is closed (or closing and no longer takes posts).</exception>
    public Task PutThreadSafeAsync(T item, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _loop.CallSoonThreadSafe(
            static s => _ = s.Queue.PutOnLoopAsync(s.Item, s.Done, s.Token),
            (Queue: this, Item: item, Done: done, Token: cancellationToken));
        return done.Task;
    }

    /// <summary><see cref="Complete"/> from any thread: it runs on the loop, after what that thread posted before.</summary>
    /// <exception cref="InvalidOperationException">The loop is closed (or closing and no longer takes posts).</exception>
    public void CompleteThreadSafe(Exception? error = null, bool immediate = false) =>
        _loop.CallSoonThreadSafe(static s => s.Queue.Complete(s.Error, s.Immediate), (Queue: this, Error: error, Immediate: immediate));

    private async Task PutOnLoopAsync(T item, TaskCompletionSource done, CancellationToken cancellationToken)
    {
        try
        {
            await PutAsync(item, cancellationToken).ConfigureAwait(true);
            done.TrySetResult();
        }
        catch (OperationCanceledException ex)
        {
            done.TrySetCanceled(ex.CancellationToken);
        }
        catch (Exception ex)
        {
            done.TrySetException(ex);
        }
    }

    private static QueueCompletedException PutAfterCompletion() =>
        new("The queue was completed: no more items can be put in it.");

    private QueueCompletedException GetAfterCompletion() => _completionError is null
        ? new QueueCompletedException("The queue was completed and every item was taken: no more items will come.")
        : new QueueCompletedException("The queue was completed with an error and every item was taken: " + _completionError.Message, _completionError);

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

        _items.Add(item);
        _unfinished++;
        return true;
    }

    private bool TryGetCore(out T item)
    {
        if (!_items.TryTake(out item))
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
            _items.Add(putter.Value);
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
