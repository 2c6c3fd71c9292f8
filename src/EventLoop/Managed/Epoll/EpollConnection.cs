using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using EventLoop.Internal;
using EventLoop.Transports;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// A TCP (or Unix domain socket) connection of the managed loop's own poller: a non-blocking socket registered edge-triggered with the
/// loop's epoll, read and written by the loop thread only when epoll says it is ready, as libuv's streams are.
/// <list type="bullet">
/// <item>Reads: on a readable edge, <c>recv</c> straight into the input pipe's pinned blocks until the socket is
/// empty (a short read), flushing after each; when the application has not consumed enough and the flush does not
/// complete, reading stops until it does, then resumes with a read at once (an edge will not come again for bytes
/// already waiting).</item>
/// <item>Writes: the application's flush runs the send pump inline; it <c>writev</c>s up to 16 segments, and when
/// the socket is full waits for the writable edge.</item>
/// <item>Half-close is <c>shutdown(SHUT_WR)</c>; abort closes with <c>SO_LINGER</c> 0 (RST); closing removes the
/// descriptor from epoll and closes it at once (no callback owed: nothing completes on another thread).</item>
/// </list>
/// </summary>
internal sealed class EpollConnection : LoopConnection, IEpollHandler, IValueTaskSource<int>
{
    private const int MinimumReadSize = 2048;
    private const int MaxBuffersPerWrite = 16;

    private readonly EpollPoller _poller;
    private readonly string _kind;
    private readonly Action _onInputFlushed;
    private int _fd;
    private long _token;
    private bool _closed;

    // Read side.
    private bool _readPaused;
    private bool _inputCompleted;
    private bool _peerDone; // the peer half-closed, reset or failed: read until recv says how, not just until a short read
    private ValueTask<FlushResult> _pendingInputFlush;

    // Write side: the pump waits for the writable edge here.
    private ManualResetValueTaskSourceCore<int> _writable;
    private bool _waitingWritable;
    private readonly IntPtr _vectors; // Linux.IoVec[MaxBuffersPerWrite], native
    private readonly MemoryHandle[] _writePins = new MemoryHandle[MaxBuffersPerWrite];

    /// <summary>Wraps a connected, non-blocking socket the caller counted in <see cref="Loop.OpenSocketCount"/>; it now owns it.</summary>
    internal EpollConnection(ManagedLoop loop, EpollPoller poller, int fd, TcpOptions options, AddressFamily family, EndPoint? remoteEndPoint = null)
        : this(loop, poller, fd, options, Linux.GetEndPoint(fd, family, peer: false), Linux.GetEndPoint(fd, family, peer: true) ?? remoteEndPoint, "TCP")
    {
    }

    /// <summary>Wraps a connected socket of any stream kind (TCP, Unix) with the addresses given; <paramref name="kind"/> names it in messages.</summary>
    internal unsafe EpollConnection(ManagedLoop loop, EpollPoller poller, int fd, TcpOptions options, EndPoint? localEndPoint, EndPoint? remoteEndPoint, string kind)
        : base(loop, options, localEndPoint, remoteEndPoint)
    {
        _kind = kind;
        _poller = poller;
        _fd = fd;
        _onInputFlushed = OnInputFlushed;
        _vectors = (IntPtr)NativeMemory.Alloc((nuint)(sizeof(Linux.IoVec) * MaxBuffersPerWrite));
        _writable.RunContinuationsAsynchronously = false; // resumed inline from the poll, on the loop thread
    }

    /// <summary>Registers with epoll and starts the send pump. Loop thread. On failure the socket is closed and the exception leaves.</summary>
    internal void Start()
    {
        long token = _poller.Add(_fd, Linux.EpollIn | Linux.EpollOut | Linux.EpollRdHup | Linux.EpollEt, this);
        if (token < 0)
        {
            var error = Linux.CreateException((int)token, "epoll_ctl");
            CloseSocket(reset: true);
            throw error;
        }

        _token = token;
        if (_writeOnly)
        {
            // A pipe's write end: nothing will ever be read. Its edges still come (EPOLLERR when the reader closes),
            // and wake a pump waiting to write, whose write then fails with EPIPE.
            _inputCompleted = true;
            _input.Writer.Complete();
        }

        _writing = SendLoopAsync();
    }

    public void OnEvents(uint events)
    {
        if (_closed)
        {
            return;
        }

        if ((events & (Linux.EpollRdHup | Linux.EpollHup | Linux.EpollErr)) != 0)
        {
            // Edge-triggered: this edge may also have brought the last bytes, and no other edge will follow for
            // the end of stream or the error behind them. Remember it even while reading is paused.
            _peerDone = true;
        }

        if ((events & (Linux.EpollIn | Linux.EpollRdHup | Linux.EpollHup | Linux.EpollErr)) != 0)
        {
            ReadAvailable();
        }

        if (_waitingWritable && (events & (Linux.EpollOut | Linux.EpollHup | Linux.EpollErr)) != 0)
        {
            _waitingWritable = false;
            _writable.SetResult(0); // the pump retries its write, which reports any error
        }
    }

    // ------------------------------------------------------------------ reading

    private unsafe void ReadAvailable()
    {
        while (!_inputCompleted && !_readPaused && !_closed)
        {
            Memory<byte> memory = _input.Writer.GetMemory(MinimumReadSize);
            nint received;
            fixed (byte* buffer = memory.Span)
            {
                received = _isPipe ? Linux.Read(_fd, buffer, memory.Length) : Linux.Receive(_fd, buffer, memory.Length);
            }

            if (received > 0)
            {
                _input.Writer.Advance((int)received);
                _loop.CountRead(received);
                ValueTask<FlushResult> flush = _input.Writer.FlushAsync(); // the application's read resumes inline here
                if (!flush.IsCompletedSuccessfully)
                {
                    // The application has not consumed enough: stop reading until it has.
                    _readPaused = true;
                    _pendingInputFlush = flush;
                    flush.GetAwaiter().UnsafeOnCompleted(_onInputFlushed);
                    return;
                }

                if (flush.Result.IsCompleted)
                {
                    CompleteInput(null); // the application stopped reading
                    return;
                }

                if (received < memory.Length && !_peerDone)
                {
                    return; // a short read: the socket is empty, and the next bytes bring a new edge
                }
            }
            else if (received == 0)
            {
                CompleteInput(EndOfStream()); // the peer half-closed: end of stream
                return;
            }
            else if (received == -Linux.EAGAIN)
            {
                return;
            }
            else if (received != -Linux.EINTR)
            {
                CompleteInput(TranslateError(Linux.CreateException((int)received, "Receiving"), "Receiving"));
                return;
            }
        }
    }

    /// <summary>The application consumed enough of the input: read again at once (posted to the loop by the pipe).</summary>
    private void OnInputFlushed()
    {
        FlushResult result;
        try
        {
            result = _pendingInputFlush.GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            result = new FlushResult(isCanceled: false, isCompleted: true);
        }

        _pendingInputFlush = default;
        _readPaused = false;
        if (_inputCompleted)
        {
            return;
        }

        if (result.IsCompleted)
        {
            CompleteInput(null);
            return;
        }

        ReadAvailable();
    }

    /// <summary>Ends the input pipe: end of stream (null), a failure, or the abort reason.</summary>
    private void CompleteInput(Exception? error)
    {
        if (_inputCompleted)
        {
            return;
        }

        _inputCompleted = true;
        _input.Writer.CancelPendingFlush();

        // Receiving stopped. Signalled first: completing the pipe runs the application's pending read inline,
        // and it may look at ConnectionClosed.
        SignalClosed();
        _input.Writer.Complete(error);
    }

    // ------------------------------------------------------------------ writing

    private async Task SendLoopAsync()
    {
        PipeReader reader = _output.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                _sendIdle = true; // everything before is sent: a write may go straight to the socket (TryWriteNow)
                ReadResult result = await reader.ReadAsync().ConfigureAwait(true);
                _sendIdle = false;
                if (!_loop.IsOnLoopThread)
                {
                    // The application flushed from another thread, and the pump resumed inline there: continue on
                    // the loop, which owns the descriptor and its epoll registration.
                    await new LoopSwitch(_loop);
                }

                ReadOnlySequence<byte> remaining = result.Buffer;
                while (!remaining.IsEmpty && !_closed)
                {
                    nint status = WriteSome(ref remaining);
                    if (status == -Linux.EAGAIN)
                    {
                        _waitingWritable = true;
                        _writable.Reset();
                        await new ValueTask<int>(this, _writable.Version).ConfigureAwait(false); // completed inline, on the loop
                    }
                    else if (status < 0 && status != -Linux.EINTR)
                    {
                        throw TranslateError(Linux.CreateException((int)status, "Sending"), "Sending") ?? new ConnectionAbortedException("The connection was closed.");
                    }
                }

                _loop.CountWritten(result.Buffer.Length - remaining.Length);
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled || _closed)
                {
                    break;
                }
            }

            if (!_closed && !_isPipe) // a pipe has no half-close: its reader sees end of stream when it is closed
            {
                int status = Linux.Shutdown(_fd, Linux.ShutWr); // everything was sent: half-close (FIN)
                if (status < 0 && status != -Linux.ENOTCONN)
                {
                    throw TranslateError(Linux.CreateException(status, "Shutting down the send side"), "Sending") ?? new ConnectionAbortedException("The connection was closed.");
                }
            }
        }
        catch (Exception ex)
        {
            error = SendFailed(ex);
        }

        _sendIdle = false; // also when the read threw (the writer completed with an error): nothing may go direct now

        await reader.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
    }

    /// <summary>Writes up to <see cref="MaxBuffersPerWrite"/> segments of <paramref name="remaining"/>; moves past what went out. Returns bytes written or a negated errno.</summary>
    private unsafe nint WriteSome(ref ReadOnlySequence<byte> remaining)
    {
        int count = 0;
        MemoryHandle[] pins = _writePins;
        var vectors = (Linux.IoVec*)_vectors;
        try
        {
            foreach (ReadOnlyMemory<byte> segment in remaining)
            {
                if (segment.IsEmpty)
                {
                    continue;
                }

                if (count == MaxBuffersPerWrite)
                {
                    break;
                }

                pins[count] = segment.Pin();
                vectors[count].Base = (byte*)pins[count].Pointer;
                vectors[count].Length = (nuint)segment.Length;
                count++;
            }

            nint written = Linux.WriteVector(_fd, vectors, count);
            if (written > 0)
            {
                remaining = remaining.Slice(written);
            }

            return written;
        }
        finally
        {
            for (int i = 0; i < count; i++)
            {
                pins[i].Dispose();
                pins[i] = default;
            }
        }
    }

    /// <summary>
    /// The direct write (see <see cref="LoopConnection.TryWriteNow"/>): one non-blocking <c>writev</c> from the caller's
    /// memory. Loop thread, with the send pump idle (so not waiting for the writable edge).
    /// </summary>
    private protected override unsafe int TryWriteNow(ReadOnlySpan<byte> source)
    {
        if (_closed)
        {
            return -1;
        }

        nint written;
        fixed (byte* data = source)
        {
            Linux.IoVec vector;
            vector.Base = data;
            vector.Length = (nuint)source.Length;
            written = Linux.WriteVector(_fd, &vector, 1);
        }

        if (written >= 0)
        {
            _loop.CountWritten(written);
            return (int)written;
        }

        return written == -Linux.EAGAIN ? 0 : -1; // EINTR or an error: the pump's own write retries, or meets and reports it
    }

    int IValueTaskSource<int>.GetResult(short token) => _writable.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _writable.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _writable.OnCompleted(continuation, state, token, flags);

    // ------------------------------------------------------------------ closing

    /// <summary>Removes the socket from epoll and closes it (with RST when <paramref name="reset"/>). Once.</summary>
    private unsafe void CloseSocket(bool reset)
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        LeaveShutdownList();
        if (_token != 0)
        {
            _poller.Remove(_token, _fd);
        }

        if (reset && !_isPipe)
        {
            Linux.SetResetOnClose(_fd);
        }

        Linux.Close(_fd);
        _fd = -1;
        _loop.OpenSocketCount--;
        NativeMemory.Free((void*)_vectors);
        if (_waitingWritable)
        {
            _waitingWritable = false;
            _writable.SetResult(0); // the pump sees the connection closed and ends
        }
    }

    private protected override void OnAbort()
    {
        CloseSocket(reset: true);

        // Pending and later reads and flushes fail with the reason: the input ends with it, and the send pump
        // (woken wherever it waits) completes the output with it.
        CompleteInput(_abortReason);
        _output.Reader.CancelPendingRead();
    }

    private protected override async ValueTask DisposeCoreAsync()
    {
        await FinishSendingAsync().ConfigureAwait(true);

        _disposed = true;
        CloseSocket(reset: false);
        CompleteInput(null);
        await _input.Reader.CompleteAsync().ConfigureAwait(true);
        _output.Reader.CancelPendingRead();
        try
        {
            await _writing.ConfigureAwait(true);
        }
        catch (Exception)
        {
            // Already surfaced.
        }

        SignalClosed();
    }

    public override string ToString() => $"{_kind} (managed epoll) {LocalEndPoint} <-> {RemoteEndPoint}";
}
