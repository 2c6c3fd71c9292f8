namespace EventLoop.Tests;

/// <summary>
/// Base of every behaviour test: one abstract class per area derives from it, and one subclass per
/// policy supplies <see cref="CreatePolicy"/>, so every behaviour runs on every loop.
/// </summary>
public abstract class LoopTestBase
{
    /// <summary>The policy under test.</summary>
    protected abstract LoopPolicy CreatePolicy();

    /// <summary>Options for the loop under test; failures in callbacks are collected, not printed.</summary>
    protected virtual LoopOptions CreateOptions() => new()
    {
        ExceptionHandler = context => { lock (UnhandledErrors) UnhandledErrors.Add(context); },
        Debug = false,
    };

    /// <summary>Exceptions callbacks threw during the run, as the loop reported them.</summary>
    protected List<LoopExceptionContext> UnhandledErrors { get; } = new();

    /// <summary>Creates a loop of the policy under test.</summary>
    protected Loop CreateLoop(LoopOptions? options = null) => CreatePolicy().CreateLoop(options ?? CreateOptions());

    /// <summary>Runs <paramref name="main"/> on a fresh loop and checks that the loop closed cleanly.</summary>
    protected void RunLoop(Func<Loop, Task> main, LoopOptions? options = null)
    {
        using Loop loop = CreateLoop(options);
        loop.RunUntilComplete(() => main(loop));
        AssertClosedCleanly(loop);
    }

    /// <summary>Runs <paramref name="main"/> on a fresh loop and returns its result.</summary>
    protected T RunLoop<T>(Func<Loop, Task<T>> main, LoopOptions? options = null)
    {
        using Loop loop = CreateLoop(options);
        T result = loop.RunUntilComplete(() => main(loop));
        AssertClosedCleanly(loop);
        return result;
    }

    /// <summary>The leak check every loop test ends with: closed, nothing ready, no timer, no handle.</summary>
    protected static void AssertClosedCleanly(Loop loop)
    {
        Assert.True(loop.IsClosed, "the loop did not close");
        Assert.Equal(0, loop.ReadyCount);
        Assert.Equal(0, loop.TimerCount);
        Assert.Equal(0, loop.OpenNativeHandleCount);
    }
}
