using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace EventLoop.AspNetCore.Internal;

/// <summary>
/// Kestrel's view of one loop connection. Kestrel gets a pipe pair of its own (<see cref="Transport"/>), thread-safe as
/// every <see cref="Pipe"/> is; two pumps on the connection's loop move bytes between it and the loop connection, whose
/// pipes are touched only on the loop thread. So Kestrel may read, write, flush, abort and dispose from any thread, and the
/// socket is still read and written only by its loop.
/// </summary>
/// <remarks>
/// The price is one copy of every byte in each direction (Kestrel's libuv transport had its socket write into Kestrel's
/// pipe directly; a loop connection owns its pipes, so the bytes are copied from one pipe's blocks to the other's). Which
/// thread Kestrel resumes on is the choice of <see cref="EventLoopApplicationScheduling"/>: the application side of the
/// pipe pair uses the thread pool or runs inline (on the loop thread, where the pumps complete Kestrel's reads and flushes).
/// </remarks>
internal sealed class LoopConnectionContext : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IConnectionLifetimeFeature, IConnectionEndPointFeature,
    IEventLoopConnectionFeature
{
    private static long s_lastId;

    private readonly Connection _connection;
    private readonly Loop _loop;
    private readonly EventLoopApplicationScheduling _scheduling;
    private readonly Pipe _input;  // the loop's input pump writes, Kestrel reads
    private readonly Pipe _output; // Kestrel writes, the loop's output pump reads
    private readonly CancellationTokenSource _closed = new();
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly FeatureCollection _features = new();
    private IDictionary<object, object?>? _items;
    private CancellationToken _closedToken;
    private int _closedFired;
    private volatile bool _aborted;
    private Exception? _abortReason;
    private bool _sending; // the output pump awaits a flush of the loop connection (loop thread only)

    public LoopConnectionContext(Connection connection, Loop loop, EventLoopTransportOptions options)
    {
        _connection = connection;
        _loop = loop;
        _scheduling = options.ApplicationScheduling;
        _closedToken = _closed.Token;
        ConnectionId = "EL" + Interlocked.Increment(ref s_lastId).ToString("X8", System.Globalization.CultureInfo.InvariantCulture);
        LocalEndPoint = connection.LocalEndPoint;
        RemoteEndPoint = connection.RemoteEndPoint;

        var loopSide = new LoopSideScheduler(loop);
        PipeScheduler applicationSide = _scheduling == EventLoopApplicationScheduling.Loop ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        _input = new Pipe(new PipeOptions(
            readerScheduler: applicationSide,
            writerScheduler: loopSide,
            pauseWriterThreshold: options.MaxReadBufferSize,
            resumeWriterThreshold: options.MaxReadBufferSize / 2,
            useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(
            readerScheduler: loopSide,
            writerScheduler: applicationSide,
            pauseWriterThreshold: options.MaxWriteBufferSize,
            resumeWriterThreshold: options.MaxWriteBufferSize / 2,
            useSynchronizationContext: false));
        Transport = new DuplexPipe(_input.Reader, _output.Writer);

        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
        _features.Set<IEventLoopConnectionFeature>(this);
    }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    public override IDuplexPipe Transport { get; set; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _closedToken;
        set => _closedToken = value;
    }

    public Loop Loop => _loop;

    public EventLoopApplicationScheduling ApplicationScheduling => _scheduling;

    /// <summary>The pumps, on the connection's loop; completes when both have ended (Kestrel is done, or the connection failed).</summary>
    public async Task RunAsync()
    {
        try
        {
            Task output = PumpOutputAsync();
            await PumpInputAsync();
            await output;
        }
        finally
        {
            _done.TrySetResult();
        }
    }

    /// <summary>Socket to Kestrel: what the loop connection received is copied into Kestrel's input pipe.</summary>
    private async Task PumpInputAsync()
    {
        PipeReader from = _connection.Input;
        PipeWriter to = _input.Writer;
        Exception? error = null;
        try
        {
            while (true)
            {
                ReadResult result = await from.ReadAsync();
                if (result.IsCanceled)
                {
                    break; // Kestrel disposed the connection
                }

                ReadOnlySequence<byte> buffer = result.Buffer;
                bool kestrelDone = false;
                if (!buffer.IsEmpty)
                {
                    foreach (ReadOnlyMemory<byte> segment in buffer)
                    {
                        to.Write(segment.Span);
                    }

                    from.AdvanceTo(buffer.End);
                    FlushResult flush = await to.FlushAsync();
                    kestrelDone = flush.IsCompleted || flush.IsCanceled;
                }
                else
                {
                    from.AdvanceTo(buffer.End);
                }

                if (result.IsCompleted || kestrelDone)
                {
                    break; // the peer half-closed (Kestrel sees the end of its input), or Kestrel stopped reading
                }
            }
        }
        catch (Exception ex)
        {
            error = ToKestrel(ex);
        }
        finally
        {
            await to.CompleteAsync(error ?? (_aborted ? _abortReason : null));
            await from.CompleteAsync();
            FireConnectionClosed();
        }
    }

    /// <summary>Kestrel to socket: what Kestrel wrote is copied into the loop connection's output and flushed there.</summary>
    private async Task PumpOutputAsync()
    {
        PipeReader from = _output.Reader;
        PipeWriter to = _connection.Output;
        Exception? error = null;
        try
        {
            while (true)
            {
                ReadResult result = await from.ReadAsync();
                if (result.IsCanceled)
                {
                    return; // aborted: the connection is reset, nothing more is sent
                }

                ReadOnlySequence<byte> buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    FlushResult flush;
                    _sending = true;
                    if (buffer.IsSingleSegment)
                    {
                        // On the loop with nothing queued, the connection sends this straight from Kestrel's buffer (no
                        // copy); otherwise it is copied into the connection's pipe before WriteAsync returns.
                        ValueTask<FlushResult> writing = to.WriteAsync(buffer.First);
                        from.AdvanceTo(buffer.End);
                        flush = await writing;
                    }
                    else
                    {
                        foreach (ReadOnlyMemory<byte> segment in buffer)
                        {
                            to.Write(segment.Span);
                        }

                        from.AdvanceTo(buffer.End);
                        flush = await to.FlushAsync();
                    }

                    _sending = false;
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        return;
                    }
                }
                else
                {
                    from.AdvanceTo(buffer.End);
                }

                if (result.IsCompleted)
                {
                    break;
                }
            }

            // Kestrel completed its output: send what is left, then FIN (the peer may still send; Kestrel disposes when done).
            if (!_aborted)
            {
                await _connection.ShutdownSendAsync();
            }
        }
        catch (Exception ex)
        {
            error = _aborted ? null : ToKestrel(ex);
        }
        finally
        {
            await from.CompleteAsync(error);
        }
    }

    /// <summary>The loop's connection errors as Kestrel's transports report them.</summary>
    private static Exception ToKestrel(Exception ex) => ex switch
    {
        EventLoop.ConnectionResetException reset => new Microsoft.AspNetCore.Connections.ConnectionResetException(reset.Message, reset),
        EventLoop.ConnectionAbortedException aborted => new Microsoft.AspNetCore.Connections.ConnectionAbortedException(aborted.Message, aborted),
        _ => ex,
    };

    private void FireConnectionClosed()
    {
        if (Interlocked.Exchange(ref _closedFired, 1) == 0)
        {
            // Kestrel's callbacks on this token (RequestAborted) run on the thread pool, never on the loop, as Sockets' do.
            ThreadPool.UnsafeQueueUserWorkItem(static context => context._closed.Cancel(), this, preferLocal: false);
        }
    }

    /// <summary>
    /// Kestrel's abort (a client that closed, a timeout, <c>HttpContext.Abort()</c>): nothing more is sent, nothing more is
    /// read. As on Kestrel's Sockets transport (which shuts the socket down), the connection then closes with a FIN, unless
    /// a send is stuck behind a peer that does not read: then it is reset, since that send could never finish.
    /// </summary>
    public override void Abort(Microsoft.AspNetCore.Connections.ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;
        _aborted = true;
        try
        {
            _loop.CallSoonThreadSafe(static s => s.AbortOnLoop(), this);
        }
        catch (InvalidOperationException)
        {
            // The loop has closed, and with it the connection.
        }
    }

    private void AbortOnLoop()
    {
        if (_sending)
        {
            _connection.Abort(_abortReason); // the flush the output pump awaits fails; so does the input pump's read
        }
        else
        {
            _connection.Input.CancelPendingRead(); // the input pump stops; the server then closes the connection (FIN)
        }

        _output.Reader.CancelPendingRead(); // the output pump stops
    }

    public override async ValueTask DisposeAsync()
    {
        await _input.Reader.CompleteAsync().ConfigureAwait(false);
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        try
        {
            // The input pump may be waiting for bytes that will never come: wake it (on its loop, where its pipe is used).
            _loop.CallSoonThreadSafe(static connection => connection.Input.CancelPendingRead(), _connection);
        }
        catch (InvalidOperationException)
        {
            // The loop has closed, and with it the connection.
        }

        await _done.Task.ConfigureAwait(false);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
