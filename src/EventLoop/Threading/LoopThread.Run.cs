using System.Runtime.CompilerServices;

namespace EventLoop;

// Submitting work from any thread: the RunAsync overloads and the work item behind each submission.
public sealed partial class LoopThread
{
    /// <summary>Runs <paramref name="work"/> on the loop thread. Safe from any thread.</summary>
    /// <param name="work">The work.</param>
    /// <param name="cancellationToken">Cancels the work if it has not started yet.</param>
    /// <returns>
    /// A task that completes when the work has run, fails with its exception, is cancelled, or fails with an
    /// <see cref="ObjectDisposedException"/> if this LoopThread no longer takes work.
    /// </returns>
    public Task RunAsync(Action work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<VoidResult>(work, WorkKind.Action, cancellationToken);
    }

    /// <summary>Runs <paramref name="work"/> on the loop thread and returns its result. Safe from any thread.</summary>
    /// <inheritdoc cref="RunAsync(Action, CancellationToken)"/>
    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<T>(work, WorkKind.Function, cancellationToken);
    }

    /// <summary>
    /// Starts <paramref name="work"/> on the loop thread; the returned task completes when the task the work returns
    /// does (its continuations run on the loop too, unless it leaves with <c>ConfigureAwait(false)</c>). Safe from any thread.
    /// </summary>
    /// <inheritdoc cref="RunAsync(Action, CancellationToken)"/>
    public Task RunAsync(Func<Task> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<VoidResult>(work, WorkKind.Async, cancellationToken);
    }

    /// <summary>Starts <paramref name="work"/> on the loop thread and returns its result. Safe from any thread.</summary>
    /// <inheritdoc cref="RunAsync(Func{Task}, CancellationToken)"/>
    public Task<T> RunAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<T>(work, WorkKind.AsyncResult, cancellationToken);
    }

    /// <summary>
    /// Starts <paramref name="work"/> on the loop thread, passing it <paramref name="cancellationToken"/>, which also
    /// cancels the work if it has not started yet. Safe from any thread.
    /// </summary>
    /// <inheritdoc cref="RunAsync(Func{Task}, CancellationToken)"/>
    public Task RunAsync(Func<CancellationToken, Task> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<VoidResult>(work, WorkKind.AsyncWithToken, cancellationToken);
    }

    /// <summary>
    /// Starts <paramref name="work"/> on the loop thread, passing it <paramref name="cancellationToken"/>, and returns its
    /// result. Safe from any thread.
    /// </summary>
    /// <inheritdoc cref="RunAsync(Func{Task}, CancellationToken)"/>
    public Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Submit<T>(work, WorkKind.AsyncResultWithToken, cancellationToken);
    }

    /// <summary>
    /// One submission: a work item (which is also the source of the returned task) and the task; the post that carries
    /// it to the loop and the inject queue's node are pooled, so nothing else is allocated unless the token can be
    /// cancelled (a registration) or async work suspends (its continuation).
    /// </summary>
    private Task<T> Submit<T>(object work, WorkKind kind, CancellationToken cancellationToken)
    {
        if (_state != Running)
        {
            return Task.FromException<T>(CreateRefusedException());
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        var item = new Work<T>(this, work, kind, cancellationToken);
        if (cancellationToken.CanBeCanceled && !item.WatchCancellation())
        {
            return item.Task; // cancelled while being submitted
        }

        BeforePostForTests?.Invoke();
        try
        {
            _loop!.CallSoonThreadSafe(Work<T>.RunOnLoop, item);
        }
        catch (InvalidOperationException)
        {
            item.Refuse(); // the loop closed between the check above and the post: the post was refused, never run
        }

        return item.Task;
    }

    /// <summary>
    /// Runs between a submission's check that the thread still takes work and its post: lets a test close the loop in
    /// that window, which a real race opens only for nanoseconds.
    /// </summary>
    internal Action? BeforePostForTests { get; set; }

    // ---------------------------------------------------------------- started work that awaits something

    private void AddSuspended(ISuspendedWork work)
    {
        lock (_suspendedLock)
        {
            (_suspended ??= new HashSet<ISuspendedWork>(ReferenceEqualityComparer.Instance)).Add(work);
        }
    }

    private void RemoveSuspended(ISuspendedWork work)
    {
        lock (_suspendedLock)
        {
            _suspended?.Remove(work);
        }
    }

    /// <summary>
    /// After the loop closed: work that started and still waits can never continue on the loop (its continuation would
    /// be refused), so its task fails here, saying so, rather than never completing.
    /// </summary>
    private void FailSuspendedWork()
    {
        ISuspendedWork[] left;
        lock (_suspendedLock)
        {
            if (_suspended is null || _suspended.Count == 0)
            {
                return;
            }

            left = [.. _suspended];
            _suspended.Clear();
        }

        foreach (ISuspendedWork work in left)
        {
            work.FailClosed(new OperationCanceledException(
                $"The LoopThread '{_name}' stopped while this work was still running: its loop shut down (cancelling " +
                "Loop.ShutdownToken and the loop's waits) and closed before the work finished, so the work cannot continue."));
        }
    }

    private interface ISuspendedWork
    {
        void FailClosed(Exception exception);
    }

    private enum WorkKind : byte
    {
        Action,
        Function,
        Async,
        AsyncWithToken,
        AsyncResult,
        AsyncResultWithToken,
    }

    /// <summary>The result type of work that returns nothing.</summary>
    private readonly struct VoidResult;

    /// <summary>
    /// A submission, and the source of its task. Continuations of the task run asynchronously, so a submitter's code
    /// after its await never runs inline on the loop thread that completed it.
    /// </summary>
    private sealed class Work<T> : TaskCompletionSource<T>, ISuspendedWork
    {
        internal static readonly Action<Work<T>> RunOnLoop = static work => work.Run();

        private const int Queued = 0, Started = 1, Cancelled = 2;

        private readonly LoopThread _owner;
        private readonly CancellationToken _token;
        private readonly WorkKind _kind;
        private object? _work;
        private int _phase;
        private CancellationTokenRegistration _registration;
        private Task? _awaited;

        public Work(LoopThread owner, object work, WorkKind kind, CancellationToken token)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _owner = owner;
            _work = work;
            _kind = kind;
            _token = token;
        }

        /// <summary>Cancels the task if the token fires before the work starts. False if it already has.</summary>
        public bool WatchCancellation()
        {
            _registration = _token.UnsafeRegister(static s => ((Work<T>)s!).CancelBeforeStart(), this);
            return !Task.IsCompleted;
        }

        private void CancelBeforeStart()
        {
            if (Interlocked.CompareExchange(ref _phase, Cancelled, Queued) == Queued)
            {
                TrySetCanceled(_token);
            }
        }

        /// <summary>The loop refused the post: the work never runs.</summary>
        public void Refuse()
        {
            _registration.Dispose();
            _work = null;
            if (Interlocked.CompareExchange(ref _phase, Cancelled, Queued) == Queued)
            {
                TrySetException(_owner.CreateRefusedException());
            }
        }

        /// <summary>On the loop thread.</summary>
        private void Run()
        {
            object? work = _work;
            _work = null;
            if (Interlocked.CompareExchange(ref _phase, Started, Queued) != Queued)
            {
                return; // cancelled before it started
            }

            if (_token.CanBeCanceled)
            {
                _registration.Unregister(); // from now on the token is the work's business
            }

            try
            {
                switch (_kind)
                {
                    case WorkKind.Action:
                        Unsafe.As<Action>(work!)();
                        TrySetResult(default!);
                        break;
                    case WorkKind.Function:
                        TrySetResult(Unsafe.As<Func<T>>(work!)());
                        break;
                    case WorkKind.Async:
                        Await(Unsafe.As<Func<Task>>(work!)());
                        break;
                    case WorkKind.AsyncWithToken:
                        Await(Unsafe.As<Func<CancellationToken, Task>>(work!)(_token));
                        break;
                    case WorkKind.AsyncResult:
                        Await(Unsafe.As<Func<Task<T>>>(work!)());
                        break;
                    default:
                        Await(Unsafe.As<Func<CancellationToken, Task<T>>>(work!)(_token));
                        break;
                }
            }
            catch (Exception ex)
            {
                SetFailure(ex);
            }
        }

        private void Await(Task? task)
        {
            if (task is null)
            {
                TrySetException(new InvalidOperationException($"The work given to LoopThread '{_owner._name}' returned null instead of a Task."));
                return;
            }

            if (task.IsCompleted)
            {
                CompleteFrom(task);
                return;
            }

            _awaited = task;
            _owner.AddSuspended(this);
            // Not ConfigureAwait(false): with the loop's context current, the runtime would not run that continuation
            // inline (a SynchronizationContext makes a thread "not a valid location for inlining") but queue it to the
            // thread pool, a hop per submission. Capturing the loop's context runs it inline when the work's task
            // completes on the loop, as it usually does, and posts it to the loop otherwise.
            task.GetAwaiter().UnsafeOnCompleted(OnAwaitedCompleted);
        }

        private void OnAwaitedCompleted()
        {
            _owner.RemoveSuspended(this);
            Task task = _awaited!;
            _awaited = null;
            CompleteFrom(task);
        }

        private void CompleteFrom(Task task)
        {
            if (task.IsCompletedSuccessfully)
            {
                TrySetResult(_kind is WorkKind.AsyncResult or WorkKind.AsyncResultWithToken ? Unsafe.As<Task<T>>(task).Result : default!);
            }
            else if (task.IsCanceled)
            {
                TrySetCanceled(TokenOf(task));
            }
            else
            {
                TrySetException(task.Exception!.InnerExceptions); // as themselves: await rethrows the first
            }
        }

        private static CancellationToken TokenOf(Task cancelled)
        {
            try
            {
                cancelled.GetAwaiter().GetResult();
            }
            catch (OperationCanceledException oce)
            {
                return oce.CancellationToken;
            }

            return default;
        }

        private void SetFailure(Exception ex)
        {
            if (ex is OperationCanceledException oce)
            {
                TrySetCanceled(oce.CancellationToken); // as an async method's task would be
            }
            else
            {
                TrySetException(ex);
            }
        }

        void ISuspendedWork.FailClosed(Exception exception) => TrySetException(exception);
    }
}
