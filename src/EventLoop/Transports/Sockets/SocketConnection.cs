using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using EventLoop.Internal;

namespace EventLoop.Transports.Sockets;

/// <summary>
/// A TCP connection over <see cref="Socket"/>, driven from the loop: a receive pump fills the input pipe and
/// stops reading while the application's side of it is full (backpressure towards the peer); a send pump
/// drains the output pipe. Both pumps are async methods started on the loop, so every socket completion
/// resumes on the loop thread.
/// </summary>
internal sealed class SocketConnection : LoopConnection
{
    private const int MinimumReadSize = 4096;

    private readonly Socket _socket;
    private Task _receiving = Task.CompletedTask;
    private bool _socketClosed;

    /// <summary>
    /// Wraps a connected socket whose count (<see cref="Loop.OpenSocketCount"/>) the caller already took; the
    /// connection now owns both. Use <see cref="Open"/>, which also closes the socket if this throws.
    /// </summary>
    private SocketConnection(Loop loop, Socket socket, TcpOptions options, EndPoint? remoteEndPoint)
        : base(loop, options, TryGetEndPoint(socket, remote: false), TryGetEndPoint(socket, remote: true) ?? remoteEndPoint)
    {
        _socket = socket;
    }

    /// <summary>
    /// Makes a connection of a connected or accepted socket (counted in <see cref="Loop.OpenSocketCount"/>) and
    /// starts its pumps. On any failure the socket is closed and uncounted before the exception leaves. A
    /// <see cref="Socket"/> made over a pipe's descriptor (<see cref="Loop.OpenPipe"/>: .NET reads and writes a non-socket
    /// with <c>read</c>/<c>write</c>) comes with <paramref name="pipeCanRead"/>: false for a write end.
    /// </summary>
    internal static SocketConnection Open(Loop loop, Socket socket, TcpOptions options, EndPoint? remoteEndPoint = null, bool? pipeCanRead = null)
    {
        SocketConnection? connection = null;
        try
        {
            Configure(socket, options);
            connection = new SocketConnection(loop, socket, options, remoteEndPoint);
            if (pipeCanRead is bool canRead)
            {
                connection.MarkAsPipe(canRead);
            }

            connection.Start();
            return connection;
        }
        catch
        {
            if (connection is not null)
            {
                connection.Abort();
            }
            else
            {
                CloseUntracked(loop, socket);
            }

            throw;
        }
    }

    /// <summary>A socket this transport counted but that never became a connection: closes and uncounts it.</summary>
    internal static void CloseUntracked(Loop loop, Socket socket)
    {
        socket.Dispose();
        loop.OpenSocketCount--;
    }

    /// <summary>A socket's address, or null: a peer that reset at once leaves an accepted socket with no peer (ENOTCONN).</summary>
    private static EndPoint? TryGetEndPoint(Socket socket, bool remote)
    {
        try
        {
            return remote ? socket.RemoteEndPoint : socket.LocalEndPoint;
        }
        catch (SocketException)
        {
            return null;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    internal static void Configure(Socket socket, TcpOptions options)
    {
        if (socket.AddressFamily is AddressFamily.Unix or AddressFamily.Unknown)
        {
            return; // the options are TCP's (Unknown: a pipe)
        }

        socket.NoDelay = options.NoDelay;
        if (options.KeepAlive)
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, (int)options.KeepAliveSeconds);
        }
    }

    /// <summary>Starts both pumps. Called on the loop thread.</summary>
    internal void Start()
    {
        if (_writeOnly)
        {
            _input.Writer.Complete(); // a pipe's write end: nothing will ever be read
        }
        else
        {
            _receiving = ReceiveLoopAsync();
        }

        _writing = SendLoopAsync();
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
                int received = await CompleteOnLoopAsync(_socket.ReceiveAsync(memory, SocketFlags.None)).ConfigureAwait(false);
                if (received == 0)
                {
                    error = EndOfStream(); // the peer half-closed: end of stream (or a reset a send already met)
                    break;
                }

                writer.Advance(received);
                _loop.CountRead(received);

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

        // Receiving stopped (end of stream, reset, abort or dispose). Signalled first: completing the pipe
        // runs the application's pending read inline, and it may look at ConnectionClosed.
        SignalClosed();
        await writer.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
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
                if (!_loop.IsOnLoopThread)
                {
                    // The application flushed from another thread, and the pump resumed inline there: go back to
                    // the loop, where the pump's bookkeeping lives.
                    await new LoopSwitch(_loop);
                }

                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    await SendAllAsync(segment).ConfigureAwait(true);
                }

                _loop.CountWritten(result.Buffer.Length);
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            if (!_aborted && !_isPipe) // a pipe has no half-close: its reader sees end of stream when it is closed
            {
                try
                {
                    _socket.Shutdown(SocketShutdown.Send); // everything was sent: half-close (FIN)
                }
                catch (SocketException ex) when (ex.SocketErrorCode == SocketError.NotConnected)
                {
                    // The peer is gone already; the receive side reports how (as the other transports do).
                }
            }
        }
        catch (Exception ex)
        {
            error = SendFailed(ex);
        }

        await reader.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            int sent = await CompleteOnLoopAsync(_socket.SendAsync(data, SocketFlags.None)).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>
    /// Awaits a socket operation and continues on the loop thread, counting it as pending I/O meanwhile. The
    /// socket's own context capture would post a <c>Tuple</c> per completion; this allocates nothing in steady
    /// state (pooled builder, and <see cref="LoopSwitch"/> queues the cached continuation as is). Callers
    /// await it with <c>ConfigureAwait(false)</c>: it always completes on the loop thread.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> CompleteOnLoopAsync(ValueTask<int> operation)
    {
        int result = 0;
        Exception? failed = null;
        _loop.PendingIo++;
        try
        {
            result = await operation.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            failed = ex;
        }

        await new LoopSwitch(_loop);
        _loop.PendingIo--;
        if (failed is not null)
        {
            ExceptionDispatchInfo.Throw(failed);
        }

        return result;
    }

    private protected override void OnAbort()
    {
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
            LeaveShutdownList();
            _loop.OpenSocketCount--;
        }
    }

    private protected override async ValueTask DisposeCoreAsync()
    {
        await FinishSendingAsync().ConfigureAwait(true);

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

    public override string ToString() => _isPipe ? "Pipe (sockets)" : $"{(_socket.AddressFamily == AddressFamily.Unix ? "Unix" : "TCP")} {LocalEndPoint} <-> {RemoteEndPoint}";
}
