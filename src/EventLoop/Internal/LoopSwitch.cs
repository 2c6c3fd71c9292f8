using System.Runtime.CompilerServices;

namespace EventLoop.Internal;

/// <summary>
/// <c>await new LoopSwitch(loop)</c> continues on the loop thread: at once if already there, otherwise the
/// continuation is posted to the loop. Used after awaiting .NET socket operations with
/// <c>ConfigureAwait(false)</c>: their own context capture posts a <c>Tuple</c> per completion, this allocates
/// nothing (the async state machine's cached continuation delegate is queued as is).
/// </summary>
internal readonly struct LoopSwitch(Loop loop) : ICriticalNotifyCompletion
{
    private static readonly Action<object?> s_invoke = static s => Unsafe.As<Action>(s!)();

    public LoopSwitch GetAwaiter() => this;

    public bool IsCompleted => loop.IsOnLoopThread;

    public void GetResult()
    {
    }

    public void OnCompleted(Action continuation) => loop.Post(s_invoke, continuation);

    public void UnsafeOnCompleted(Action continuation) => loop.Post(s_invoke, continuation);
}
