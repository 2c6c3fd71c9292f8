using BenchmarkDotNet.Attributes;
using EventLoop.Libuv;
using Nito.AsyncEx;

namespace EventLoop.Benchmarks;

/// <summary>
/// Submitting work to a loop on its own thread from another thread (the benchmark's): <see cref="LoopThread.RunAsync{T}(Func{T}, CancellationToken)"/>
/// against <c>Task.Run</c> and Nito.AsyncEx's <c>AsyncContextThread.Factory.Run</c>. Each operation is one submission
/// of a function that returns a constant (a cached static lambda, so the submission's own cost is what is measured);
/// the invocation submits <see cref="N"/> and then waits for every task in order.
/// <list type="bullet">
/// <item><b>warm</b>: one long-lived thread per kind, made in the global setup, as an app keeps one.</item>
/// <item><b>cold</b>: a fresh thread per batch of <see cref="ColdBatch"/> submissions (start, submit, wait, dispose),
/// so the start and the graceful stop are amortised over the batch.</item>
/// </list>
/// Allocations are the process's (BenchmarkDotNet's MemoryDiagnoser counts every thread), so they include what the
/// loop thread allocates to run the work.
/// </summary>
public class LoopThreadSubmit
{
    private const int N = 10_000;
    private const int ColdBatch = 1_000;

    private static readonly Func<int> s_work = static () => 1;
    private readonly Task<int>[] _tasks = new Task<int>[N];
    private LoopThread? _managed;
    private LoopThread? _libuv;
    private AsyncContextThread? _nito;

    [GlobalSetup]
    public void Setup()
    {
        _managed = LoopThread.Start(new ManagedLoopPolicy(), new LoopOptions { Debug = false });
        _libuv = LoopThread.Start(new LibuvLoopPolicy(), new LoopOptions { Debug = false });
        _nito = new AsyncContextThread();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _managed!.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _libuv!.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _nito!.JoinAsync().GetAwaiter().GetResult();
    }

    [BenchmarkCategory("warm"), Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "warm: Task.Run")]
    public int TaskRun()
    {
        for (int i = 0; i < N; i++)
        {
            _tasks[i] = Task.Run(s_work);
        }

        return WaitAll(N);
    }

    [BenchmarkCategory("warm"), Benchmark(OperationsPerInvoke = N, Description = "warm: AsyncContextThread Factory.Run")]
    public int Nito()
    {
        TaskFactory factory = _nito!.Factory;
        for (int i = 0; i < N; i++)
        {
            _tasks[i] = factory.Run(s_work);
        }

        return WaitAll(N);
    }

    [BenchmarkCategory("warm"), Benchmark(OperationsPerInvoke = N, Description = "warm: LoopThread managed RunAsync")]
    public int Managed() => Submit(_managed!, N);

    [BenchmarkCategory("warm"), Benchmark(OperationsPerInvoke = N, Description = "warm: LoopThread libuv RunAsync")]
    public int Libuv() => Submit(_libuv!, N);

    [BenchmarkCategory("cold"), Benchmark(OperationsPerInvoke = ColdBatch, Description = "cold: Task.Run")]
    public int ColdTaskRun()
    {
        for (int i = 0; i < ColdBatch; i++)
        {
            _tasks[i] = Task.Run(s_work);
        }

        return WaitAll(ColdBatch);
    }

    [BenchmarkCategory("cold"), Benchmark(OperationsPerInvoke = ColdBatch, Description = "cold: new AsyncContextThread per batch")]
    public int ColdNito()
    {
        var thread = new AsyncContextThread();
        TaskFactory factory = thread.Factory;
        for (int i = 0; i < ColdBatch; i++)
        {
            _tasks[i] = factory.Run(s_work);
        }

        int sum = WaitAll(ColdBatch);
        thread.JoinAsync().GetAwaiter().GetResult();
        return sum;
    }

    [BenchmarkCategory("cold"), Benchmark(OperationsPerInvoke = ColdBatch, Description = "cold: new LoopThread managed per batch")]
    public int ColdManaged() => Cold(new ManagedLoopPolicy());

    [BenchmarkCategory("cold"), Benchmark(OperationsPerInvoke = ColdBatch, Description = "cold: new LoopThread libuv per batch")]
    public int ColdLibuv() => Cold(new LibuvLoopPolicy());

    private int Cold(LoopPolicy policy)
    {
        LoopThread thread = LoopThread.Start(policy, new LoopOptions { Debug = false });
        int sum = Submit(thread, ColdBatch);
        thread.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return sum;
    }

    private int Submit(LoopThread thread, int count)
    {
        for (int i = 0; i < count; i++)
        {
            _tasks[i] = thread.RunAsync(s_work);
        }

        return WaitAll(count);
    }

    private int WaitAll(int count)
    {
        int sum = 0;
        for (int i = 0; i < count; i++)
        {
            sum += _tasks[i].GetAwaiter().GetResult();
            _tasks[i] = null!;
        }

        return sum;
    }
}
