namespace EventLoop.Internal;

/// <summary>
/// Something the loop must cancel or close when it shuts down: a pending wait (cancelled first, so
/// the code awaiting it can unwind), or a resource such as a listener or connection (closed after).
/// Nodes form an intrusive list on the loop, so registering allocates nothing. Loop thread only.
/// </summary>
internal abstract class ShutdownNode
{
    internal ShutdownNode? Next;
    internal ShutdownNode? Previous;
    internal bool Registered;

    /// <summary>Resources are closed after waits are cancelled and their continuations have run.</summary>
    internal virtual bool IsResource => false;

    /// <summary>Cancels or closes. Called once, on the loop thread, after the node was unregistered.</summary>
    internal abstract void OnShutdown();
}
