using System.IO.Pipelines;

namespace EventLoop.Transports.Sockets;

/// <summary>Runs pipe continuations on the loop, in FIFO order with its other callbacks. Allocates nothing.</summary>
internal sealed class LoopPipeScheduler(Loop loop) : PipeScheduler
{
    public override void Schedule(Action<object?> action, object? state) => loop.Post(action, state);
}
