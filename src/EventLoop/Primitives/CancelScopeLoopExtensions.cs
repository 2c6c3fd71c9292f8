using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// Timeouts on the loop clock, as trio's <c>move_on_after</c>/<c>fail_after</c> and asyncio's <c>timeout</c>/<c>timeout_at</c>:
/// each makes a <see cref="CancelScope"/> (see there for which scope catches a cancellation). Loop-affine.
/// </summary>
public static class CancelScopeLoopExtensions
{
    /// <summary>
    /// A scope that cancels its token <paramref name="delay"/> from now (trio's <c>move_on_after</c>): a body cut
    /// short by it ends quietly and <see cref="CancelScope.CancelledCaught"/> is true.
    /// </summary>
    /// <param name="loop">The loop whose clock and timers the deadline uses.</param>
    /// <param name="delay">From now; <see cref="Timeout.InfiniteTimeSpan"/> or <see cref="TimeSpan.MaxValue"/> for no deadline.</param>
    /// <param name="cancellationToken">The outer token (the enclosing body's): cancelling it cancels the scope, unless shielded.</param>
    /// <param name="shield">Shield the scope from <paramref name="cancellationToken"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public static CancelScope MoveOnAfter(this Loop loop, TimeSpan delay, CancellationToken cancellationToken = default, bool shield = false) =>
        new(loop, DeadlineAfter(loop, delay), throwsOnDeadline: false, cancellationToken, shield);

    /// <summary>A scope that cancels its token at loop time <paramref name="deadline"/> (trio's <c>move_on_at</c>). See <see cref="MoveOnAfter"/>.</summary>
    public static CancelScope MoveOnAt(this Loop loop, TimeSpan deadline, CancellationToken cancellationToken = default, bool shield = false)
    {
        ArgumentNullException.ThrowIfNull(loop);
        return new(loop, deadline, throwsOnDeadline: false, cancellationToken, shield);
    }

    /// <summary>
    /// A fail scope that cancels its token <paramref name="delay"/> from now (trio's <c>fail_after</c>, asyncio's
    /// <c>timeout</c>): a body cut short by the deadline makes <see cref="CancelScope.RunAsync(Func{CancellationToken, Task})"/>
    /// throw <see cref="TimeoutException"/>. Parameters as <see cref="MoveOnAfter"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public static CancelScope FailAfter(this Loop loop, TimeSpan delay, CancellationToken cancellationToken = default, bool shield = false) =>
        new(loop, DeadlineAfter(loop, delay), throwsOnDeadline: true, cancellationToken, shield);

    /// <summary>A fail scope with a deadline at loop time <paramref name="deadline"/> (trio's <c>fail_at</c>, asyncio's <c>timeout_at</c>). See <see cref="FailAfter"/>.</summary>
    public static CancelScope FailAt(this Loop loop, TimeSpan deadline, CancellationToken cancellationToken = default, bool shield = false)
    {
        ArgumentNullException.ThrowIfNull(loop);
        return new(loop, deadline, throwsOnDeadline: true, cancellationToken, shield);
    }

    /// <summary>
    /// Runs <paramref name="body"/> with a token cancelled after <paramref name="delay"/> and returns whether it finished:
    /// false if the deadline cut it short (trio's <c>with move_on_after(d)</c> around the body).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public static async Task<bool> MoveOnAfterAsync(this Loop loop, TimeSpan delay, Func<CancellationToken, Task> body, CancellationToken cancellationToken = default)
    {
        CancelScope scope = loop.MoveOnAfter(delay, cancellationToken);
        await scope.RunAsync(body).ConfigureAwait(true);
        return !scope.CancelledCaught;
    }

    /// <summary>
    /// Runs <paramref name="body"/> with a token cancelled after <paramref name="delay"/>; throws
    /// <see cref="TimeoutException"/> if the deadline cut it short (asyncio's <c>wait_for</c>, trio's <c>with fail_after(d)</c>).
    /// </summary>
    /// <exception cref="TimeoutException">The deadline cut the body short.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public static Task FailAfterAsync(this Loop loop, TimeSpan delay, Func<CancellationToken, Task> body, CancellationToken cancellationToken = default) =>
        loop.FailAfter(delay, cancellationToken).RunAsync(body);

    /// <summary>Runs <paramref name="body"/> with a deadline and returns its result; see <see cref="FailAfterAsync(Loop, TimeSpan, Func{CancellationToken, Task}, CancellationToken)"/>.</summary>
    /// <exception cref="TimeoutException">The deadline cut the body short.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative.</exception>
    public static async Task<T> FailAfterAsync<T>(this Loop loop, TimeSpan delay, Func<CancellationToken, Task<T>> body, CancellationToken cancellationToken = default) =>
        (await loop.FailAfter(delay, cancellationToken).RunAsync(body).ConfigureAwait(true))!; // a fail scope never returns default: it throws

    private static TimeSpan DeadlineAfter(Loop loop, TimeSpan delay)
    {
        ArgumentNullException.ThrowIfNull(loop);
        if (delay == Timeout.InfiniteTimeSpan)
        {
            return CancelScope.NoDeadline;
        }

        if (delay < TimeSpan.Zero)
        {
            ThrowHelper.ThrowNegativeDelay(delay);
        }

        TimeSpan now = loop.Time;
        return delay >= TimeSpan.MaxValue - (now > TimeSpan.Zero ? now : TimeSpan.Zero) ? CancelScope.NoDeadline : now + delay;
    }
}
