using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// <see cref="TimeProvider"/> over the loop's clock and timer heap (see <see cref="Loop.TimeProvider"/>).
/// Timers may be created and changed from any thread; their callbacks always run on the loop thread.
/// </summary>
internal sealed class LoopTimeProvider(Loop loop) : TimeProvider
{
    public override long GetTimestamp() => loop.GetTimestamp();

    /// <summary>The wall clock of the loop's <see cref="LoopOptions.Clock"/>, so a fake clock in tests fakes this too.</summary>
    public override DateTimeOffset GetUtcNow() => loop.Clock.GetUtcNow();

    public override TimeZoneInfo LocalTimeZone => loop.Clock.LocalTimeZone;

    public override long TimestampFrequency => loop.TimestampFrequency;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new LoopTimer(loop, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>
    /// One <see cref="ITimer"/>. Every <see cref="Change"/> bumps a generation; a firing that belongs to an
    /// older generation is ignored, so changes from other threads (applied later, on the loop) stay correct.
    /// </summary>
    private sealed class LoopTimer(Loop loop, TimerCallback callback, object? state) : ITimer
    {
        private int _generation;
        private volatile bool _disposed;
        private LoopHandle _pending;
        private TimeSpan _period = Timeout.InfiniteTimeSpan;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            ValidateTimeout(dueTime, nameof(dueTime));
            ValidateTimeout(period, nameof(period));
            if (_disposed || loop.IsClosed)
            {
                return false;
            }

            int generation = Interlocked.Increment(ref _generation);
            if (loop.IsOnLoopThread)
            {
                Apply(generation, dueTime, period);
            }
            else
            {
                try
                {
                    loop.CallSoonThreadSafe(
                        static s => s.Timer.Apply(s.Generation, s.Due, s.Period),
                        (Timer: this, Generation: generation, Due: dueTime, Period: period));
                }
                catch (InvalidOperationException)
                {
                    return false; // closed meanwhile
                }
            }

            return true;
        }

        private void Apply(int generation, TimeSpan dueTime, TimeSpan period)
        {
            if (generation != Volatile.Read(ref _generation) || loop.IsClosed)
            {
                return; // a newer change (or a dispose) supersedes this one
            }

            _pending.Cancel();
            _period = period;
            if (!_disposed && dueTime != Timeout.InfiniteTimeSpan)
            {
                _pending = loop.CallLater(dueTime, static s => s.Timer.Fire(s.Generation), (Timer: this, Generation: generation));
            }
        }

        private void Fire(int generation)
        {
            if (_disposed || generation != Volatile.Read(ref _generation))
            {
                return;
            }

            // A period of zero means one-shot, as TimeProvider.System's timers have it (not "fire continuously").
            if (_period != Timeout.InfiniteTimeSpan && _period != TimeSpan.Zero && !loop.IsShuttingDown)
            {
                _pending = loop.CallLater(_period, static s => s.Timer.Fire(s.Generation), (Timer: this, Generation: generation));
            }

            callback(state);
        }

        public void Dispose()
        {
            _disposed = true;
            int generation = Interlocked.Increment(ref _generation);
            if (loop.IsOnLoopThread)
            {
                _pending.Cancel();
            }
            else if (!loop.IsClosed)
            {
                // Cancel the pending loop timer on the loop, so it leaves the heap now and stops holding this
                // timer (and the Task.Delay or CancellationTokenSource behind it) until its due time.
                try
                {
                    loop.CallSoonThreadSafe(
                        static s => s.Timer.Apply(s.Generation, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan),
                        (Timer: this, Generation: generation));
                }
                catch (InvalidOperationException)
                {
                    // closed meanwhile: the heap is gone with it
                }
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }

        private static void ValidateTimeout(TimeSpan value, string name)
        {
            if (value < TimeSpan.Zero && value != Timeout.InfiniteTimeSpan)
            {
                throw new ArgumentOutOfRangeException(name, value, "Must be non-negative or Timeout.InfiniteTimeSpan.");
            }
        }
    }
}
