using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;

namespace EventLoop.Transports.Tls;

/// <summary>
/// The stream <see cref="System.Net.Security.SslStream"/> reads ciphertext from and writes it to: the inner
/// connection's own pipes, with no <c>AsStream()</c> adapter in between.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Reads take what the inner input holds, and otherwise wait. A zero-byte read waits for bytes and takes none:
/// SslStream passes the TLS layer's zero-byte reads through, so an idle connection holds no buffer. The first read also takes bytes a STARTTLS
/// caller examined without consuming them (<c>AdvanceTo(consumed, examined)</c> would make a plain read wait for
/// more: a client hello that came with the STARTTLS command would be stranded).</item>
/// <item>Every wait completes on the loop thread with no context current, so SslStream continues inline there
/// (see <see cref="SslStreamContext"/>); a pending read is this stream's own reusable <see cref="IValueTaskSource{TResult}"/>.</item>
/// <item>Writes copy into the inner output and flush, so each TLS record reaches the transport at once and the
/// inner pipe's backpressure holds SslStream's writes back. Inside a batch (<see cref="BeginBatch"/>) they only
/// copy, and the send pump flushes once for all the records of one application write.</item>
/// <item>Loop thread only; blocking <see cref="Read(byte[], int, int)"/> and <see cref="Write(byte[], int, int)"/> throw.</item>
/// </list>
/// </remarks>
internal sealed class TlsTransportStream : Stream, IValueTaskSource<int>
{
    private readonly Connection _inner;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly Action _onReadCompleted;
    private readonly byte[] _firstBytes = new byte[8];
    private int _firstCount;
    private bool _firstRead = true;
    private bool _batching;
    private bool _stopped;

    // The one read SslStream has pending at a time.
    private ManualResetValueTaskSourceCore<int> _read;
    private ValueTask<ReadResult> _pendingRead;
    private Memory<byte> _readBuffer;
    private bool _readPending;

    public TlsTransportStream(Connection inner)
    {
        _inner = inner;
        _input = inner.Input;
        _output = inner.Output;
        _onReadCompleted = OnReadCompleted;
    }

    /// <summary>The first bytes the peer sent (up to 8): a handshake failure says "plaintext" when they are not TLS.</summary>
    public ReadOnlySpan<byte> FirstBytes => _firstBytes.AsSpan(0, _firstCount);

    /// <summary>
    /// The size of the buffer SslStream waits to fill, or -1 when it is not waiting: 0 for an idle connection (a
    /// zero-byte read), so that neither the pool nor SslStream holds a buffer for it. Tests read it.
    /// </summary>
    internal int WaitingReadSize => _readPending ? _readBuffer.Length : -1;

    /// <summary>The inner connection ended its input (end of stream) while SslStream read.</summary>
    public bool SawEndOfStream { get; private set; }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>From now on writes only copy into the inner output; <see cref="EndBatch"/> and a flush send them.</summary>
    public void BeginBatch() => _batching = true;

    /// <summary>Writes flush again.</summary>
    public void EndBatch() => _batching = false;

    /// <summary>
    /// Ends SslStream's reading: a read waiting on the inner input wakes and fails, and later reads fail at once.
    /// How a graceful close stops the receive pump before the inner connection is disposed.
    /// </summary>
    public void StopReading()
    {
        _stopped = true;
        _input.CancelPendingRead();
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            if (_stopped)
            {
                throw Stopped();
            }

            if (_firstRead)
            {
                _firstRead = false;
                if (TakeExamined(buffer.Span) is int taken and > 0)
                {
                    return new ValueTask<int>(taken);
                }
            }

            if (_input.TryRead(out ReadResult result))
            {
                return new ValueTask<int>(Consume(result, buffer.Span));
            }

            ValueTask<ReadResult> read = _input.ReadAsync(cancellationToken);
            if (read.IsCompleted)
            {
                return new ValueTask<int>(Consume(read.Result, buffer.Span));
            }

            _read.Reset();
            _pendingRead = read;
            _readBuffer = buffer;
            _readPending = true;
            read.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onReadCompleted);
            return new ValueTask<int>(this, _read.Version);
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<int>(ex);
        }
    }

    /// <summary>
    /// Bytes already in the inner input that a plain read would not return because the plaintext protocol examined
    /// them: <see cref="PipeReader.CancelPendingRead"/> makes the next read return everything unconsumed at once.
    /// </summary>
    private int TakeExamined(Span<byte> destination)
    {
        _input.CancelPendingRead();
        if (!_input.TryRead(out ReadResult result))
        {
            return 0;
        }

        if (result.Buffer.IsEmpty && !result.IsCompleted)
        {
            _input.AdvanceTo(result.Buffer.Start); // nothing buffered: the cancellation is used up, read normally
            return 0;
        }

        return Consume(new ReadResult(result.Buffer, isCanceled: false, result.IsCompleted), destination);
    }

    /// <summary>The inner input's read completed (inline where the transport flushed, on the loop thread).</summary>
    private void OnReadCompleted()
    {
        ValueTask<ReadResult> read = _pendingRead;
        Memory<byte> buffer = _readBuffer;
        _pendingRead = default;
        _readBuffer = default;
        _readPending = false;
        int count = 0;
        Exception? error = null;
        try
        {
            count = Consume(read.GetAwaiter().GetResult(), buffer.Span);
        }
        catch (Exception ex)
        {
            error = ex;
        }

        SslStreamContext.CompleteWithoutContext(static s => s.Stream.CompleteRead(s.Count, s.Error), (Stream: this, Count: count, Error: error));
    }

    private void CompleteRead(int count, Exception? error)
    {
        if (error is null)
        {
            _read.SetResult(count);
        }
        else
        {
            _read.SetException(error);
        }
    }

    private int Consume(ReadResult result, Span<byte> destination)
    {
        ReadOnlySequence<byte> data = result.Buffer;
        if (result.IsCanceled || _stopped)
        {
            _input.AdvanceTo(data.Start);
            throw Stopped();
        }

        if (data.IsEmpty)
        {
            _input.AdvanceTo(data.End);
            SawEndOfStream = result.IsCompleted;
            return 0; // only an ended input is empty here
        }

        if (destination.IsEmpty)
        {
            // A zero-byte read: bytes are here. Consume and examine nothing, so the next read returns them at once.
            _input.AdvanceTo(data.Start);
            return 0;
        }

        int count = (int)Math.Min(destination.Length, data.Length);
        ReadOnlySequence<byte> taken = data.Slice(0, count);
        taken.CopyTo(destination);
        if (_firstCount < _firstBytes.Length)
        {
            int more = Math.Min(_firstBytes.Length - _firstCount, count);
            destination[..more].CopyTo(_firstBytes.AsSpan(_firstCount));
            _firstCount += more;
        }

        _input.AdvanceTo(taken.End);
        return count;
    }

    private static OperationCanceledException Stopped() => new("The TLS connection stopped reading its transport (it is closing).");

    int IValueTaskSource<int>.GetResult(short token) => _read.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _read.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _read.OnCompleted(continuation, state, token, flags);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_batching)
        {
            _output.Write(buffer.Span);
            return default;
        }

        try
        {
            return WhenFlushed(_output.WriteAsync(buffer, cancellationToken));
        }
        catch (Exception ex)
        {
            return ValueTask.FromException(ex);
        }
    }

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        try
        {
            return WhenFlushed(_output.FlushAsync(cancellationToken)).AsTask();
        }
        catch (Exception ex)
        {
            return Task.FromException(ex);
        }
    }

    /// <summary>Sends what a batch copied (see <see cref="BeginBatch"/>).</summary>
    public ValueTask FlushBatchAsync() => WhenFlushed(_output.FlushAsync());

    /// <summary>
    /// A flush of the inner output, as SslStream must see it: done, or failed if the connection under TLS stopped
    /// sending. A flush waits only while the inner output is full (backpressure), so the wait may allocate.
    /// </summary>
    private static ValueTask WhenFlushed(ValueTask<FlushResult> flush)
    {
        if (flush.IsCompleted)
        {
            CheckFlush(flush.Result);
            return default;
        }

        // The pipe runs this on the loop (its writer scheduler posts there), not via a task, which would hop to the pool.
        var done = new TaskCompletionSource(TaskCreationOptions.None);
        flush.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(() =>
        {
            Exception? error = null;
            try
            {
                CheckFlush(flush.GetAwaiter().GetResult());
            }
            catch (Exception ex)
            {
                error = ex;
            }

            SslStreamContext.CompleteWithoutContext(static s =>
            {
                if (s.Error is null)
                {
                    s.Done.SetResult();
                }
                else
                {
                    s.Done.SetException(s.Error);
                }
            }, (Done: done, Error: error));
        });
        return new ValueTask(done.Task);
    }

    private static void CheckFlush(FlushResult result)
    {
        if (result.IsCompleted)
        {
            // The inner connection stopped sending (closed or reset): SslStream must not think the record went out.
            throw new IOException("The connection under TLS was closed while sending.");
        }

        if (result.IsCanceled)
        {
            throw new OperationCanceledException("A flush of the connection under TLS was cancelled.");
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("The TLS transport is asynchronous only: blocking would stall the loop.");

    public override void Write(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("The TLS transport is asynchronous only: blocking would stall the loop.");

    public override void Flush()
    {
        // SslStream calls it only from synchronous paths, which this stream does not support; nothing is held back.
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override string ToString() => $"TLS transport over {_inner}";
}
