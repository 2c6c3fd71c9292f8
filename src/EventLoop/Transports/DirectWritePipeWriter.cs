using System.IO.Pipelines;

namespace EventLoop.Transports;

/// <summary>
/// A connection's <see cref="Connection.Output"/>: the output pipe's writer, except that <see cref="WriteAsync"/> of a
/// buffer the application already has sends it straight from the caller's memory when nothing is queued before it, as
/// asyncio's and uvloop's <c>transport.write</c> do: the send pump is idle with everything before sent, nothing is
/// written and not yet flushed, and the call is on the loop thread. Only what the socket does not take at once is
/// copied into the pipe (and sent by the pump, in order, with the pipe's backpressure). An echo, a proxy or TLS
/// (whose encrypted frames arrive through <see cref="WriteAsync"/>) then sends without copying the bytes once more.
/// Every other member is the pipe's own.
/// </summary>
internal sealed class DirectWritePipeWriter(LoopConnection connection, PipeWriter inner) : PipeWriter
{
    private static readonly ValueTask<FlushResult> s_sent = new(new FlushResult(isCanceled: false, isCompleted: false));

    private volatile bool _flushCancelRequested; // CancelPendingFlush was called: the next write goes through the pipe, which reports it

    // Complete was called: every later write goes to the pipe, which refuses it. (After Complete(exception) the send
    // pump's ReadAsync throws, and it leaves without clearing its idle flag: the connection alone would still say yes.)
    private volatile bool _completed;

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
    {
        if (_flushCancelRequested)
        {
            // With no flush pending, the pipe keeps the cancellation for the next flush (its result says IsCanceled):
            // this write must be that flush.
            _flushCancelRequested = false;
        }
        else if (!source.IsEmpty && inner.UnflushedBytes == 0 && !cancellationToken.IsCancellationRequested && !_completed && connection.CanWriteDirect)
        {
            int written = connection.TryWriteDirect(source.Span);
            if (written == source.Length)
            {
                return s_sent;
            }

            if (written > 0)
            {
                source = source.Slice(written); // the rest waits in the pipe for the socket, after what went out
            }
        }

        return inner.WriteAsync(source, cancellationToken);
    }

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

    public override void CancelPendingFlush()
    {
        // The pipe first: a WriteAsync (on the loop) that saw the flag before the pipe held the cancellation would clear
        // the flag and flush past it, and the writes after it would go to the socket with the cancellation unreported.
        inner.CancelPendingFlush();
        _flushCancelRequested = true;
    }

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        inner.Complete(exception);
    }

    public override ValueTask CompleteAsync(Exception? exception = null)
    {
        _completed = true;
        return inner.CompleteAsync(exception);
    }

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override string? ToString() => inner.ToString();
}
