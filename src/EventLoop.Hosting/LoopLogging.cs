using System.Text;
using Microsoft.Extensions.Logging;

namespace EventLoop.Hosting;

/// <summary>Routes a loop's exception-handler reports and log lines to an <see cref="ILogger"/>.</summary>
public static class LoopLogging
{
    /// <summary>The event id of a callback exception the loop reported (its exception handler).</summary>
    public static readonly EventId CallbackException = new(1, "LoopCallbackException");

    /// <summary>The event id of a loop's log line (slow callbacks in debug mode, unobserved task exceptions).</summary>
    public static readonly EventId LoopWarning = new(2, "LoopWarning");

    /// <summary>
    /// Loop options whose exception handler logs each report to <paramref name="logger"/> as an error (the exception, the
    /// loop's message, which in debug mode names the callback, and the callback's own name when the loop knows it), and whose
    /// log writes each line as a warning. The other settings are copied from <paramref name="template"/>.
    /// </summary>
    public static LoopOptions CreateOptions(ILogger logger, LoopOptions? template = null)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var options = new LoopOptions();
        if (template is not null)
        {
            options.Debug = template.Debug;
            options.SlowCallbackThreshold = template.SlowCallbackThreshold;
            options.Clock = template.Clock;
            options.CallbacksPerIteration = template.CallbacksPerIteration;
            options.BlockingWaitLimit = template.BlockingWaitLimit;
        }

        options.ExceptionHandler = context => LogException(logger, context);
        options.Log = new LoggerWriter(logger);
        return options;
    }

    /// <summary>Logs one report of a loop's exception handler.</summary>
    public static void LogException(ILogger logger, LoopExceptionContext context)
    {
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(context);
        logger.LogError(CallbackException, context.Exception, "{Message} (callback {Callback}, {Loop})",
            context.Message, DescribeCallback(context.Callback), context.Loop.PolicyName + " loop");
    }

    /// <summary>A callback's name as the loop's debug mode writes it: the delegate's declaring type and method, or the task's id.</summary>
    public static string DescribeCallback(object? callback) => callback switch
    {
        null => "unknown",
        Delegate d => $"{d.Method.DeclaringType?.FullName}.{d.Method.Name}",
        Task t => $"Task {t.Id}",
        _ => callback.ToString() ?? callback.GetType().Name,
    };

    /// <summary>The loop's log (a <see cref="TextWriter"/>) as warnings of the logger, one per line.</summary>
    private sealed class LoggerWriter(ILogger logger) : TextWriter
    {
        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            // The loop writes whole lines only (WriteLine(string)); single characters are not worth a log entry each.
        }

        public override void WriteLine(string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                logger.LogWarning(LoopWarning, "{LoopLine}", value);
            }
        }
    }
}
