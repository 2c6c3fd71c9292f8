namespace EventLoop;

/// <summary>Settings for a loop, given to <see cref="LoopPolicy.CreateLoop(LoopOptions?)"/>.</summary>
public sealed class LoopOptions
{
    /// <summary>
    /// Debug mode, asyncio's <c>debug=True</c>: warns about callbacks slower than
    /// <see cref="SlowCallbackThreshold"/> (naming the callback) and reports exceptions of tasks nobody
    /// observed (.NET's <c>TaskScheduler.UnobservedTaskException</c> is process-wide and a task does not record its
    /// loop, so every running loop in debug mode reports each such task, whichever code left it). Defaults to true when the environment variable <c>EVENTLOOP_DEBUG</c> is <c>1</c>.
    /// Thread affinity is checked on every loop-affine call in both modes.
    /// </summary>
    public bool Debug { get; set; } = IsDebugRequestedByEnvironment();

    /// <summary>In debug mode, callbacks that run longer than this are reported. Default 100 ms, as asyncio.</summary>
    public TimeSpan SlowCallbackThreshold { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Receives exceptions thrown by callbacks; the loop goes on either way. When null, the exception is
    /// written to <see cref="Log"/>. Can also be set later with <see cref="Loop.ExceptionHandler"/>.
    /// </summary>
    public Action<LoopExceptionContext>? ExceptionHandler { get; set; }

    /// <summary>Where warnings and unhandled callback exceptions are written. Default: standard error.</summary>
    public TextWriter? Log { get; set; }

    /// <summary>
    /// The clock the loop reads for <see cref="Loop.Time"/> and its timers. Default <see cref="TimeProvider.System"/>.
    /// Tests can pass a fake provider and advance it instead of sleeping.
    /// </summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;

    /// <summary>
    /// How many ready callbacks run before the loop checks timers, other threads' posts and I/O again
    /// (Tokio's <c>event_interval</c>). Default 128. Higher is faster for pure callback throughput; lower
    /// is fairer to I/O.
    /// </summary>
    public int CallbacksPerIteration
    {
        get => _callbacksPerIteration;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _callbacksPerIteration = value;
        }
    }

    /// <summary>
    /// How long the loop thread may sit in a blocking wait (<c>Task.Wait()</c>, <c>.Result</c>, a lock)
    /// while loop callbacks are waiting to run before the wait throws an <see cref="InvalidOperationException"/>
    /// that names the deadlock. Default 1 second. <see cref="Timeout.InfiniteTimeSpan"/> turns the check off.
    /// </summary>
    public TimeSpan BlockingWaitLimit { get; set; } = TimeSpan.FromSeconds(1);

    private int _callbacksPerIteration = 128;

    internal static bool IsDebugRequestedByEnvironment()
    {
        string? value = Environment.GetEnvironmentVariable("EVENTLOOP_DEBUG");
        return value is "1" or "true" or "True" or "TRUE" or "yes";
    }
}

/// <summary>What the loop knows about an exception a callback threw (asyncio's exception context).</summary>
public sealed class LoopExceptionContext
{
    internal LoopExceptionContext(Loop loop, string message, Exception? exception, object? callback)
    {
        Loop = loop;
        Message = message;
        Exception = exception;
        Callback = callback;
    }

    /// <summary>The loop the callback ran on.</summary>
    public Loop Loop { get; }

    /// <summary>What happened, in words.</summary>
    public string Message { get; }

    /// <summary>The exception, if there was one.</summary>
    public Exception? Exception { get; }

    /// <summary>The callback (a delegate, a task or a handle) that failed, when known.</summary>
    public object? Callback { get; }

    /// <inheritdoc />
    public override string ToString() => Exception is null ? Message : $"{Message}: {Exception}";
}
