namespace EventLoop.Benchmarks;

/// <summary>Runs a body on a fresh loop of the named policy; the loop's setup cost is amortised over N operations.</summary>
internal static class Harness
{
    public static LoopPolicy Policy(string name) => EventLoopPolicy.FromName(name);

    public static void OnLoop(LoopPolicy policy, Func<Loop, Task> body)
    {
        using Loop loop = policy.CreateLoop(new LoopOptions { Debug = false });
        loop.RunUntilComplete(() => body(loop));
    }

    private static readonly Dictionary<string, Loop> s_persistent = [];

    /// <summary>
    /// Runs <paramref name="body"/> on a loop of the named policy that lives for the whole process (on its own
    /// thread), so its pools and heaps are warm: what a long-running app sees. One cross-thread post and one
    /// wake per invocation, amortised over its N operations.
    /// </summary>
    public static void OnPersistentLoop(string policyName, Func<Loop, Task> body)
    {
        Loop loop;
        lock (s_persistent)
        {
            if (!s_persistent.TryGetValue(policyName, out loop!))
            {
                var ready = new TaskCompletionSource<Loop>();
                var thread = new Thread(() =>
                {
                    using Loop l = Policy(policyName).CreateLoop(new LoopOptions { Debug = false });
                    l.RunUntilComplete(() =>
                    {
                        ready.SetResult(l);
                        return new TaskCompletionSource().Task; // runs until the process exits
                    });
                })
                { IsBackground = true, Name = "persistent " + policyName + " loop" };
                thread.Start();
                loop = ready.Task.GetAwaiter().GetResult();
                s_persistent[policyName] = loop;
            }
        }

        using var done = new ManualResetEventSlim();
        Exception? error = null;
        loop.CallSoonThreadSafe(async () =>
        {
            try
            {
                await body(loop);
            }
            catch (Exception ex)
            {
                error = ex;
            }
            finally
            {
                done.Set();
            }
        });
        done.Wait();
        if (error is not null)
        {
            throw error;
        }
    }
}
