using System.Diagnostics;

namespace EventLoop.Benchmarking;

/// <summary>
/// Samples the CPU time of a few processes and every core's idle time every few milliseconds, on a thread of
/// its own, so that a window the harness only learns afterwards (a client reports how long it measured, when
/// it is done) can still be read back. A reading is as exact as the sampling interval and /proc's 10 ms ticks.
/// </summary>
internal sealed class CpuSampler : IDisposable
{
    private readonly record struct Sample(long Timestamp, ProcessCpu?[] Processes, CoreTimes[]? Cores);

    private readonly int[] _pids;
    private readonly TimeSpan _interval;
    private readonly List<Sample> _samples = [];
    private readonly Thread _thread;
    private volatile bool _stopped;

    /// <summary>Starts sampling the processes <paramref name="pids"/> every <paramref name="interval"/>.</summary>
    public CpuSampler(IReadOnlyList<int> pids, TimeSpan interval)
    {
        _pids = pids.ToArray();
        _interval = interval;
        TakeSample();
        _thread = new Thread(Run) { IsBackground = true, Name = "cpu sampler" };
        _thread.Start();
    }

    /// <summary>What happened between two <see cref="Stopwatch.GetTimestamp"/> values.</summary>
    /// <param name="Processes">Each process's CPU time in the window, in the order given; null where unreadable.</param>
    /// <param name="Cores">Each core's idle and stolen time in the window.</param>
    /// <param name="Seconds">The window's length.</param>
    public readonly record struct Window(ProcessCpu?[] Processes, CoreTimes[]? Cores, double Seconds);

    /// <summary>
    /// The window from <paramref name="from"/> to <paramref name="to"/>, read from the last sample at or before
    /// each end in which the process could still be read (a client may exit right after its last line).
    /// </summary>
    public Window Between(long from, long to)
    {
        TakeSample(); // the latest state too, in case no sample was taken since `to`
        Sample[] samples;
        lock (_samples)
        {
            samples = _samples.ToArray();
        }

        var processes = new ProcessCpu?[_pids.Length];
        for (int p = 0; p < _pids.Length; p++)
        {
            ProcessCpu? start = Last(samples, from, s => s.Processes[p]);
            ProcessCpu? end = Last(samples, to, s => s.Processes[p]);
            processes[p] = start is { } a && end is { } b ? b - a : null;
        }

        CoreTimes[]? cores = ProcStat.Between(Last(samples, from, s => s.Cores), Last(samples, to, s => s.Cores));
        return new Window(processes, cores, Stopwatch.GetElapsedTime(from, to).TotalSeconds);
    }

    private static T? Last<T>(Sample[] samples, long at, Func<Sample, T?> read)
    {
        for (int i = samples.Length - 1; i >= 0; i--)
        {
            if (samples[i].Timestamp <= at && read(samples[i]) is { } value)
            {
                return value;
            }
        }

        return default;
    }

    private void Run()
    {
        while (!_stopped)
        {
            Thread.Sleep(_interval);
            TakeSample();
        }
    }

    private void TakeSample()
    {
        var sample = new Sample(Stopwatch.GetTimestamp(), _pids.Select(ProcStat.Process).ToArray(), ProcStat.Cores());
        lock (_samples)
        {
            _samples.Add(sample);
        }
    }

    /// <summary>Stops sampling.</summary>
    public void Dispose()
    {
        _stopped = true;
        _thread.Join();
    }
}
