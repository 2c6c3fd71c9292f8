using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using EventLoop.Internal;

namespace EventLoop.Transports.Sockets;

/// <summary>
/// A TCP connection over <see cref="Socket"/>, driven from the loop: a receive pump fills the input pipe and
/// stops reading while the application's side of it is full (backpressure towards the peer); a send pump
/// drains the output pipe. Both pumps are async methods started on the loop, so every socket completion
/// resumes on the loop thread.
/// </summary>
internal sealed class SocketConnection : Connection
{
    private const int MinimumReadSize = 4096;

    private readonly Loop _loop;
    private readonly Socket _socket;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CancellationTokenSource _closed = new();
    private readonly ResourceNode _node;
    private readonly EndPoint? _localEndPoint;
    private readonly EndPoint? _remoteEndPoint;
    private Task _receiving = Task.CompletedTask;
    private Task _sending = Task.CompletedTask;
    private bool _aborted;
    private bool _disposed;
    private bool _socketClosed;
    private Exception? _abortReason;

    internal SocketConnection(Loop loop, Socket socket, TcpOptions options)
    {
        _loop = loop;
        _socket = socket;
        _localEndPoint = socket.LocalEndPoint;
        _remoteEndPoint = socket.RemoteEndPoint;
        var scheduler = new LoopPipeScheduler(loop);
        PinnedBlockPool pool = loop.MemoryPool;
        _input = new Pipe(new PipeOptions(
            pool: pool,
            minimumSegmentSize: PinnedBlockPool.BlockSize,
            readerScheduler: scheduler,
            writerScheduler: scheduler,
            pauseWriterThreshold: options.InputPauseThreshold,
            resumeWriterThreshold: options.InputResumeThreshold,
            useSynchronizationContext: false));
        // The send pump resumes inline inside the application's FlushAsync, so a write reaches the socket
        // at once, not at the loop's next turn (the role uv_try_write plays in libuv).
        _output = new Pipe(new PipeOptions(
            pool: pool,
            minimumSegmentSize: PinnedBlockPool.BlockSize,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: scheduler,
            pauseWriterThreshold: options.OutputPauseThreshold,
            resumeWriterThreshold: options.OutputResumeThreshold,
            useSynchronizationContext: false));
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
        loop.OpenSocketCount++;
    }

    public override PipeReader Input => _input.Reader;

    public override PipeWriter Output => _output.Writer;

    public override EndPoint? LocalEndPoint => _localEndPoint;

    public override EndPoint? RemoteEndPoint => _remoteEndPoint;

    public override CancellationToken ConnectionClosed => _closed.Token;

    internal static void Configure(Socket socket, TcpOptions options)
    {
        socket.NoDelay = options.NoDelay;
        if (options.KeepAlive)
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, Math.Max(1, (int)options.KeepAliveDelay.TotalSeconds));
        }
    }

    /// <summary>Starts both pumps. Called on the loop thread.</summary>
    internal void Start()
    {
        _receiving = ReceiveLoopAsync();
        _sending = SendLoopAsync();
    }

    private async Task ReceiveLoopAsync()
    {
        PipeWriter writer = _input.Writer;
        Exception? error = null;
        try
        {
            while (true)
            {
                Memory<byte> memory = writer.GetMemory(MinimumReadSize);
                int received;
                _loop.PendingIo++;
                try
                {
                    received = await _socket.ReceiveAsync(memory, SocketFlags.None).ConfigureAwait(true);
                }
                finally
                {
                    _loop.PendingIo--;
                }

                if (received == 0)
                {
                    break; // the peer half-closed: end of stream
                }

                writer.Advance(received);

                // While the application has not consumed enough, this waits: no more reads from the socket.
                FlushResult flush = await writer.FlushAsync().ConfigureAwait(true);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break; // the application stopped reading, or Abort woke us
                }
            }
        }
        catch (Exception ex)
        {
            error = TranslateError(ex, "Receiving");
        }

        await writer.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
        SignalClosed(); // receiving stopped: end of stream, reset, abort or dispose
    }

    private async Task SendLoopAsync()
    {
        PipeReader reader = _output.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync().ConfigureAwait(true);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    if (buffer.IsSingleSegment)
                    {
                        await SendAllAsync(buffer.First).ConfigureAwait(true);
                    }
                    else
                    {
                        foreach (ReadOnlyMemory<byte> segment in buffer)
                        {
                            await SendAllAsync(segment).ConfigureAwait(true);
                        }
                    }
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            if (!_aborted)
            {
                _socket.Shutdown(SocketShutdown.Send); // everything was sent: half-close (FIN)
            }
        }
        catch (Exception ex)
        {
            error = TranslateError(ex, "Sending");
        }

        await reader.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
    }

    /// <summary>The exception the pipes carry for a socket failure, as .NET users catch them.</summary>
    private Exception? TranslateError(Exception ex, string operation)
    {
        if (_aborted)
        {
            return _abortReason;
        }

        if (_disposed)
        {
            return null; // closed on purpose: the pipes just end
        }

        return ex is SocketException socket
            ? socket.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown
                ? new ConnectionResetException("The connection was reset by the peer.", socket)
                : new IOException($"{operation} failed: {socket.SocketErrorCode}.", socket)
            : new ConnectionAbortedException("The connection was closed.", ex);
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            int sent;
            _loop.PendingIo++;
            try
            {
                sent = await _socket.SendAsync(data, SocketFlags.None).ConfigureAwait(true);
            }
            finally
            {
                _loop.PendingIo--;
            }

            data = data[sent..];
        }
    }

    private void SignalClosed()
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

    public override async ValueTask ShutdownSendAsync(CancellationToken cancellationToken = default)
    {
        _loop.CheckLoopThread();
        await _output.Writer.CompleteAsync().ConfigureAwait(true);
        await _sending.WaitAsync(cancellationToken).ConfigureAwait(true);
    }

    public override void Abort(Exception? reason = null)
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
        try
        {
            _socket.LingerState = new LingerOption(true, 0); // close with RST
        }
        catch (Exception)
        {
            // Already closed: nothing to reset.
        }

        CloseSocket();

        // Wake both pumps wherever they wait; they complete the pipes with the abort reason, so the
        // application's own reads and flushes fail with it from now on.
        _input.Writer.CancelPendingFlush();
        _output.Reader.CancelPendingRead();
    }

    private void CloseSocket()
    {
        if (!_socketClosed)
        {
            _socketClosed = true;
            _socket.Dispose();
            _loop.UnregisterShutdown(_node);
            _loop.OpenSocketCount--;
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        if (!_aborted)
        {
            // Graceful: send what the application wrote, then FIN, then close.
            await _output.Writer.CompleteAsync().ConfigureAwait(true);
            try
            {
                await _sending.ConfigureAwait(true);
            }
            catch (Exception)
            {
                // Send errors were already surfaced on the pipe.
            }
        }

        _disposed = true;
        CloseSocket();
        await _input.Reader.CompleteAsync().ConfigureAwait(true);
        try
        {
            await _receiving.ConfigureAwait(true);
        }
        catch (Exception)
        {
            // Receive errors were already surfaced on the pipe.
        }

        SignalClosed();

    }

    public override string ToString() => $"TCP {_localEndPoint} <-> {_remoteEndPoint}";

    /// <summary>Closes the connection when the loop shuts down with it still open.</summary>
    private sealed class ResourceNode(SocketConnection owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => owner.Abort(new ConnectionAbortedException("The loop shut down with the connection open."));
    }
}
