using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// A TCP connection on libuv's own stream (<c>uv_tcp_t</c>), as Kestrel's libuv transport did it:
/// <list type="bullet">
/// <item>Reads: <c>uv_read_start</c> with an alloc callback that hands libuv the input pipe's next pinned
/// block (<see cref="PipeWriter.GetMemory"/>), so bytes land in the pipe with no copy. When the application
/// has not consumed enough and the pipe's <c>FlushAsync</c> does not complete, reading stops
/// (<c>uv_read_stop</c>) until it does: backpressure towards the peer.</item>
/// <item>Writes: the application's flush runs the send pump inline; it tries <c>uv_try_write</c> first (most
/// writes end there, in the same call) and queues what is left with the connection's one reusable write
/// request, waiting for its callback before taking more from the pipe.</item>
/// <item>Half-close is <c>uv_shutdown</c>; abort is <c>uv_tcp_close_reset</c> (RST); every path ends in
/// <c>uv_close</c>, whose callback frees the native memory.</item>
/// </list>
/// Everything runs on the loop thread; <see cref="Connection.Abort"/> and <see cref="Connection.DisposeAsync"/> may be
/// called from elsewhere (they hop to the loop), and a flush from another thread resumes the send pump on the loop.
/// </summary>
internal sealed class LibuvTcpConnection : LoopConnection, IValueTaskSource<int>, LibuvLoop.IWatcherOwner
{
    private const int MinimumReadSize = 2048;
    private const int MaxBuffersPerWrite = 16;

    private new readonly LibuvLoop _loop;
    private readonly string _kind;
    private readonly bool _isTcp; // a reset (RST) on abort; other streams just close
    private readonly Action _onInputFlushed;
    private readonly IntPtr _self; // GCHandle, stored in the handle's header and in each request's data

    private IntPtr _handle;
    private bool _closing;
    private TaskCompletionSource? _handleClosed;

    // Read side.
    private bool _reading;
    private bool _inputCompleted;
    private MemoryHandle _readPin;
    private int _readLength;      // the size of the buffer the current read fills
    private bool _flushDeferred;  // bytes read into the pipe, not yet flushed to the application (see Read)
    private bool _largeReads;     // reads fill pool blocks: offer a large block to the next read (see Alloc)
    private readonly bool _largeReadsAllowed; // the pause threshold is large enough for a large read to overshoot it
    private ValueTask<FlushResult> _pendingInputFlush;

    // Write side: one write (or shutdown) in flight at a time.
    private IntPtr _writeReq;
    private IntPtr _shutdownReq;
    private unsafe Uv.Buf* _bufs;
    private readonly MemoryHandle[] _writePins = new MemoryHandle[MaxBuffersPerWrite];
    private int _writePinCount;
    private ManualResetValueTaskSourceCore<int> _writeDone;

    /// <summary>Wraps a connected (or accepted) handle. The handle's header must not have an owner yet.</summary>
    internal LibuvTcpConnection(LibuvLoop loop, IntPtr handle, TcpOptions options, AddressFamily family)
        : this(loop, handle, options, LibuvTcp.GetEndPoint(handle, family, peer: false), LibuvTcp.GetEndPoint(handle, family, peer: true), "TCP")
    {
    }

    /// <summary>
    /// Wraps a connected stream handle of any kind libuv streams share this machinery with (a <c>uv_pipe_t</c> on a
    /// Unix domain socket), with the addresses given; <paramref name="kind"/> names it in messages.
    /// </summary>
    internal unsafe LibuvTcpConnection(LibuvLoop loop, IntPtr handle, TcpOptions options, EndPoint? localEndPoint, EndPoint? remoteEndPoint, string kind)
        : base(loop, options, localEndPoint, remoteEndPoint)
    {
        _kind = kind;
        _isTcp = Uv.GetHandleType(handle) == Uv.HandleType.Tcp;
        _loop = loop;
        _handle = handle;
        _onInputFlushed = OnInputFlushed;
        // A read may land past the input pipe's pause threshold by its buffer's size: large reads only where that stays
        // a small part of the threshold (the default 1 MiB allows them; a 64 KiB threshold keeps 64 KiB reads).
        _largeReadsAllowed = options.InputPauseThreshold >= 4L * PinnedBlockPool.LargeBlockSize;
        _self = GCHandle.ToIntPtr(GCHandle.Alloc(this));
        LibuvLoop.Header(handle)->Owner = _self;
    }

    /// <summary>Starts reading and the send pump. Loop thread.</summary>
    internal void Start()
    {
        if (_writeOnly)
        {
            // A pipe's write end (libuv refuses uv_read_start on it): nothing will ever be read.
            _inputCompleted = true;
            _input.Writer.Complete();
        }

        StartReading();
        _writing = SendLoopAsync();
    }

    // ------------------------------------------------------------------ reading

    private unsafe void StartReading()
    {
        if (_reading || _closing || _inputCompleted)
        {
            return;
        }

        int status = Uv.ReadStart(_handle, &OnAlloc, &OnRead);
        if (status < 0)
        {
            CompleteInput(Translate(status, "uv_read_start"));
            return;
        }

        _reading = true;
        _loop.NoteWatcherStarted(this, _handle, writable: false);
    }

    bool LibuvLoop.IWatcherOwner.IsOpen(IntPtr handle) => !_closing && _handle == handle;

    private void StopReading()
    {
        if (_reading)
        {
            _reading = false;
            if (!_closing)
            {
                Uv.ReadStop(_handle);
            }
        }
    }

    /// <summary>
    /// The buffer for libuv's next read: the rest of the pipe's current block (at least 2 KiB), or, while this
    /// connection's reads fill whole blocks, a fresh large block (128 KiB, still pinned and pooled), so a 100 KiB
    /// message is one <c>read</c> instead of two, as in uvloop, which reads into one 256 KiB buffer. libuv takes one
    /// buffer per read (no <c>readv</c>), so a larger buffer is the only way to read more per system call without a copy.
    /// Only with a pause threshold of 512 KiB or more (the default is 1 MiB), so a read past it stays a small part of it.
    /// </summary>
    private unsafe void Alloc(Uv.Buf* buf)
    {
        Memory<byte> memory = _input.Writer.GetMemory(_largeReads ? PinnedBlockPool.LargeBlockSize : MinimumReadSize);
        _readPin = memory.Pin();
        _readLength = memory.Length;
        buf->Base = (byte*)_readPin.Pointer;
        buf->Length = (nuint)memory.Length;
    }

    private void Read(nint nread)
    {
        _readPin.Dispose();
        _readPin = default;
        if (nread > 0)
        {
            _input.Writer.Advance((int)nread);
            _loop.CountRead(nread);
            if (nread == _readLength && nread >= PinnedBlockPool.BlockSize / 2 && _largeReadsAllowed)
            {
                _largeReads = true; // the read filled a buffer of half a block or more: bytes arrive faster than blocks take them
            }
            else if (nread < PinnedBlockPool.BlockSize / 4)
            {
                _largeReads = false; // small messages again: go back to the rest of the current block
            }

            if (nread == _readLength && !_flushDeferred)
            {
                // The read filled its buffer, so libuv reads again at once (it stops at a short read or EAGAIN): hand
                // the application everything in one flush after that read, not this part now. An app that answers
                // inline (an echo) then answers a message larger than a pool block with one write, not one per
                // block. The loop flushes at the end of the poll phase whatever is still deferred (libuv caps its
                // reads per event), so no bytes wait past this iteration.
                _flushDeferred = true;
                _loop.DeferInputFlush(this);
                return;
            }

            FlushInput();
        }
        else if (nread == Uv.EOF)
        {
            FlushDeferredInput();
            // libuv reports end of stream when epoll says POLLHUP after a partial read, without reading again,
            // so a reset that follows data arrives here as EOF with ECONNRESET still pending on the socket. Ask
            // the socket, so a reset peer is a ConnectionResetException on libuv as on the managed loop.
            int pending = Libc.TakePendingSocketError(Uv.Fileno(_handle));
            CompleteInput(pending < 0 ? Translate(pending, "Receiving") : EndOfStream()); // else the peer half-closed: end of stream
        }
        else if (nread < 0)
        {
            FlushDeferredInput();
            CompleteInput(Translate((int)nread, "Receiving"));
        }
        else
        {
            // nread == 0: nothing read this time (EAGAIN); libuv calls again when there is.
            FlushDeferredInput();
        }
    }

    /// <summary>Flushes bytes a full read left unflushed (see <see cref="Read"/>). Loop thread.</summary>
    internal void FlushDeferredInput()
    {
        if (_flushDeferred && !_inputCompleted && !_closing)
        {
            FlushInput();
        }

        _flushDeferred = false;
    }

    private void FlushInput()
    {
        _flushDeferred = false;
        ValueTask<FlushResult> flush = _input.Writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            if (flush.Result.IsCompleted)
            {
                CompleteInput(null); // the application stopped reading
            }

            return;
        }

        // The application has not consumed enough: stop reading from the socket until it has.
        StopReading();
        _pendingInputFlush = flush;
        flush.GetAwaiter().UnsafeOnCompleted(_onInputFlushed);
    }

    /// <summary>The application consumed enough of the input: read again (posted to the loop by the pipe).</summary>
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
        if (_inputCompleted)
        {
            return;
        }

        if (result.IsCompleted)
        {
            CompleteInput(null);
            return;
        }

        StartReading();
    }

    /// <summary>Ends the input pipe: end of stream (null), a failure, or the abort reason.</summary>
    private void CompleteInput(Exception? error)
    {
        if (_inputCompleted)
        {
            return;
        }

        _inputCompleted = true;
        StopReading();
        _input.Writer.CancelPendingFlush();

        // Receiving stopped (end of stream, reset, abort or dispose). Signalled first: completing the pipe
        // runs the application's pending read inline, and it may look at ConnectionClosed.
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
                    // The application flushed from another thread, and the pump resumed inline there. libuv may
                    // only be called on the loop thread: continue there.
                    await new LoopSwitch(_loop);
                }

                ReadOnlySequence<byte> remaining = result.Buffer;
                while (!remaining.IsEmpty && !_closing)
                {
                    int status = StartWrite(ref remaining, out bool pending);
                    if (pending)
                    {
                        // Completed inline from the write callback, on the loop thread.
                        status = await new ValueTask<int>(this, _writeDone.Version).ConfigureAwait(false);
                    }

                    ReleaseWritePins();
                    if (status < 0)
                    {
                        throw Translate(status, "Sending") ?? new ConnectionAbortedException("The connection was closed.");
                    }
                }

                _loop.CountWritten(result.Buffer.Length - remaining.Length);
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled || _closing)
                {
                    break;
                }
            }

            if (!_closing && !_isPipe) // a pipe has no half-close: its reader sees end of stream when it is closed
            {
                // Everything was sent: half-close (FIN).
                int status = StartShutdown();
                if (status == 0)
                {
                    status = await new ValueTask<int>(this, _writeDone.Version).ConfigureAwait(false);
                }

                if (status < 0 && status != Uv.ENOTCONN)
                {
                    throw Translate(status, "Shutting down the send side") ?? new ConnectionAbortedException("The connection was closed.");
                }
            }
        }
        catch (Exception ex)
        {
            error = SendFailed(ex);
        }

        _sendIdle = false; // also when the read threw (the writer completed with an error): nothing may go direct now

        ReleaseWritePins();
        await reader.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
    }

    /// <summary>
    /// Pins up to <see cref="MaxBuffersPerWrite"/> segments of <paramref name="remaining"/>, writes what the
    /// socket takes now (<c>uv_try_write</c>) and queues the rest (<c>uv_write</c>, <paramref name="pending"/>).
    /// Returns a libuv status. <paramref name="remaining"/> moves past the segments taken.
    /// </summary>
    private unsafe int StartWrite(ref ReadOnlySequence<byte> remaining, out bool pending)
    {
        pending = false;
        if (_bufs == null)
        {
            _bufs = (Uv.Buf*)NativeMemory.Alloc((nuint)(sizeof(Uv.Buf) * MaxBuffersPerWrite));
        }

        int count = 0;
        long total = 0;
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

            MemoryHandle pin = segment.Pin();
            _writePins[count] = pin;
            _bufs[count].Base = (byte*)pin.Pointer;
            _bufs[count].Length = (nuint)segment.Length;
            total += segment.Length;
            count++;
            _writePinCount = count;
        }

        remaining = remaining.Slice(total);
        if (count == 0)
        {
            return 0;
        }

        int written = Uv.TryWrite(_handle, _bufs, (uint)count);
        if (written == total)
        {
            return 0;
        }

        if (written < 0)
        {
            if (written != Uv.EAGAIN && written != Uv.ENOSYS)
            {
                return written;
            }

            written = 0;
        }

        // Skip what went out, queue the rest.
        int first = 0;
        while (written > 0)
        {
            int length = (int)_bufs[first].Length;
            if (written >= length)
            {
                written -= length;
                first++;
            }
            else
            {
                _bufs[first].Base += written;
                _bufs[first].Length -= (nuint)written;
                written = 0;
            }
        }

        _writeDone.Reset();
        _writeReq = _writeReq != IntPtr.Zero ? _writeReq : LibuvTcp.NewRequest(_loop, Uv.ReqType.Write);
        Uv.SetData(_writeReq, _self);
        int status = Uv.Write(_writeReq, _handle, _bufs + first, (uint)(count - first), &OnWriteDone);
        pending = status == 0;
        if (pending)
        {
            _loop.NoteWatcherStarted(this, _handle, writable: true);
        }

        return status;
    }

    /// <summary>
    /// The direct write (see <see cref="LoopConnection.TryWriteNow"/>): <c>uv_try_write</c> from the caller's memory, which
    /// libuv does not keep past the call. Loop thread, with the send pump idle. (libuv itself also refuses a try-write,
    /// with EAGAIN, while a queued <c>uv_write</c> has bytes left, so a direct write cannot overtake the pump's.)
    /// </summary>
    private protected override unsafe int TryWriteNow(ReadOnlySpan<byte> source)
    {
        if (_closing)
        {
            return -1;
        }

        int written;
        fixed (byte* data = source)
        {
            Uv.Buf buf;
            buf.Base = data;
            buf.Length = (nuint)source.Length;
            written = Uv.TryWrite(_handle, &buf, 1);
        }

        if (written >= 0)
        {
            _loop.CountWritten(written);
            return written;
        }

        return written == Uv.EAGAIN ? 0 : -1; // an error: the pump's own write meets it and reports it as usual
    }

    private unsafe int StartShutdown()
    {
        _writeDone.Reset();
        _shutdownReq = _shutdownReq != IntPtr.Zero ? _shutdownReq : LibuvTcp.NewRequest(_loop, Uv.ReqType.Shutdown);
        Uv.SetData(_shutdownReq, _self);
        return Uv.Shutdown(_shutdownReq, _handle, &OnShutdownDone);
    }

    private void ReleaseWritePins()
    {
        for (int i = 0; i < _writePinCount; i++)
        {
            _writePins[i].Dispose();
            _writePins[i] = default;
        }

        _writePinCount = 0;
    }

    int IValueTaskSource<int>.GetResult(short token) => _writeDone.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _writeDone.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _writeDone.OnCompleted(continuation, state, token, flags);

    // ------------------------------------------------------------------ closing

    /// <summary>A libuv status as the exception the pipes carry (see <see cref="LoopConnection.TranslateError"/>).</summary>
    private Exception? Translate(int status, string operation) => TranslateError(Uv.CreateException(status, operation), operation);

    /// <summary>Starts closing the handle (with RST when <paramref name="reset"/>); its callback frees it.</summary>
    private unsafe void CloseHandle(bool reset)
    {
        if (_closing)
        {
            return;
        }

        _closing = true;
        _reading = false;
        LeaveShutdownList();
        _loop.PendingIo++; // until the close callback
        _handleClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        reset &= _isTcp; // a reset is TCP's; other streams just close
        if (!reset || Uv.TcpCloseReset(_handle, &OnHandleClosed) != 0)
        {
            Uv.Close(_handle, &OnHandleClosed);
        }
    }

    /// <summary>The close callback: every request callback has run (cancelled ones too). Frees the rest.</summary>
    private unsafe void HandleClosed()
    {
        _loop.PendingIo--;
        _handle = IntPtr.Zero;
        LibuvTcp.FreeRequest(_loop, ref _writeReq);
        LibuvTcp.FreeRequest(_loop, ref _shutdownReq);
        if (_bufs != null)
        {
            NativeMemory.Free(_bufs);
            _bufs = null;
        }

        _handleClosed!.TrySetResult();
    }

    private protected override void OnAbort()
    {
        CloseHandle(reset: true);

        // Pending and later reads and flushes fail with the reason: the input ends with it, and the send
        // pump (woken wherever it waits) completes the output with it.
        CompleteInput(_abortReason);
        _output.Reader.CancelPendingRead();
    }

    private protected override async ValueTask DisposeCoreAsync()
    {
        await FinishSendingAsync().ConfigureAwait(true);

        _disposed = true;
        CloseHandle(reset: false);
        CompleteInput(null);
        await _input.Reader.CompleteAsync().ConfigureAwait(true);
        _output.Reader.CancelPendingRead();
        await _handleClosed!.Task.ConfigureAwait(true);
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

    public override string ToString() => $"{_kind} (libuv) {LocalEndPoint} <-> {RemoteEndPoint}";

    // ------------------------------------------------------------------ native callbacks: never throw into libuv

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static LibuvTcpConnection? FromHandle(IntPtr handle) => LibuvLoop.OwnerOf(handle) as LibuvTcpConnection;

    private static LibuvTcpConnection? FromRequest(IntPtr req)
    {
        IntPtr self = Uv.GetData(req);
        return self == IntPtr.Zero ? null : GCHandle.FromIntPtr(self).Target as LibuvTcpConnection;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnAlloc(IntPtr handle, nuint suggestedSize, Uv.Buf* buf)
    {
        buf->Base = null;
        buf->Length = 0; // libuv reports UV_ENOBUFS to the read callback if this stays empty
        LibuvTcpConnection? connection = null;
        try
        {
            connection = FromHandle(handle);
            connection?.Alloc(buf);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(connection?._loop, "TCP alloc", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnRead(IntPtr handle, nint nread, Uv.Buf* buf)
    {
        LibuvTcpConnection? connection = null;
        try
        {
            connection = FromHandle(handle);
            connection?.Read(nread);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(connection?._loop, "TCP read", ex);
            connection?.Abort(new IOException("Receiving failed: " + ex.Message, ex));
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnWriteDone(IntPtr req, int status)
    {
        LibuvTcpConnection? connection = null;
        try
        {
            connection = FromRequest(req);
            connection?._writeDone.SetResult(status);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(connection?._loop, "TCP write", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnShutdownDone(IntPtr req, int status)
    {
        LibuvTcpConnection? connection = null;
        try
        {
            connection = FromRequest(req);
            connection?._writeDone.SetResult(status);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(connection?._loop, "TCP shutdown", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnHandleClosed(IntPtr handle)
    {
        LibuvTcpConnection? connection = null;
        try
        {
            connection = FromHandle(handle);
            connection?.HandleClosed();
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(connection?._loop, "TCP close", ex);
        }
        finally
        {
            LibuvLoop.FreeHandle(handle); // frees the connection's GCHandle too
        }
    }
}
