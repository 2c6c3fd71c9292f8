using EventLoop.Transports.Pipes;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Wraps an open pipe, FIFO, terminal or connected socket descriptor as a <see cref="Connection"/> on this loop
    /// (asyncio's <c>connect_read_pipe</c>/<c>connect_write_pipe</c>, Kestrel's <c>FileHandleEndPoint</c>): stdin
    /// (<c>0</c>), stdout (<c>1</c>), an end of a <c>pipe2</c> pair, or an inherited socket. Reads and writes are
    /// non-blocking on the loop, with the same backpressure as TCP's (<see cref="TcpOptions.InputPauseThreshold"/>,
    /// <see cref="TcpOptions.OutputPauseThreshold"/>). A pipe's read end is read through <see cref="Connection.Input"/>
    /// (its writes fail); a write end is written through <see cref="Connection.Output"/>, and its
    /// <see cref="Connection.Input"/> is at end of stream at once. When the read end of a pipe closes, a flush fails
    /// with a <see cref="ConnectionResetException"/> (EPIPE); when the write end closes, the reader sees end of stream.
    /// </summary>
    /// <remarks>
    /// Ownership, as <see cref="System.Runtime.InteropServices.SafeHandle"/>'s <c>ownsHandle</c>: with
    /// <paramref name="ownsHandle"/> true (the default) the connection owns <paramref name="fileDescriptor"/> and closes
    /// it when disposed or aborted (or when the loop shuts down with it open); with false the loop works on a
    /// close-on-exec duplicate and closes only that, so the caller's descriptor stays open (for stdin and stdout). Either
    /// way the descriptor is made non-blocking, a flag the duplicate (and any process sharing it) shares. A pipe's
    /// <see cref="Connection.ShutdownSendAsync"/> sends what was written but cannot half-close: the reader sees end of
    /// stream when the descriptor is closed. Linux only.
    /// </remarks>
    /// <exception cref="ArgumentException">The descriptor is not open (EBADF), is a regular file or a directory (use <see cref="Files"/>), or
    /// is a listening socket (use <see cref="ListenInheritedAsync"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fileDescriptor"/> is negative, or an option is out of range.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    /// <exception cref="PlatformNotSupportedException">Not on Linux.</exception>
    public Connection OpenPipe(int fileDescriptor, bool ownsHandle = true, TcpOptions? options = null)
    {
        CheckLoopThread();
        TcpOptions checkedOptions = options?.Validate() ?? TcpOptions.Default;
        PipeDescriptor pipe = PipeDescriptor.Take(fileDescriptor, ownsHandle, listening: false, nameof(fileDescriptor));
        return OpenPipeCore(pipe, checkedOptions);
    }

    /// <summary>
    /// Accepts connections on a listening socket this process inherited or made itself (systemd socket activation: see
    /// <see cref="SocketActivation.ListenFileDescriptors"/>; asyncio's <c>create_server(sock=...)</c>): a TCP (IPv4 or
    /// IPv6) or Unix domain stream socket, already bound and listening. Connections are the same as
    /// <see cref="ListenTcpAsync"/>'s and <see cref="ListenUnixAsync"/>'s. With <paramref name="ownsHandle"/> true (the
    /// default) disposing the listener closes <paramref name="fileDescriptor"/>; with false it closes a duplicate only. A
    /// Unix socket's file is never removed by this listener: whoever bound it owns it. Linux only.
    /// </summary>
    /// <exception cref="ArgumentException">The descriptor is not open (EBADF), not a socket, not a stream socket, or not listening.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fileDescriptor"/> is negative, or an option is out of range.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public ValueTask<ConnectionListener> ListenInheritedAsync(int fileDescriptor, bool ownsHandle = true, TcpOptions? options = null, CancellationToken cancellationToken = default)
    {
        CheckLoopThread();
        TcpOptions checkedOptions = options?.Validate() ?? TcpOptions.Default;
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ConnectionListener>(cancellationToken);
        }

        PipeDescriptor socket = PipeDescriptor.Take(fileDescriptor, ownsHandle, listening: true, nameof(fileDescriptor));
        return new(ListenInheritedCore(socket, checkedOptions));
    }

    /// <summary>The policy's connection over a checked descriptor it now owns (and must close if this throws). Loop thread.</summary>
    private protected abstract Connection OpenPipeCore(PipeDescriptor pipe, TcpOptions options);

    /// <summary>The policy's listener over a checked, listening socket it now owns (and must close if this throws). Loop thread.</summary>
    private protected abstract ConnectionListener ListenInheritedCore(PipeDescriptor socket, TcpOptions options);
}
