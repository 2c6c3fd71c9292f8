using System.Runtime.InteropServices;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A loop's handler for a signal (see <see cref="Loop.AddSignalHandler"/>). Dispose it to remove the handler; safe
/// from any thread: the runtime's registration goes at once, the loop's bookkeeping on the loop thread.
/// </summary>
public sealed class SignalHandlerRegistration : IDisposable
{
    private readonly Loop _loop;
    private readonly Action _callback;
    private readonly ResourceNode _node;
    private PosixSignalRegistration? _registration;
    private volatile bool _removed;
    private bool _open = true; // counted and registered with the loop; loop thread

    internal SignalHandlerRegistration(Loop loop, PosixSignal signal, Action callback)
    {
        _loop = loop;
        Signal = signal;
        _callback = callback;
        _registration = PosixSignalRegistration.Create(signal, OnSignal);
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        loop.OpenSignalHandlerCount++;
    }

    /// <summary>The signal handled.</summary>
    public PosixSignal Signal { get; }

    /// <summary>True once the handler was removed (disposed, replaced, or by the loop's shutdown).</summary>
    public bool IsRemoved => _removed;

    /// <summary>On the runtime's signal thread: keeps the default action from happening and posts the handler to the loop.</summary>
    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (_removed)
        {
            return;
        }

        try
        {
            _loop.CallSoonThreadSafe(static r => r.Deliver(), this);
        }
        catch (InvalidOperationException)
        {
            // The loop is closing: its shutdown removes this handler.
        }
    }

    private void Deliver()
    {
        if (!_removed)
        {
            _callback(); // an exception goes to the loop's exception handler, as any callback's
        }
    }

    /// <summary>Removes the handler. Safe from any thread; idempotent.</summary>
    public void Dispose()
    {
        if (_loop.IsOnLoopThread)
        {
            Remove();
            return;
        }

        // Stop taking the signal now; the loop's bookkeeping follows on the loop thread.
        _removed = true;
        Interlocked.Exchange(ref _registration, null)?.Dispose();
        try
        {
            _loop.CallSoonThreadSafe(static r => r.Remove(), this);
        }
        catch (InvalidOperationException)
        {
            // The loop has closed: its shutdown removed the handler.
        }
    }

    /// <summary>Removes the handler. Loop thread.</summary>
    internal void Remove()
    {
        _removed = true;
        Interlocked.Exchange(ref _registration, null)?.Dispose();
        if (_open)
        {
            _open = false;
            _loop.UnregisterShutdown(_node);
            _loop.OpenSignalHandlerCount--;
            _loop.ForgetSignalHandler(this);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"handler of signal {Signal} on the {_loop.PolicyName} loop" + (_removed ? " (removed)" : "");

    private sealed class ResourceNode(SignalHandlerRegistration owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => owner.Remove();
    }
}
