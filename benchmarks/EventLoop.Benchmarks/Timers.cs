using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using EventLoop.Libuv.Internal;
using EventLoop.Libuv.Internal.Native;
using Nito.AsyncEx;

namespace EventLoop.Benchmarks;

/// <summary>
/// Schedules 100,000 timers with deadlines spread over 0-9 ms and waits until all have fired.
/// Baselines: <c>Task.Delay</c> on the thread pool's timer queue, and under AsyncContext. The loops are
/// long-lived (warm timer heap and callback pool), as in an app; see <see cref="Harness.OnPersistentLoop"/>.
/// </summary>
public class Timers
{
    private const int N = 100_000;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "ThreadPool Task.Delay")]
    public void ThreadPool() => Task.Run(Delays).GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = N, Description = "AsyncContext Task.Delay")]
    public void NitoAsyncContext() => AsyncContext.Run(Delays);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed CallLater")]
    public void Managed() => Harness.OnPersistentLoop("managed", CallLaters);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv CallLater")]
    public void Libuv() => Harness.OnPersistentLoop("libuv", CallLaters);

    /// <summary>
    /// The design alternative for the libuv loop: one native <c>uv_timer_t</c> per timer (allocate, init,
    /// start, and close in its callback), instead of one libuv timer over the managed heap.
    /// </summary>
    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv, a uv_timer per timer")]
    public void LibuvNativeTimers() => Harness.OnPersistentLoop("libuv", NativeTimers);

    private static int s_nativeFired;
    private static TaskCompletionSource? s_nativeDone;

    private static unsafe Task NativeTimers(Loop loop)
    {
        var libuv = (LibuvLoop)loop;
        s_nativeFired = 0;
        s_nativeDone = new TaskCompletionSource();
        for (int i = 0; i < N; i++)
        {
            IntPtr timer = libuv.NewHandle(Uv.HandleType.Timer);
            Uv.TimerInit(libuv.NativeLoop, timer);
            libuv.Adopt(timer);
            Uv.TimerStart(timer, &OnNativeTimer, (ulong)(i % 10), 0);
        }

        return s_nativeDone.Task;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static unsafe void OnNativeTimer(IntPtr handle)
    {
        Uv.Close(handle, &LibuvLoop.OnClosed);
        if (++s_nativeFired == N)
        {
            s_nativeDone!.SetResult();
        }
    }

    private static Task Delays()
    {
        var tasks = new Task[N];
        for (int i = 0; i < N; i++)
        {
            tasks[i] = Task.Delay(i % 10);
        }

        return Task.WhenAll(tasks);
    }

    private static Task CallLaters(Loop loop)
    {
        var state = new Countdown();
        for (int i = 0; i < N; i++)
        {
            loop.CallLater(TimeSpan.FromMilliseconds(i % 10), Countdown.Fire, state);
        }

        return state.Done.Task;
    }

    private sealed class Countdown
    {
        public static readonly Action<Countdown> Fire = static s =>
        {
            if (++s.Fired == N)
            {
                s.Done.SetResult();
            }
        };

        public readonly TaskCompletionSource Done = new();
        public int Fired;
    }
}
