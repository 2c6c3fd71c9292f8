using Microsoft.Extensions.Hosting;

namespace EventLoop.Hosting;

/// <summary>
/// <see cref="BackgroundService"/> on a loop: <see cref="ExecuteAsync"/> starts on a loop of the hosted group (round-robin
/// over its loops) and every continuation of it runs on that loop thread, so a worker's state needs no lock. The host's
/// stop cancels its token and waits for it (within the host's shutdown timeout), before the loops stop.
/// Register with <see cref="Microsoft.Extensions.DependencyInjection.EventLoopServiceCollectionExtensions.AddLoopWorker{TWorker}"/>.
/// </summary>
public abstract class LoopBackgroundService : IHostedService, IDisposable
{
    private readonly EventLoopService _loops;
    private CancellationTokenSource? _stopping;
    private Task? _executing;

    /// <summary>Takes the hosted group the worker runs on.</summary>
    protected LoopBackgroundService(EventLoopService loops)
    {
        ArgumentNullException.ThrowIfNull(loops);
        _loops = loops;
    }

    /// <summary>The loop the worker runs on, once started.</summary>
    public Loop? Loop { get; private set; }

    /// <summary>The worker's task, once started (it completes when <see cref="ExecuteAsync"/> does).</summary>
    public Task? ExecuteTask => _executing;

    /// <summary>The worker's body, on its loop thread. <paramref name="stoppingToken"/> is cancelled when the host stops.</summary>
    protected abstract Task ExecuteAsync(CancellationToken stoppingToken);

    /// <summary>Starts <see cref="ExecuteAsync"/> on the next loop of the group and returns at once.</summary>
    public virtual Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = new CancellationTokenSource();
        LoopGroup group = _loops.Group;
        Loop loop = group.Next();
        LoopThread thread = group.Loops.First(t => t.Loop == loop);
        Loop = loop;
        _executing = thread.RunAsync(token => ExecuteAsync(token), _stopping.Token);
        return _executing.IsCompleted ? _executing : Task.CompletedTask;
    }

    /// <summary>Cancels the worker's token and waits for it to end, or for <paramref name="cancellationToken"/> (the host's shutdown timeout).</summary>
    public virtual async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_executing is null)
        {
            return;
        }

        try
        {
            await _stopping!.CancelAsync().ConfigureAwait(false);
        }
        finally
        {
            var abandoned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (cancellationToken.Register(static s => ((TaskCompletionSource)s!).TrySetCanceled(), abandoned))
            {
                await Task.WhenAny(_executing, abandoned.Task).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Cancels the worker if it still runs.</summary>
    public virtual void Dispose()
    {
        _stopping?.Cancel();
        GC.SuppressFinalize(this);
    }
}
