using System.Threading.Channels;
using BenchmarkDotNet.Attributes;

namespace EventLoop.Benchmarks;

/// <summary>
/// Producer/consumer hand-off of N items through a bounded queue (capacity 64). Baseline: a bounded
/// System.Threading.Channels channel with producer and consumer on the thread pool.
/// </summary>
public class QueueHandOff
{
    private const int N = 100_000;
    private const int Capacity = 64;

    [Benchmark(OperationsPerInvoke = N, Baseline = true, Description = "Bounded Channel on ThreadPool")]
    public void Channel()
    {
        var channel = System.Threading.Channels.Channel.CreateBounded<int>(new BoundedChannelOptions(Capacity)
        {
            SingleReader = true,
            SingleWriter = true,
        });
        Task producer = Task.Run(async () =>
        {
            for (int i = 0; i < N; i++)
            {
                await channel.Writer.WriteAsync(i);
            }
        });
        Task consumer = Task.Run(async () =>
        {
            long sum = 0;
            for (int i = 0; i < N; i++)
            {
                sum += await channel.Reader.ReadAsync();
            }

            return sum;
        });
        Task.WaitAll(producer, consumer);
    }

    [Benchmark(OperationsPerInvoke = N, Description = "Loop managed AsyncQueue")]
    public void Managed() => Harness.OnLoop(Harness.Policy("managed"), HandOff);

    [Benchmark(OperationsPerInvoke = N, Description = "Loop libuv AsyncQueue")]
    public void Libuv() => Harness.OnLoop(Harness.Policy("libuv"), HandOff);

    private static async Task HandOff(Loop loop)
    {
        var queue = new AsyncQueue<int>(Capacity, loop);
        Task producer = Produce(queue);
        long sum = 0;
        for (int i = 0; i < N; i++)
        {
            sum += await queue.GetAsync();
        }

        await producer;
    }

    private static async Task Produce(AsyncQueue<int> queue)
    {
        for (int i = 0; i < N; i++)
        {
            await queue.PutAsync(i);
        }
    }
}
