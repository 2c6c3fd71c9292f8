namespace EventLoop.Benchmarks;

/// <summary>Counts N posts: from pool threads (<see cref="Hit"/>, interlocked) or on a loop thread (<see cref="HitOnLoop"/>).</summary>
internal sealed class PostCounter(int n)
{
    public readonly ManualResetEventSlim Done = new();
    public readonly TaskCompletionSource Completion = new();
    private int _count;

    public void Hit()
    {
        if (Interlocked.Increment(ref _count) == n)
        {
            Done.Set();
        }
    }

    // Single-threaded consumers need no interlocked increment.
    public void HitOnLoop()
    {
        if (++_count == n)
        {
            Completion.SetResult();
        }
    }

    /// <summary>The thread-pool baseline: a producer thread queues <paramref name="n"/> work items; returns when all ran.</summary>
    public static void ThreadPoolPosts(int n)
    {
        var counter = new PostCounter(n);
        var producer = new Thread(() =>
        {
            for (int i = 0; i < n; i++)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static c => c.Hit(), counter, preferLocal: false);
            }
        });
        producer.Start();
        counter.Done.Wait();
        producer.Join();
    }
}
