using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;
using EventLoop.Transports.Sockets;

namespace EventLoop.Transports;

/// <summary>
/// What every transport's connection shares (the socket transport's, libuv's, and TLS's over another connection): the two pipes over the
/// loop's pinned block pool, the closed signal, the abort protocol, half-close and closing at shutdown.
/// A transport supplies the I/O: a receive side that fills <see cref="_input"/>, a send pump that drains
/// <see cref="_output"/> into <see cref="_writing"/>, and <see cref="OnAbort"/>.
/// </summary>
internal abstract class LoopConnection : Connection
{
    private protected readonly Loop _loop;
    private protected readonly Pipe _input;
    private protected readonly Pipe _output;
    private protected Task _writing = Task.CompletedTask;
    private protected bool _aborted;
    private protected bool _disposed;
    private protected Exception? _abortReason;

    /// <summary>A send met a reset (ECONNRESET, EPIPE): the socket's error is consumed, so a later read sees a plain end of stream, which is the reset's.</summary>
    private protected bool _resetSeen;

    /// <summary>
    /// The descriptor is a pipe, FIFO or terminal, not a socket (<see cref="Loop.OpenPipe"/>): it is read with <c>read</c>,
    /// and has no half-close (the reader sees end of stream when it is closed). Set before the transport starts.
    /// </summary>
    private protected bool _isPipe;

    /// <summary>A pipe's write end: nothing to read, so the input ends at once (without signalling <see cref="ConnectionClosed"/>).</summary>
    private protected bool _writeOnly;

    /// <summary>Marks a connection made over a non-socket descriptor (see <see cref="_isPipe"/>). Before the transport starts.</summary>
    internal void MarkAsPipe(bool canRead)
    {
        _isPipe = true;
        _writeOnly = !canRead;
    }

    /// <summary>Why the send pump stopped, when it failed (what <see cref="ShutdownSendAsync"/> reports).</summary>
    private protected Exception? _sendError;

    private readonly CancellationTokenSource _closed = new();
    private readonly DirectWritePipeWriter _outputWriter;
    private readonly ResourceNode _node;
    private readonly EndPoint? _localEndPoint;
    private readonly EndPoint? _remoteEndPoint;

    private protected LoopConnection(Loop loop, TcpOptions options, EndPoint? localEndPoint, EndPoint? remoteEndPoint)
    {
        _loop = loop;
        Options = options;
        _localEndPoint = localEndPoint;
        _remoteEndPoint = remoteEndPoint;
        var scheduler = new LoopPipeScheduler(loop);
        PinnedBlockPool pool = loop.MemoryPool;
        // The application's read resumes inline when the transport flushes received bytes into the pipe (as
        // uvloop calls data_received from libuv's read callback): on the loop thread, at once, without a trip
        // through the ready queue. An echo, a parser or a proxy answers in the same turn it was fed.
        _input = new Pipe(new PipeOptions(
            pool: pool,
            minimumSegmentSize: PinnedBlockPool.BlockSize,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: scheduler,
            pauseWriterThreshold: options.InputPauseThreshold,
            resumeWriterThreshold: options.InputResumeThreshold,
            useSynchronizationContext: false));
        // The send pump resumes inline inside the application's FlushAsync, so a write reaches the socket
        // in that call, with no wait for the loop's next turn (libuv's uv_try_write, or a non-blocking send).
        _output = new Pipe(new PipeOptions(
            pool: pool,
            minimumSegmentSize: PinnedBlockPool.BlockSize,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: scheduler,
            pauseWriterThreshold: options.OutputPauseThreshold,
            resumeWriterThreshold: options.OutputResumeThreshold,
            useSynchronizationContext: false));
        _outputWriter = new DirectWritePipeWriter(this, _output.Writer);
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        loop.CountConnection(1);
    }

    /// <summary>The options the connection was made with (a layer on top, such as TLS, takes its thresholds from them).</summary>
    internal TcpOptions Options { get; }

    /// <summary>The loop the connection lives on.</summary>
    internal Loop Loop => _loop;

    public sealed override PipeReader Input => _input.Reader;

    public sealed override PipeWriter Output => _outputWriter;

    /// <summary>
    /// The transport's send pump waits for bytes with everything before them sent: set by the pump just before it awaits
    /// the output pipe, cleared as soon as that read returns (inline, in the flush that fed it). While set, on the loop
    /// thread, <see cref="DirectWritePipeWriter.WriteAsync"/> may send a buffer itself (<see cref="TryWriteNow"/>).
    /// </summary>
    private protected volatile bool _sendIdle;

    /// <summary>Whether a write may go to the socket now, ahead of the pipe: the pump is idle, the connection open, and the caller on the loop thread.</summary>
    internal bool CanWriteDirect => _sendIdle && !_aborted && !_disposed && _loop.IsOnLoopThread;

    /// <summary>Sends what the socket takes of <paramref name="source"/> now (see <see cref="TryWriteNow"/>). Only when <see cref="CanWriteDirect"/>.</summary>
    internal int TryWriteDirect(ReadOnlySpan<byte> source)
    {
        int written = TryWriteNow(source);
        if (written > 0)
        {
            DirectWriteCount++;
        }

        return written;
    }

    /// <summary>Writes that went to the socket straight from the caller's memory (all or part of a buffer). Tests read it.</summary>
    internal long DirectWriteCount { get; private set; }

    /// <summary>
    /// A transport's direct write: sends what the socket takes of <paramref name="source"/> without blocking, on the loop
    /// thread, and returns how many bytes went out (0 when the socket is full). A negative return means "not now" (an
    /// error, a closing handle, or a transport without the path): the bytes then go through the pipe, and the send pump
    /// meets and reports any error in its usual way. The default has no direct path.
    /// </summary>
    private protected virtual int TryWriteNow(ReadOnlySpan<byte> source) => -1;

    public sealed override EndPoint? LocalEndPoint => _localEndPoint;

    public sealed override EndPoint? RemoteEndPoint => _remoteEndPoint;

    public sealed override CancellationToken ConnectionClosed => _closed.Token;

    /// <summary>The connection no longer needs closing at shutdown (its socket or handle is closed or closing).</summary>
    private protected void LeaveShutdownList()
    {
        _loop.UnregisterShutdown(_node);
        if (!_uncounted)
        {
            _uncounted = true;
            _loop.CountConnection(-1);
        }
    }

    private bool _uncounted; // the open-connections metric no longer counts this one

    /// <summary>Receiving stopped (end of stream, reset, abort or dispose): cancels <see cref="ConnectionClosed"/> once.</summary>
    private protected void SignalClosed()
    {
        if (!_closed.IsCancellationRequested)
        {
            try
            {
                _closed.Cancel();
            }
            catch (Exception ex)
            {
                _loop.ReportException("A ConnectionClosed callback threw", ex, this);
            }
        }
    }

    public sealed override async ValueTask ShutdownSendAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        await _output.Writer.CompleteAsync().ConfigureAwait(true);
        await _writing.WaitAsync(cancellationToken).ConfigureAwait(true);
        if (_sendError is { } error && !_aborted)
        {
            // What was written could not all be sent (the peer reset, say): say so rather than report a clean FIN.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    /// <summary>How a read that found the end of stream ends the input: cleanly, unless a send already met a reset.</summary>
    private protected Exception? EndOfStream() =>
        _resetSeen && !_disposed && !_aborted ? new ConnectionResetException("The connection was reset by the peer.") : null;

    /// <summary>Records the send pump's failure (see <see cref="_sendError"/>) and returns it as the pipe carries it.</summary>
    private protected Exception? SendFailed(Exception ex)
    {
        Exception? error = TranslateError(ex, "Sending");
        _sendError ??= error;
        return error;
    }

    /// <summary>
    /// The exception the pipes carry for a transport failure, as .NET users catch them: a reset as
    /// <see cref="ConnectionResetException"/>, other socket errors and I/O failures as <see cref="IOException"/>;
    /// the abort reason after <see cref="Abort"/>, and nothing (the pipes just end) after a dispose.
    /// </summary>
    private protected Exception? TranslateError(Exception ex, string operation)
    {
        if (_aborted)
        {
            return _abortReason;
        }

        if (_disposed)
        {
            return null;
        }

        return ex switch
        {
            SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown } reset =>
                ResetSeen(new ConnectionResetException("The connection was reset by the peer.", reset)),
            SocketException socket => new IOException($"{operation} failed: {socket.SocketErrorCode}.", socket),
            IOException io => io,
            _ => new ConnectionAbortedException("The connection was closed.", ex),
        };
    }

    private ConnectionResetException ResetSeen(ConnectionResetException reset)
    {
        _resetSeen = true;
        return reset;
    }

    /// <summary>The graceful start of a dispose: unless aborted, send what the application wrote, then FIN.</summary>
    private protected async ValueTask FinishSendingAsync()
    {
        if (_aborted)
        {
            return;
        }

        await _output.Writer.CompleteAsync().ConfigureAwait(true);
        try
        {
            await _writing.ConfigureAwait(true);
        }
        catch (Exception)
        {
            // Send errors were already surfaced on the pipe.
        }
    }

    private Task? _disposing;

    /// <summary>
    /// Closes gracefully (see <see cref="Connection.DisposeAsync"/>). Safe from any thread: off the loop thread
    /// the close hops to the loop, and the returned task completes once it has happened there. Every call
    /// returns the same close.
    /// </summary>
    public sealed override ValueTask DisposeAsync()
    {
        if (!_loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(_loop, this, static c => c.DisposeAsync());
        }

        _disposing ??= DisposeCoreAsync().AsTask();
        return new ValueTask(_disposing);
    }

    /// <summary>The transport's graceful close. Called once, on the loop thread.</summary>
    private protected abstract ValueTask DisposeCoreAsync();

    public sealed override void Abort(Exception? reason = null)
    {
        if (!_loop.IsOnLoopThread)
        {
            try
            {
                _loop.CallSoonThreadSafe(static s => s.Connection.Abort(s.Reason), (Connection: this, Reason: reason));
            }
            catch (InvalidOperationException)
            {
                // The loop closed: it already closed this connection.
            }

            return;
        }

        if (_aborted || _disposed)
        {
            return;
        }

        _aborted = true;
        _abortReason = reason ?? new ConnectionAbortedException("The connection was aborted.");
        OnAbort();
    }

    /// <summary>
    /// Resets the connection (RST) and wakes the receive side and the send pump wherever they wait, so the
    /// pipes end with <see cref="_abortReason"/>. Called once, on the loop thread.
    /// </summary>
    private protected abstract void OnAbort();

    /// <summary>Closes the connection when the loop shuts down with it still open.</summary>
    private sealed class ResourceNode(LoopConnection owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => owner.Abort(new ConnectionAbortedException("The loop shut down with the connection open."));
    }
}
