using System.Runtime.InteropServices;

namespace EventLoop;

public abstract partial class Loop
{
    private Dictionary<PosixSignal, SignalHandlerRegistration>? _signalHandlers;

    /// <summary>
    /// Runs <paramref name="callback"/> on the loop thread, as a loop callback, each time the process receives
    /// <paramref name="signal"/> (asyncio's <c>add_signal_handler</c>): the signal's default action (ending the
    /// process, for SIGINT, SIGTERM, SIGHUP, SIGUSR1...) no longer happens. One handler per signal and loop: a second
    /// call for the same signal replaces the first. Several loops may handle the same signal, and so may the rest of
    /// the process (<see cref="PosixSignalRegistration"/>, the Generic Host): each is called.
    /// Dispose the returned registration (or call <see cref="RemoveSignalHandler"/>) to remove it; once no handler is
    /// left for the signal anywhere in the process, its default action is back. The loop's shutdown removes what is left.
    /// </summary>
    /// <remarks>
    /// On both policies the signal is taken through the .NET runtime's own signal handling (as uvloop takes it through
    /// Python's rather than with <c>uv_signal_t</c>): the runtime owns the process's signal dispositions, and a libuv
    /// signal watcher would replace its handlers (the Generic Host's SIGTERM, <c>Console.CancelKeyPress</c>, the
    /// SIGCHLD that <c>System.Diagnostics.Process</c> needs) and reset them to the system default when stopped.
    /// Signals without a <see cref="PosixSignal"/> name are passed as their raw number: <c>(PosixSignal)10</c> is SIGUSR1 on Linux.
    /// </remarks>
    /// <exception cref="ArgumentException">The signal cannot be caught (SIGKILL, SIGSTOP) or is not a signal number.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    /// <exception cref="PlatformNotSupportedException">The platform cannot handle this signal.</exception>
    public SignalHandlerRegistration AddSignalHandler(PosixSignal signal, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        CheckSignal(signal);
        CheckLoopThread();
        CheckNotClosed();
        _signalHandlers ??= new Dictionary<PosixSignal, SignalHandlerRegistration>();
        if (_signalHandlers.TryGetValue(signal, out SignalHandlerRegistration? previous))
        {
            // The new handler is registered first, so the signal is never without one (its default action) in between.
            var replacement = new SignalHandlerRegistration(this, signal, callback);
            previous.Remove();
            _signalHandlers[signal] = replacement;
            return replacement;
        }

        var registration = new SignalHandlerRegistration(this, signal, callback);
        _signalHandlers[signal] = registration;
        return registration;
    }

    /// <summary>Removes this loop's handler for <paramref name="signal"/> (asyncio's <c>remove_signal_handler</c>). True if there was one.</summary>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public bool RemoveSignalHandler(PosixSignal signal)
    {
        CheckLoopThread();
        if (_signalHandlers is null || !_signalHandlers.TryGetValue(signal, out SignalHandlerRegistration? registration))
        {
            return false;
        }

        registration.Remove();
        return true;
    }

    /// <summary>Forgets a registration that was removed (loop thread).</summary>
    internal void ForgetSignalHandler(SignalHandlerRegistration registration)
    {
        if (_signalHandlers is not null && _signalHandlers.TryGetValue(registration.Signal, out SignalHandlerRegistration? current) && current == registration)
        {
            _signalHandlers.Remove(registration.Signal);
        }
    }

    /// <summary>Signal handlers still registered (the leak check counts them).</summary>
    internal int OpenSignalHandlerCount { get; set; }

    private static void CheckSignal(PosixSignal signal)
    {
        int raw = (int)signal;
        if (raw is 9 or 19)
        {
            throw new ArgumentException($"Signal {raw} ({(raw == 9 ? "SIGKILL" : "SIGSTOP")}) cannot be caught or handled.", nameof(signal));
        }

        if (raw == 0 || raw > 64 || raw < -10 /* PosixSignal.SIGTSTP, the last name */)
        {
            throw new ArgumentException(
                $"{raw} is not a signal: pass a PosixSignal name, or a raw signal number from 1 to 64 cast to PosixSignal.", nameof(signal));
        }
    }
}
