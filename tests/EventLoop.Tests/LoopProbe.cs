using System.Reflection;
using EventLoop.Libuv.Internal;

namespace EventLoop.Tests;

/// <summary>
/// Conditions tests wait for instead of sleeping: a task that completes only after the current loop callback
/// (so an await on it has registered), and the loop being idle in its poll.
/// </summary>
internal static class LoopProbe
{
    private static readonly FieldInfo s_sleeping = Field(typeof(Loop), "_sleeping");
    private static readonly FieldInfo s_sleepAnnounced = Field(typeof(LibuvLoop), "_sleepAnnounced");

    /// <summary>
    /// A task completed from a new thread that a loop callback starts. The callback runs only after the
    /// current one returns, so an await on the task from the current callback has registered its continuation
    /// before the task completes, and that continuation runs on the completing thread unless it captured the loop.
    /// Call it on the loop thread.
    /// </summary>
    public static Task CompletedOnAnotherThreadLater(Loop loop)
    {
        var completion = new TaskCompletionSource(); // continuations run inline on the completing thread
        loop.CallSoon(() => new Thread(completion.SetResult) { IsBackground = true, Name = "completes later" }.Start());
        return completion.Task;
    }

    /// <summary>The same, with a result.</summary>
    public static Task<T> CompletedOnAnotherThreadLater<T>(Loop loop, Func<T> result)
    {
        var completion = new TaskCompletionSource<T>();
        loop.CallSoon(() => new Thread(() => completion.SetResult(result())) { IsBackground = true, Name = "completes later" }.Start());
        return completion.Task;
    }

    /// <summary>
    /// True once the loop has committed to blocking in its poll (it announced the sleep and found no posted work
    /// when it looked again) and no wake-up has been sent since: from here only a wake-up, or its next timer,
    /// gets it going. Managed: it is in (or entering) the wait on its wake-up event; libuv: in (or entering)
    /// <c>uv_run</c>'s poll after the prepare phase armed it.
    /// </summary>
    public static bool IsSleeping(Loop loop)
    {
        // Fresh reads each call (reflection does not cache field values).
        bool committed = loop is LibuvLoop libuv ? (bool)s_sleepAnnounced.GetValue(libuv)! : loop.IsInBackendWait;
        return committed && (int)s_sleeping.GetValue(loop)! != 0;
    }

    /// <summary>Blocks the calling thread (never the loop's) until the loop sleeps in its poll; fails after <see cref="TestPipes.TestTimeout"/>.</summary>
    public static void WaitUntilSleeping(Loop loop)
    {
        Assert.False(loop.IsOnLoopThread, "the loop thread cannot wait for its own loop to sleep");
        Assert.True(SpinWait.SpinUntil(() => IsSleeping(loop), TestPipes.TestTimeout), "the loop never went idle");
    }

    private static FieldInfo Field(Type type, string name) =>
        type.GetField(name, BindingFlags.Instance | BindingFlags.NonPublic)
        ?? throw new InvalidOperationException($"{type.Name}.{name} is gone: update LoopProbe.IsSleeping.");
}
