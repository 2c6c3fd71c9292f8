namespace EventLoop.Internal;

/// <summary>One <see cref="Loop.DelayAsync"/>: a loop timer, a token registration and a shutdown hook.</summary>
internal sealed class LoopSleep : ShutdownNode
{
    private readonly Loop _loop;
    private readonly TaskCompletionSource _completion = new();
    private readonly CancellationToken _token;
    private CancellationTokenRegistration _registration;
    private LoopHandle _timer;

    public LoopSleep(Loop loop, CancellationToken token)
    {
        _loop = loop;
        _token = token;
    }

    public Task Task => _completion.Task;

    public void Start(TimeSpan delay)
    {
        _timer = _loop.CallLater(delay, static s => s.Finish(null), this);
        _loop.RegisterShutdown(this);
        if (_token.CanBeCanceled)
        {
            _registration = _token.UnsafeRegister(static (s, _) => ((LoopSleep)s!).OnTokenCancelled(), this);
        }
    }

    private void OnTokenCancelled()
    {
        if (_loop.IsOnLoopThread)
        {
            Finish(_token);
        }
        else
        {
            try
            {
                _loop.CallSoonThreadSafe(static s => s.Finish(s._token), this);
            }
            catch (InvalidOperationException)
            {
                _completion.TrySetCanceled(_token); // the loop closed; nothing else will complete it
            }
        }
    }

    internal override void OnShutdown() => Finish(new CancellationToken(canceled: true));

    private void Finish(CancellationToken? cancelledBy)
    {
        if (_completion.Task.IsCompleted)
        {
            return;
        }

        _timer.Cancel();
        _loop.UnregisterShutdown(this);
        _registration.Dispose();
        if (cancelledBy is { } token)
        {
            _completion.TrySetCanceled(token);
        }
        else
        {
            _completion.TrySetResult();
        }
    }
}
