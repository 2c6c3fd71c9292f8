using System.IO.Pipelines;
using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A child process started on a loop (<see cref="Loop.StartProcess"/>, asyncio's <c>Process</c>): its pipes are read
/// and written on the loop thread, and its exit is a loop event. Dispose it when done: that closes the pipes and, if
/// the child is still running, kills it (SIGKILL) and reaps it, as asyncio's subprocess transport does on close. The
/// loop's shutdown does the same for a process left undisposed.
/// </summary>
/// <remarks>
/// <see cref="WaitForExitAsync"/>, <see cref="HasExited"/>, <see cref="Kill"/>, <see cref="SendSignal"/> and
/// <see cref="DisposeAsync"/> may be called from any thread (a signal or dispose from elsewhere hops to the loop);
/// the pipes are the loop's, as a <see cref="Connection"/>'s are.
/// </remarks>
public abstract class LoopProcess : IAsyncDisposable
{
    private const int SigKill = 9;

    private readonly Loop _loop;
    private readonly Connection? _stdin;
    private readonly Connection? _stdout;
    private readonly Connection? _stderr;
    private readonly TaskCompletionSource<ProcessExitStatus> _exit = new();
    private readonly ResourceNode _node;
    private Task? _disposing;

    private protected LoopProcess(Loop loop, int id, Connection? stdin, Connection? stdout, Connection? stderr)
    {
        _loop = loop;
        Id = id;
        _stdin = stdin;
        _stdout = stdout;
        _stderr = stderr;
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        loop.PendingIo++; // until the child is reaped and its handle closed: the shutdown waits for that
    }

    /// <summary>The child's process id.</summary>
    public int Id { get; }

    /// <summary>The child's standard input, when started with <see cref="ProcessStdio.Pipe"/>; else null. Complete it to close the child's input (end of file).</summary>
    public PipeWriter? StandardInput => _stdin?.Output;

    /// <summary>The child's standard output, when started with <see cref="ProcessStdio.Pipe"/>; else null. It ends when the child closes its output (usually when it exits).</summary>
    public PipeReader? StandardOutput => _stdout?.Input;

    /// <summary>The child's standard error, when started with <see cref="ProcessStdio.Pipe"/>; else null.</summary>
    public PipeReader? StandardError => _stderr?.Input;

    /// <summary>True once the child has exited and been reaped (its exit seen on the loop). Any thread.</summary>
    public bool HasExited => _exit.Task.IsCompleted;

    /// <summary>
    /// Waits for the child to exit (asyncio's <c>Process.wait</c>) and gives its exit code and, if a signal killed it,
    /// the signal. Waiting does not read the child's pipes: a child that fills a pipe nobody reads waits for its reader.
    /// </summary>
    public Task<ProcessExitStatus> WaitForExitAsync(CancellationToken cancellationToken = default) =>
        cancellationToken.CanBeCanceled && !_exit.Task.IsCompleted ? _exit.Task.WaitAsync(cancellationToken) : _exit.Task;

    /// <summary>Kills the child with SIGKILL (asyncio's <c>Process.kill</c>). A no-op once it has exited. Any thread.</summary>
    public void Kill() => SendSignal(SigKill);

    /// <summary>
    /// Sends <paramref name="signal"/> to the child (asyncio's <c>Process.send_signal</c>), 15 for SIGTERM, 9 for SIGKILL.
    /// A no-op once the child has exited (its id may belong to another process by then). From another thread the signal
    /// is sent on the loop, shortly after.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The signal is not from 1 to 64.</exception>
    public void SendSignal(int signal)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(signal, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(signal, 64);
        if (!_loop.IsOnLoopThread)
        {
            try
            {
                _loop.CallSoonThreadSafe(static s => s.Process.SendSignal(s.Signal), (Process: this, Signal: signal));
            }
            catch (InvalidOperationException)
            {
                // The loop closed: its shutdown killed and reaped the child.
            }

            return;
        }

        if (!_exit.Task.IsCompleted && !IsHandleClosed)
        {
            SendSignalCore(signal);
        }
    }

    /// <summary>
    /// Closes the pipes and, when the child is still running, kills it (SIGKILL) and waits until it is reaped, then frees
    /// the process's handle. Safe from any thread and more than once (every call returns the same close).
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (!_loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(_loop, this, static p => p.DisposeAsync());
        }

        _disposing ??= DisposeCoreAsync();
        return new ValueTask(_disposing);
    }

    private async Task DisposeCoreAsync()
    {
        _loop.UnregisterShutdown(_node);
        if (!_exit.Task.IsCompleted)
        {
            try
            {
                SendSignalCore(SigKill);
            }
            catch (Exception ex)
            {
                _loop.ReportException("Killing a child process at dispose failed", ex, this);
            }
        }

        // The pipes close gracefully: what was written to the child's input is sent first (or fails at once when it is dead).
        await DisposePipeAsync(_stdin).ConfigureAwait(true);
        await DisposePipeAsync(_stdout).ConfigureAwait(true);
        await DisposePipeAsync(_stderr).ConfigureAwait(true);
        await _exit.Task.ConfigureAwait(true);
        await CloseHandleCoreAsync().ConfigureAwait(true);
        _loop.PendingIo--;
    }

    private async ValueTask DisposePipeAsync(Connection? pipe)
    {
        if (pipe is null)
        {
            return;
        }

        try
        {
            await pipe.DisposeAsync().ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            _loop.ReportException("Closing a child process's pipe failed", ex, this);
        }
    }

    private void KillAtShutdown()
    {
        if (!_exit.Task.IsCompleted && !IsHandleClosed)
        {
            try
            {
                SendSignalCore(SigKill);
            }
            catch (Exception ex)
            {
                _loop.ReportException("Killing a child process at the loop's shutdown failed", ex, this);
            }
        }
    }

    /// <summary>The child exited (reaped). Loop thread, once.</summary>
    private protected void OnExited(ProcessExitStatus status) => _exit.TrySetResult(status);

    /// <summary>True once the policy's handle is closed (no signal may be sent through it).</summary>
    private protected virtual bool IsHandleClosed => false;

    /// <summary>Sends a signal to a child not yet reaped. Loop thread.</summary>
    private protected abstract void SendSignalCore(int signal);

    /// <summary>Frees what the policy holds for the child, after it was reaped. Loop thread, once.</summary>
    private protected abstract ValueTask CloseHandleCoreAsync();

    /// <summary>"process 1234".</summary>
    public override string ToString() => $"process {Id}";

    /// <summary>Kills and reaps a child left running when the loop shuts down.</summary>
    private sealed class ResourceNode(LoopProcess owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown()
        {
            // Killed now; the pipes (resources of their own, closed by this same walk) and the reaping are left to a
            // callback, so this walk of the shutdown list never sees it change under it.
            owner.KillAtShutdown();
            owner._loop.CallSoon(static p => _ = p.DisposeAsync(), owner);
        }
    }
}
