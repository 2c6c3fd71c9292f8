using EventLoop.Transports.Unix;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Starts listening for connections on a Unix domain socket (asyncio's <c>create_unix_server</c>). A
    /// <paramref name="path"/> that starts with <c>'\0'</c> is a name in Linux's abstract namespace (no file);
    /// any other is a file path. As asyncio does, a socket file already at the path (left by an earlier server)
    /// is removed before binding; any other file there is left alone and the bind fails. The socket file is
    /// removed again when the listener is disposed, if it is still this listener's. Connections are the same
    /// <see cref="Connection"/>s as TCP's.
    /// </summary>
    /// <exception cref="ArgumentException">The path is empty, too long for <c>sockaddr_un</c> (107 bytes), or holds a NUL past its start.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The path is taken (<c>SocketError.AddressAlreadyInUse</c>: a file that is not a
    /// socket, or an abstract name in use), or its directory does not exist (<c>SocketError.AddressNotAvailable</c>).</exception>
    public ValueTask<ConnectionListener> ListenUnixAsync(string path, UnixSocketOptions? options = null, CancellationToken cancellationToken = default)
    {
        var address = UnixSocketPath.Parse(path, nameof(path));
        CheckLoopThread();
        TcpOptions streamOptions = (options ?? UnixSocketOptions.Default).ToStreamOptions();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ConnectionListener>(cancellationToken);
        }

        return ListenUnixCoreAsync(address, streamOptions, cancellationToken);
    }

    /// <summary>
    /// Connects to a Unix domain socket (asyncio's <c>create_unix_connection</c>); a <paramref name="path"/>
    /// starting with <c>'\0'</c> names the abstract namespace. While the listener's backlog is full (where a
    /// non-blocking <c>AF_UNIX</c> connect fails with EAGAIN rather than wait, as a TCP handshake would), the
    /// connect is retried on a short back-off, up to <see cref="UnixConnectRetryLimit"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The path is empty, too long for <c>sockaddr_un</c>, or holds a NUL past its start.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">Nobody listens there: <c>SocketError.ConnectionRefused</c> for a socket file or
    /// abstract name with no listener, <c>SocketError.AddressNotAvailable</c> when no such file exists.</exception>
    public ValueTask<Connection> ConnectUnixAsync(string path, UnixSocketOptions? options = null, CancellationToken cancellationToken = default)
    {
        var address = UnixSocketPath.Parse(path, nameof(path));
        CheckLoopThread();
        TcpOptions streamOptions = (options ?? UnixSocketOptions.Default).ToStreamOptions();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Connection>(cancellationToken);
        }

        return ConnectUnixRetryingAsync(address, streamOptions, cancellationToken);
    }

    /// <summary>How long <see cref="ConnectUnixAsync"/> keeps retrying while the listener's backlog is full: 30 s.</summary>
    public static TimeSpan UnixConnectRetryLimit { get; } = TimeSpan.FromSeconds(30);

    private async ValueTask<Connection> ConnectUnixRetryingAsync(UnixSocketPath address, TcpOptions options, CancellationToken cancellationToken)
    {
        TimeSpan backoff = TimeSpan.FromMilliseconds(1);
        TimeSpan deadline = Time + UnixConnectRetryLimit;
        while (true)
        {
            try
            {
                return await ConnectUnixCoreAsync(address, options, cancellationToken).ConfigureAwait(true);
            }
            catch (System.Net.Sockets.SocketException ex) when (ex.SocketErrorCode == System.Net.Sockets.SocketError.WouldBlock && Time < deadline)
            {
                // The listener's accept queue is full: it has not caught up yet. Try again shortly.
            }

            await DelayAsync(backoff, cancellationToken).ConfigureAwait(true);
            backoff = backoff.TotalMilliseconds >= 50 ? backoff : backoff * 2;
        }
    }

    /// <summary>The policy's Unix listener. Loop thread, arguments checked; <paramref name="options"/> has the TCP-only options off.</summary>
    private protected abstract ValueTask<ConnectionListener> ListenUnixCoreAsync(UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken);

    /// <summary>The policy's Unix connect. Loop thread, arguments checked.</summary>
    private protected abstract ValueTask<Connection> ConnectUnixCoreAsync(UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken);
}
