using System.Runtime.ExceptionServices;

namespace EventLoop;

/// <summary>
/// A loop running on a thread of its own, and the handle other threads use to give it work: asyncio's loop in a
/// thread with <c>run_coroutine_threadsafe</c>, Nito.AsyncEx's <c>AsyncContextThread</c>, Tokio's <c>Handle</c>.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Start"/> creates a loop of the policy on a new background thread and returns once it runs.
/// <c>RunAsync</c> submits work from any thread, including the loop thread itself: the work runs on the loop
/// thread, in the order each thread submitted it, and the returned task carries its result, its exception (as
/// itself, not wrapped) or its cancellation back. On the loop thread the work is queued behind what is already ready,
/// never run inline; await the task there (blocking on it would deadlock, which the loop detects and throws).
/// </para>
/// <para>
/// A cancellation token cancels the work only until it starts: a submission whose token is cancelled before the
/// loop picks it up never runs and its task is cancelled. Once started, the work sees the token only if it takes
/// one (the <c>Func&lt;CancellationToken, ...&gt;</c> overloads). An <see cref="OperationCanceledException"/> thrown by
/// the work cancels its task, as it does an async method's.
/// </para>
/// <para>
/// <see cref="DisposeAsync"/> stops the loop gracefully: submissions are refused from then on (their tasks fail with an
/// <see cref="ObjectDisposedException"/> naming this LoopThread); the loop's <see cref="Loop.ShutdownToken"/> is
/// cancelled, so are its waits (sleeps, queue gets, accepts, reads), and what that makes ready runs; every
/// connection, listener and handle is closed; then the thread ends. A submission racing the dispose either runs or
/// fails with that exception: none is lost. Work that was still running when the loop closed (it awaited something
/// outside the loop and ignored the shutdown) fails with an <see cref="OperationCanceledException"/> that says so.
/// </para>
/// </remarks>
/// <example><code>
/// await using LoopThread loopThread = LoopThread.Start(new LibuvLoopPolicy());
/// int answer = await loopThread.RunAsync(async () =&gt;
/// {
///     await Loop.Current.DelayAsync(TimeSpan.FromMilliseconds(10)); // on the loop thread
///     return 42;
/// });
/// </code></example>
public sealed partial class LoopThread : IAsyncDisposable
{
    private const int Running = 0;
    private const int Stopping = 1; // disposed, or the loop began shutting down: submissions are refused
    private const int Ended = 2;    // the thread has left the loop

    private readonly string _name;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private readonly TaskCompletionSource _stop = new(); // main's task: completing it lets the loop shut down
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _suspendedLock = new();
    private Loop? _loop;
    private ExceptionDispatchInfo? _startError;
    private volatile int _state;
    private Task? _disposeTask;
    private HashSet<ISuspendedWork>? _suspended; // started work that awaits something; failed if the loop closes under it

    private volatile bool _disposeCalled;

    private LoopThread(string name)
    {
        _name = name;
        _thread = new Thread(static s => ((StartArguments)s!).Run()) { IsBackground = true, Name = name };
    }

    /// <summary>
    /// Starts a loop of <paramref name="policy"/> (default <see cref="EventLoopPolicy.Current"/>) on a new background
    /// thread and returns once the loop runs.
    /// </summary>
    /// <param name="policy">The loop policy; null for <see cref="EventLoopPolicy.Current"/>.</param>
    /// <param name="options">The loop's options; null for the defaults.</param>
    /// <param name="name">The thread's name (and this LoopThread's, in messages); default <c>EventLoop &lt;policy&gt; loop</c>.</param>
    /// <exception cref="DllNotFoundException">The libuv policy was asked for and libuv is not installed.</exception>
    public static LoopThread Start(LoopPolicy? policy = null, LoopOptions? options = null, string? name = null)
    {
        policy ??= EventLoopPolicy.Current;
        name ??= $"EventLoop {policy.Name} loop";
        var loopThread = new LoopThread(name);
        loopThread._thread.Start(new StartArguments(loopThread, policy, options));
        loopThread._started.Wait(); // not disposed: the thread sets it once more on its way out
        if (loopThread._startError is { } error)
        {
            loopThread._thread.Join();
            error.Throw();
        }

        return loopThread;
    }

    /// <summary>The loop this thread runs. Its loop-affine members may be used only on the loop thread (inside <c>RunAsync</c> work).</summary>
    public Loop Loop => _loop!;

    /// <summary>The name given to <see cref="Start"/> (also the thread's name).</summary>
    public string Name => _name;

    /// <summary>
    /// Completes when the thread has left its loop (closed, every handle freed): after <see cref="DisposeAsync"/>, or when
    /// the loop stopped on its own (<see cref="Loop.Stop"/>), in which case it fails with the loop's exception.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>
    /// Stops the loop gracefully (see the remarks on <see cref="LoopThread"/>) and completes once the loop has closed and
    /// the thread has ended. Safe from any thread, and idempotent: every call returns the same stop.
    /// </summary>
    /// <remarks>
    /// On the loop thread itself the loop cannot close while the caller is still running on it, so there this only
    /// begins the stop and returns a completed task at once: submissions are refused from then on, and the loop shuts
    /// down (cancelling what runs on it, the caller's own work included) as soon as the current callback returns.
    /// Await <see cref="Completion"/> from another thread to know when it has ended.
    /// </remarks>
    public ValueTask DisposeAsync()
    {
        _disposeCalled = true;
        if (Interlocked.CompareExchange(ref _state, Stopping, Running) == Running)
        {
            // main's task completes: the loop stops after the callback that is running (Loop.Stop is thread-safe).
            _stop.TrySetResult();
        }

        if (_loop!.IsOnLoopThread && _state != Ended)
        {
            return default; // cannot wait for our own loop to close: it closes after this callback returns
        }

        lock (_suspendedLock)
        {
            // On the thread pool, never inline here: the thread's last act was to complete Completion, so the join
            // returns at once. A loop that ended with an exception (stopped on its own) leaves it in Completion;
            // disposing does not throw it.
            _disposeTask ??= _completion.Task.ContinueWith(
                static (ended, thread) =>
                {
                    _ = ended.Exception; // observed
                    ((Thread)thread!).Join();
                },
                _thread, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            return new ValueTask(_disposeTask);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"LoopThread '{_name}' ({_loop?.PolicyName} loop, {StateName})";

    private string StateName => _state switch { Running => "running", Stopping => "stopping", _ => "ended" };

    /// <summary>The thread's body: create the loop, run it until disposed, fail what the closed loop left unfinished.</summary>
    private void RunThread(LoopPolicy policy, LoopOptions? options)
    {
        Exception? error = null;
        try
        {
            Loop loop;
            try
            {
                loop = policy.CreateLoop(options);
            }
            catch (Exception ex)
            {
                _startError = ExceptionDispatchInfo.Capture(ex); // Start rethrows it; nobody ever sees this LoopThread
                return;
            }

            _loop = loop;
            using (loop)
            {
                loop.RunUntilComplete(() =>
                {
                    // From the first step of the loop's shutdown (however it came), new submissions are refused: work
                    // accepted before still runs, and nothing is queued that the closing loop might not run.
                    loop.ShutdownToken.UnsafeRegister(static s => ((LoopThread)s!).BeginStopping(), this);
                    _started.Set();
                    return _stop.Task;
                });
            }
        }
        catch (Exception ex)
        {
            error = ex;
        }
        finally
        {
            _state = Ended;
            _started.Set(); // in case the loop failed before main ran
            FailSuspendedWork();
            if (error is null)
            {
                _completion.TrySetResult();
            }
            else
            {
                _completion.TrySetException(error);
            }
        }
    }

    private void BeginStopping() => Interlocked.CompareExchange(ref _state, Stopping, Running);

    /// <summary>The exception a refused submission fails with.</summary>
    private ObjectDisposedException CreateRefusedException() => new(
        $"LoopThread '{_name}'",
        _disposeCalled
            ? $"The LoopThread '{_name}' is disposed (or disposing): it takes no more work."
            : $"The LoopThread '{_name}' is stopping: its loop was stopped or is shutting down, and it takes no more work.");

    private sealed class StartArguments(LoopThread owner, LoopPolicy policy, LoopOptions? options)
    {
        public void Run() => owner.RunThread(policy, options);
    }
}
