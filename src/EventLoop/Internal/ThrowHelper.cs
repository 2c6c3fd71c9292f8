using System.Diagnostics.CodeAnalysis;

namespace EventLoop.Internal;

/// <summary>Every throw path of the core, kept out of line so callers stay small and inlinable.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    internal static Loop ThrowNoCurrentLoop() =>
        throw new InvalidOperationException(
            "There is no event loop running on this thread. Loop.Current is only available inside code run by " +
            "Loop.Run (or loop.RunUntilComplete); pass the loop along, or use loop.CallSoonThreadSafe from other threads.");

    [DoesNotReturn]
    internal static void ThrowNested(Loop running) =>
        throw new InvalidOperationException(
            $"Loop.Run cannot be called from a thread that is already running a loop (the {running.PolicyName} loop); " +
            "nested loops would block the outer one. Await the work instead.");

    [DoesNotReturn]
    internal static void ThrowClosed(Loop loop) =>
        throw new InvalidOperationException($"The {loop.PolicyName} loop is closed; it cannot schedule more work.");

    [DoesNotReturn]
    internal static void ThrowWrongThreadOrClosed(Loop loop)
    {
        if (loop.IsClosed)
        {
            ThrowClosed(loop);
        }

        throw new InvalidOperationException(
            $"This {loop.PolicyName} loop method was called from thread {Environment.CurrentManagedThreadId}, " +
            "which is not the loop's thread. Loop-affine methods and primitives may only be used on the loop thread; " +
            "from other threads use loop.CallSoonThreadSafe (or await back onto the loop).");
    }

    [DoesNotReturn]
    internal static void ThrowNegativeDelay(TimeSpan delay) =>
        throw new ArgumentOutOfRangeException("delay", delay, "The delay must not be negative.");
}
