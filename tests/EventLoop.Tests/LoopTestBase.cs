using EventLoop.Libuv.Internal;

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

    /// <summary>
    /// Set by a test that makes the loop report exceptions on purpose (and asserts them itself); otherwise the
    /// leak check fails on anything that reached the loop's exception handler.
    /// </summary>
    protected bool ExpectErrors { get; set; }

    /// <summary>Errors a test class tolerates even when it does not expect errors (see <see cref="ExpectErrors"/>).</summary>
    protected virtual bool IsToleratedError(LoopExceptionContext error) => false;

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

    /// <summary>
    /// The leak check every loop test ends with (libuv's MAKE_VALGRIND_HAPPY, Kestrel's CheckUvReqLeaks):
    /// <list type="bullet">
    /// <item>when shutdown had closed everything it knew of, nothing was still open: no socket, no libuv handle
    /// that was not closing, no libuv request (counted while the loop was still open, before the final close);</item>
    /// <item>after the close, no native handle or request is left;</item>
    /// <item>nothing reached the exception handler, unless the test said it expects errors (<see cref="ExpectErrors"/>).</item>
    /// </list>
    /// </summary>
    protected void AssertClosedCleanly(Loop loop)
    {
        Assert.True(loop.IsClosed, "the loop did not close");
        Assert.True(loop.OpenAtClose is null, $"the loop shut down with resources still open: {loop.OpenAtClose}");
        if (loop is LibuvLoop libuv)
        {
            Assert.True(libuv.LeakedHandles.Count == 0, "libuv handles left open: " + string.Join(", ", libuv.LeakedHandles));
        }

        Assert.Equal(0, loop.OpenNativeHandleCount);
        Assert.Equal(0, loop.OpenNativeRequestCount);
        if (!ExpectErrors)
        {
            LoopExceptionContext[] errors;
            lock (UnhandledErrors)
            {
                errors = UnhandledErrors.Where(e => !IsToleratedError(e)).ToArray();
            }

            Assert.True(errors.Length == 0,
                $"{errors.Length} exception(s) reached the loop's exception handler that the test did not expect:{Environment.NewLine}" +
                string.Join(Environment.NewLine, errors.Select(e => e.ToString())));
        }
    }
}
