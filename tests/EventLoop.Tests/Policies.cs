using EventLoop.Libuv;

namespace EventLoop.Tests;

/// <summary>The policy factories the per-policy subclasses use.</summary>
internal static class Policies
{
    public static LoopPolicy Managed() => new ManagedLoopPolicy();

    /// <summary>The managed loop on its portable I/O (.NET sockets, completions posted back), which Linux does not use by default.</summary>
    public static LoopPolicy ManagedSockets() => new ManagedLoopPolicy(useEpoll: false);

    public static LoopPolicy Libuv() => new LibuvLoopPolicy();
}
