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
}
