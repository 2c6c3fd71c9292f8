using System.Net.Security;

namespace EventLoop.Transports.Tls;

/// <summary>
/// Keeps <see cref="System.Net.Security.SslStream"/>'s code on the loop thread.
/// </summary>
/// <remarks>
/// SslStream awaits with <c>ConfigureAwait(false)</c>, and .NET runs such a continuation inline where the awaited
/// task completes, except on a thread whose <see cref="SynchronizationContext"/> is not the base type (a UI thread;
/// here, the loop thread, where <see cref="LoopSynchronizationContext"/> is always current): there the continuation
/// is queued to the thread pool instead (the runtime's <c>Task.IsValidLocationForInlining</c>). Measured: without
/// this, a handshake went on on a pool thread, calling the certificate callbacks and the inner connection's pipes
/// off the loop. So the TLS transport completes SslStream's waits with no context current (SslStream then continues
/// inline, on the loop thread), and the TLS layer puts the loop's context back as soon as SslStream returns to it,
/// before any application code runs.
/// </remarks>
internal static class SslStreamContext
{
    /// <summary>Runs <paramref name="complete"/> (which completes something SslStream awaits) with no context current.</summary>
    public static void CompleteWithoutContext<TState>(Action<TState> complete, TState state)
    {
        SynchronizationContext? context = SynchronizationContext.Current;
        if (context is null)
        {
            complete(state);
            return;
        }

        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            complete(state);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    /// <summary>On the loop thread, makes the loop's context current again (after SslStream returned to the TLS layer).</summary>
    public static void Restore(Loop loop)
    {
        if (loop.IsOnLoopThread && SynchronizationContext.Current != loop.SynchronizationContext)
        {
            SynchronizationContext.SetSynchronizationContext(loop.SynchronizationContext);
        }
    }

    /// <summary>Back on the loop thread with its context: at once when already there, else posted to the loop.</summary>
    public static Internal.LoopSwitch BackOnLoop(Loop loop)
    {
        Restore(loop);
        return new Internal.LoopSwitch(loop);
    }

    /// <summary>
    /// Calls the application's <see cref="ServerOptionsSelectionCallback"/> from inside SslStream's handshake with the
    /// loop's context current (so its awaits come back to the loop), and completes what SslStream awaits with none.
    /// </summary>
    public static ValueTask<SslServerAuthenticationOptions> CallOnLoop(Loop loop, ServerOptionsSelectionCallback callback,
        SslStream stream, SslClientHelloInfo hello, object? state, CancellationToken cancellationToken)
    {
        SynchronizationContext? saved = SynchronizationContext.Current;
        Restore(loop);
        try
        {
            ValueTask<SslServerAuthenticationOptions> pending = callback(stream, hello, state, cancellationToken);
            if (pending.IsCompleted)
            {
                return pending;
            }

            // Registered while the loop's context is current: the continuation runs on the loop thread, inline when
            // the callback's task completes there (a context-free continuation would be queued to the thread pool).
            var done = new TaskCompletionSource<SslServerAuthenticationOptions>();
            Task<SslServerAuthenticationOptions> task = pending.AsTask();
            task.GetAwaiter().UnsafeOnCompleted(() => CompleteWithoutContext(static s =>
            {
                if (s.Task.IsCompletedSuccessfully)
                {
                    s.Done.SetResult(s.Task.Result);
                }
                else if (s.Task.IsCanceled)
                {
                    s.Done.SetCanceled();
                }
                else
                {
                    s.Done.SetException(s.Task.Exception!.InnerExceptions);
                }
            }, (Task: task, Done: done)));
            return new ValueTask<SslServerAuthenticationOptions>(done.Task);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(saved);
        }
    }
}
