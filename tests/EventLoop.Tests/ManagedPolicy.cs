namespace EventLoop.Tests;

/// <summary>The policy factory each managed subclass uses.</summary>
internal static class Policies
{
    public static LoopPolicy Managed() => new ManagedLoopPolicy();
}
