using EventLoop.Libuv;

namespace EventLoop.Tests;

/// <summary>The policy factories the per-policy subclasses use.</summary>
internal static class Policies
{
    public static LoopPolicy Managed() => new ManagedLoopPolicy();

    public static LoopPolicy Libuv() => new LibuvLoopPolicy();
}
