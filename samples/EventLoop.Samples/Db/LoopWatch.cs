using System.Diagnostics;

namespace EventLoop.Samples.Db;

/// <summary>
/// Watches a loop while a driver runs on it: a 10 ms ticker on the loop's timers records the largest gap between
/// ticks beyond the period (how long the loop thread was kept from its timers: blocked, or busy), and
/// <see cref="Check"/> records whether each continuation of the app's code ran on the loop thread.
/// Create and use it on the loop thread; <see cref="DisposeAsync"/> stops the ticker.
/// </summary>
internal sealed class LoopWatch : IAsyncDisposable
{
    private readonly Loop _loop;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _ticker;
    private readonly TimeSpan _period;
    private long _checks;
    private long _offLoop;
    private string? _firstOffLoop;

    public LoopWatch(Loop loop, TimeSpan? period = null)
    {
        _loop = loop;
        _period = period ?? TimeSpan.FromMilliseconds(10);
        _ticker = TickAsync();
    }

    /// <summary>The largest delay of a tick beyond its period since <see cref="ResetGap"/>.</summary>
    public TimeSpan LargestGap { get; private set; }

    /// <summary>The largest delay of a tick beyond its period since the last <see cref="TakePhaseGap"/> (or reset).</summary>
    public TimeSpan PhaseGap { get; private set; }

    /// <summary>Ticks so far.</summary>
    public long Ticks { get; private set; }

    /// <summary>Continuations checked so far.</summary>
    public long Checks => Interlocked.Read(ref _checks);

    /// <summary>Checks that found themselves off the loop thread.</summary>
    public long OffLoop => Interlocked.Read(ref _offLoop);

    /// <summary>Where the first continuation off the loop thread was (null when none).</summary>
    public string? FirstOffLoop => _firstOffLoop;

    /// <summary>Records whether the caller runs on the loop thread; <paramref name="where"/> names it in the report.</summary>
    public void Check(string where)
    {
        Interlocked.Increment(ref _checks);
        if (!_loop.IsOnLoopThread)
        {
            Interlocked.Increment(ref _offLoop);
            Interlocked.CompareExchange(ref _firstOffLoop, $"{where} (thread {Environment.CurrentManagedThreadId}, {Thread.CurrentThread.Name ?? "unnamed"})", null);
        }
    }

    /// <summary>Forgets the gaps so far (to measure one phase, after a warm-up).</summary>
    public void ResetGap() => LargestGap = PhaseGap = TimeSpan.Zero;

    /// <summary>Returns <see cref="PhaseGap"/> and starts a new phase.</summary>
    public TimeSpan TakePhaseGap()
    {
        TimeSpan gap = PhaseGap;
        PhaseGap = TimeSpan.Zero;
        return gap;
    }

    private async Task TickAsync()
    {
        long last = Stopwatch.GetTimestamp();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _loop.DelayAsync(_period, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            long now = Stopwatch.GetTimestamp();
            TimeSpan late = Stopwatch.GetElapsedTime(last, now) - _period;
            last = now;
            Ticks++;
            if (late > LargestGap)
            {
                LargestGap = late;
            }

            if (late > PhaseGap)
            {
                PhaseGap = late;
            }

            Check("ticker");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _ticker;
        _stop.Dispose();
    }
}
