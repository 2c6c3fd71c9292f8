namespace EventLoop;

/// <summary>
/// A cancel scope, trio's <c>CancelScope</c> (and asyncio's <c>timeout</c>): a <see cref="Token"/> that the code
/// run inside the scope passes down, cancelled by <see cref="Cancel"/>, by the <see cref="Deadline"/> on the loop
/// clock, or by the outer token it is linked to (unless <see cref="Shield"/>ed); and, when the body run by
/// <see cref="RunAsync(Func{CancellationToken, Task})"/> ends with the cancellation this scope caused, the scope
/// catches it and the code after the scope goes on (or, for a fail scope, gets a <see cref="TimeoutException"/>).
/// </summary>
/// <remarks>
/// <para>Shapes, from trio and asyncio to here (all on <see cref="CancelScopeLoopExtensions"/>, or <c>new CancelScope(...)</c>):</para>
/// <list type="bullet">
/// <item><c>with trio.move_on_after(d) as scope:</c> is <c>CancelScope scope = loop.MoveOnAfter(d, ct); await scope.RunAsync(async ct =&gt; ...);</c>,
/// then <see cref="CancelledCaught"/> says whether the deadline cut the body short; <c>loop.MoveOnAfterAsync(d, body, ct)</c>
/// does both and returns whether the body finished.</item>
/// <item><c>trio.fail_after(d)</c>, <c>asyncio.timeout(d)</c> and <c>asyncio.wait_for(aw, d)</c> are <c>loop.FailAfter(d, ct)</c> (or
/// <c>await loop.FailAfterAsync(d, body, ct)</c>): the same, but a body cut short by the deadline throws
/// <see cref="TimeoutException"/> (its inner exception is the <see cref="OperationCanceledException"/>) out of <c>RunAsync</c>.</item>
/// <item><c>move_on_at</c>/<c>fail_at</c>/<c>asyncio.timeout_at(when)</c> take a deadline on the loop clock (<see cref="Loop.Time"/>).</item>
/// <item>asyncio's <c>cm.reschedule(when)</c> and trio's <c>scope.deadline = when</c> are <see cref="Reschedule"/> and the
/// <see cref="Deadline"/> setter; <c>cm.expired()</c> is <see cref="DeadlineReached"/>.</item>
/// </list>
/// <para>
/// <b>Which scope catches an <see cref="OperationCanceledException"/></b>: the one that caused it, as in trio. When the
/// body ends with an <see cref="OperationCanceledException"/>, <see cref="RunAsync(Func{CancellationToken, Task})"/> catches it
/// if this scope was cancelled itself (<see cref="CancelCalled"/>: its deadline or <see cref="Cancel"/>) and the outer
/// token is not cancelled too (or the scope is shielded). Otherwise it rethrows it: a cancellation that came from
/// outside (the outer scope's deadline, the caller's token, the loop's shutdown) goes on to whoever caused it. So with
/// nested scopes whose deadlines both passed, the outermost cancelled scope catches. The exception is not matched by
/// its token: code below may rewrap the token (a linked source, an <see cref="HttpClient"/> timeout), so the state of
/// the scopes decides.
/// </para>
/// <para>
/// A body that finishes, even after the deadline passed (the work completed just before, or it ignored the token), is
/// not cut short: its result stands, <see cref="CancelCalled"/> is true and <see cref="CancelledCaught"/> false, and a
/// fail scope does not throw, as in trio and asyncio.
/// </para>
/// <para>
/// Nesting is explicit, as tokens are in .NET: an inner scope is linked to the token it is given (pass the outer
/// body's token), and there is no ambient "current scope". The deadline is a loop timer, so a fake clock
/// (<see cref="LoopOptions.Clock"/>) drives it. Members are loop-affine, except <see cref="Cancel"/>,
/// <see cref="Dispose"/> and <see cref="Token"/>, which are safe from any thread (the first two hop to the loop). A scope
/// runs its body once; <see cref="Dispose"/> a scope that never runs one, to remove its timer and its link to the outer token.
/// </para>
/// </remarks>
/// <example><code>
/// // trio: with move_on_after(5): ...
/// CancelScope scope = loop.MoveOnAfter(TimeSpan.FromSeconds(5), ct);
/// await scope.RunAsync(async token =&gt;
/// {
///     await DownloadAsync(url, token);
///     scope.Deadline += TimeSpan.FromSeconds(1); // more time for the next step
///     await ParseAsync(token);
/// });
/// if (scope.CancelledCaught) Console.WriteLine("gave up after the deadline");
///
/// // asyncio: async with asyncio.timeout(5): ...   (TimeoutException when the deadline cuts it short)
/// string page = await loop.FailAfterAsync(TimeSpan.FromSeconds(5), token =&gt; FetchAsync(url, token), ct);
/// </code></example>
public sealed class CancelScope : IDisposable
{
    /// <summary>The <see cref="Deadline"/> of a scope that has none (trio's <c>math.inf</c>).</summary>
    public static readonly TimeSpan NoDeadline = TimeSpan.MaxValue;

    private const int Created = 0, Running = 1, Closed = 2;

    private readonly Loop _loop;
    private readonly CancellationTokenSource _cts = new(); // no timer: nothing to dispose, and the token outlives the scope
    private readonly CancellationToken _outer;
    private readonly bool _throwsOnDeadline;
    private CancellationTokenRegistration _outerRegistration;
    private LoopHandle _timer;
    private TimeSpan _deadline = NoDeadline;
    private bool _shield;
    private bool _cancelCalled;
    private bool _deadlineReached;
    private bool _cancelledCaught;
    private int _state;

    /// <summary>
    /// Creates a scope with no deadline on <paramref name="loop"/> (default: the current loop); set
    /// <see cref="Deadline"/> to give it one, or use <see cref="CancelScopeLoopExtensions.MoveOnAfter"/>.
    /// </summary>
    /// <param name="cancellationToken">The outer token: cancelling it cancels this scope, unless shielded.</param>
    /// <param name="shield">Start shielded from <paramref name="cancellationToken"/> (trio's <c>shield=True</c>).</param>
    /// <param name="loop">The loop; defaults to <see cref="Loop.Current"/>.</param>
    public CancelScope(CancellationToken cancellationToken = default, bool shield = false, Loop? loop = null)
        : this(loop ?? Loop.Current, NoDeadline, throwsOnDeadline: false, cancellationToken, shield)
    {
    }

    internal CancelScope(Loop loop, TimeSpan deadline, bool throwsOnDeadline, CancellationToken cancellationToken, bool shield)
    {
        loop.CheckLoopThread();
        _loop = loop;
        _throwsOnDeadline = throwsOnDeadline;
        _shield = shield;
        _outer = cancellationToken;
        if (cancellationToken.CanBeCanceled)
        {
            // Runs at once if the outer token is already cancelled, so that is seen too.
            _outerRegistration = cancellationToken.UnsafeRegister(static s => ((CancelScope)s!).OnOuterCancelled(), this);
        }

        Deadline = deadline;
    }

    /// <summary>The loop whose clock and thread the scope uses.</summary>
    public Loop Loop => _loop;

    /// <summary>
    /// The token the body passes down: cancelled by <see cref="Cancel"/>, at the <see cref="Deadline"/>, or when the
    /// outer token is cancelled (unless <see cref="Shield"/>ed). Safe to read from any thread.
    /// </summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>
    /// When the scope cancels itself, on the loop clock (<see cref="Loop.Time"/>); <see cref="NoDeadline"/> for never.
    /// Setting it reschedules (earlier or later; a time already past cancels at the next loop iteration), as trio's
    /// <c>deadline</c> and asyncio's <c>reschedule</c> do. Once the scope was cancelled or has closed, it changes nothing.
    /// </summary>
    public TimeSpan Deadline
    {
        get => _deadline;
        set
        {
            _loop.CheckLoopThread();
            _deadline = value;
            _timer.Cancel();
            _timer = default;
            if (_state != Closed && !_cancelCalled && value != NoDeadline)
            {
                _timer = _loop.CallAt(value, static s => s.OnDeadline(), this);
            }
        }
    }

    /// <summary>
    /// True while the outer token's cancellation does not reach this scope (trio's <c>shield</c>). Turning it off
    /// while the outer token is cancelled cancels the scope then. Its own <see cref="Cancel"/> and deadline still work.
    /// </summary>
    public bool Shield
    {
        get => _shield;
        set
        {
            _loop.CheckLoopThread();
            _shield = value;
            if (!value && _outer.IsCancellationRequested && _state != Closed)
            {
                CancelToken();
            }
        }
    }

    /// <summary>True once <see cref="Cancel"/> was called or the deadline passed (trio's <c>cancel_called</c>); not set by the outer token.</summary>
    public bool CancelCalled => _cancelCalled;

    /// <summary>True if the deadline, rather than <see cref="Cancel"/>, cancelled the scope (asyncio's <c>expired()</c>).</summary>
    public bool DeadlineReached => _deadlineReached;

    /// <summary>
    /// True if the body ended with the cancellation this scope caused and the scope caught it (trio's
    /// <c>cancelled_caught</c>): the body was cut short. False if it finished, or if the cancellation came from outside.
    /// </summary>
    public bool CancelledCaught => _cancelledCaught;

    /// <summary>True for a fail scope (<see cref="CancelScopeLoopExtensions.FailAfter"/>): a body cut short by the deadline throws <see cref="TimeoutException"/>.</summary>
    public bool ThrowsOnDeadline => _throwsOnDeadline;

    /// <summary>Same as setting <see cref="Deadline"/> (asyncio's <c>Timeout.reschedule</c>).</summary>
    public void Reschedule(TimeSpan deadline) => Deadline = deadline;

    /// <summary>
    /// Cancels the scope now (trio's <c>cancel()</c>): its token is cancelled, and a body that ends because of it is
    /// caught by this scope and ends quietly, also for a fail scope (only the deadline makes a fail scope throw).
    /// From another thread it hops to the loop: the token is cancelled there, soon after.
    /// </summary>
    public void Cancel()
    {
        if (!_loop.IsOnLoopThread)
        {
            PostToLoop(static s => s.Cancel());
            return;
        }

        if (_cancelCalled || _state == Closed)
        {
            return;
        }

        _cancelCalled = true;
        _timer.Cancel();
        _timer = default;
        CancelToken();
    }

    /// <summary>
    /// Runs <paramref name="body"/> inside the scope with its <see cref="Token"/>, and closes the scope when it ends.
    /// Catches the <see cref="OperationCanceledException"/> this scope caused (see the remarks); rethrows everything else.
    /// </summary>
    /// <exception cref="TimeoutException">A fail scope's deadline cut the body short.</exception>
    /// <exception cref="InvalidOperationException">The scope already ran a body or was disposed.</exception>
    public async Task RunAsync(Func<CancellationToken, Task> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        Enter();
        try
        {
            await (body(_cts.Token) ?? throw new InvalidOperationException("The body returned null instead of a Task.")).ConfigureAwait(true);
        }
        catch (OperationCanceledException cancelled) when (CaughtHere())
        {
            ThrowIfTimedOut(cancelled);
        }
        finally
        {
            Close();
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> inside the scope and returns its result; <c>default</c> when this scope cut it short
    /// (check <see cref="CancelledCaught"/>). See <see cref="RunAsync(Func{CancellationToken, Task})"/>.
    /// </summary>
    /// <exception cref="TimeoutException">A fail scope's deadline cut the body short.</exception>
    /// <exception cref="InvalidOperationException">The scope already ran a body or was disposed.</exception>
    public async Task<T?> RunAsync<T>(Func<CancellationToken, Task<T>> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        Enter();
        try
        {
            return await (body(_cts.Token) ?? throw new InvalidOperationException("The body returned null instead of a Task.")).ConfigureAwait(true);
        }
        catch (OperationCanceledException cancelled) when (CaughtHere())
        {
            ThrowIfTimedOut(cancelled);
            return default;
        }
        finally
        {
            Close();
        }
    }

    /// <summary>
    /// Closes the scope: removes its timer and its link to the outer token. Idempotent; the token stays as it is.
    /// <see cref="RunAsync(Func{CancellationToken, Task})"/> closes the scope itself. From another thread it hops to the loop.
    /// </summary>
    public void Dispose()
    {
        if (!_loop.IsOnLoopThread)
        {
            PostToLoop(static s => s.Close());
            return;
        }

        Close();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"CancelScope(deadline {(_deadline == NoDeadline ? "none" : _deadline.ToString())}, " +
        $"{(_state == Created ? "not entered" : _state == Running ? "running" : "closed")}" +
        $"{(_cancelCalled ? ", cancel called" : "")}{(_cancelledCaught ? ", cancelled caught" : "")}{(_shield ? ", shielded" : "")})";

    private void Enter()
    {
        _loop.CheckLoopThread();
        if (_state != Created)
        {
            throw new InvalidOperationException("A CancelScope runs one body: this one already ran or was disposed. Create a new scope.");
        }

        _state = Running;
    }

    /// <summary>trio's rule: catch when this scope is cancelled itself and the outer cancellation does not reach it.</summary>
    private bool CaughtHere()
    {
        if (_cancelCalled && (_shield || !_outer.IsCancellationRequested))
        {
            _cancelledCaught = true;
            return true;
        }

        return false;
    }

    private void ThrowIfTimedOut(OperationCanceledException cancelled)
    {
        if (_throwsOnDeadline && _deadlineReached)
        {
            throw new TimeoutException(
                $"The operation did not finish before its deadline (loop time {_deadline}); the fail scope cancelled it.", cancelled);
        }
    }

    private void Close()
    {
        if (_state == Closed)
        {
            return;
        }

        _state = Closed;
        _timer.Cancel();
        _timer = default;
        _outerRegistration.Unregister(); // never waits, even if the callback runs on another thread now
    }

    private void OnDeadline()
    {
        _timer = default;
        if (_cancelCalled || _state == Closed)
        {
            return;
        }

        _cancelCalled = true;
        _deadlineReached = true;
        CancelToken();
    }

    private void OnOuterCancelled()
    {
        if (_loop.IsOnLoopThread)
        {
            ApplyOuterCancellation();
        }
        else
        {
            PostToLoop(static s => s.ApplyOuterCancellation());
        }
    }

    private void ApplyOuterCancellation()
    {
        if (!_shield && _state != Closed)
        {
            CancelToken();
        }
    }

    private void CancelToken()
    {
        if (!_cts.IsCancellationRequested)
        {
            _cts.Cancel(); // callbacks run here, on the loop thread; a throwing one reaches the caller
        }
    }

    private void PostToLoop(Action<CancelScope> action)
    {
        try
        {
            _loop.CallSoonThreadSafe(action, this);
        }
        catch (InvalidOperationException)
        {
            // The loop closed: nothing runs inside the scope any more.
        }
    }
}
