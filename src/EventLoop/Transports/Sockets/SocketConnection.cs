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

    internal SocketConnection(Loop loop, Socket socket, TcpOptions options)
        : base(loop, options, socket.LocalEndPoint, socket.RemoteEndPoint)
    {
        _socket = socket;
        loop.OpenSocketCount++;
    }

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
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    await SendAllAsync(segment).ConfigureAwait(true);
                }

                reader.AdvanceTo(result.Buffer.End);
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

    public override async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

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

    public override string ToString() => $"TCP {LocalEndPoint} <-> {RemoteEndPoint}";
}
