using System.Net.Security;
using EventLoop.Transports;
using EventLoop.Transports.Tls;

namespace EventLoop;

/// <summary>STARTTLS: upgrading a plaintext <see cref="Connection"/> to TLS mid-stream, as asyncio's <c>loop.start_tls</c>.</summary>
public static class TlsConnectionExtensions
{
    /// <summary>
    /// Makes the client's TLS handshake over <paramref name="connection"/> and returns the TLS connection that takes
    /// it over (SMTP's, IMAP's or PostgreSQL's upgrade after a plaintext exchange).
    /// </summary>
    /// <param name="connection">
    /// The plaintext connection. From now on it belongs to the returned connection: do not read, write or dispose it
    /// (disposing the TLS connection closes it). Call with no read or flush of it pending. Bytes it has received and the
    /// application has not consumed (<c>AdvanceTo</c>) are not lost: the handshake reads them first, even if they were
    /// examined.
    /// </param>
    /// <param name="clientOptions">SslStream's client options (set <c>TargetHost</c>; see <see cref="Loop.ConnectTlsAsync"/>).</param>
    /// <param name="tlsOptions">The handshake timeout.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>The TLS connection, once the handshake completed.</returns>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The handshake failed (see <see cref="Loop.ConnectTlsAsync"/>); <paramref name="connection"/> was closed.</exception>
    /// <exception cref="IOException">The connection failed or closed during the handshake, or it timed out; <paramref name="connection"/> was closed.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public static ValueTask<TlsConnection> StartTlsAsync(this Connection connection, SslClientAuthenticationOptions clientOptions,
        TlsOptions? tlsOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clientOptions);
        return StartTlsCoreAsync(connection, (ssl, token) => ssl.AuthenticateAsClientAsync(clientOptions, token), tlsOptions, cancellationToken);
    }

    /// <summary>
    /// Makes the server's TLS handshake over <paramref name="connection"/> and returns the TLS connection that takes it
    /// over: the server side of STARTTLS, once the plaintext protocol has agreed to upgrade.
    /// </summary>
    /// <param name="connection">
    /// The plaintext connection, which now belongs to the returned connection (see
    /// <see cref="StartTlsAsync(Connection, SslClientAuthenticationOptions, TlsOptions?, CancellationToken)"/>). A client
    /// hello that arrived with the last plaintext command, still unconsumed in its input, is read by the handshake.
    /// </param>
    /// <param name="serverOptions">SslStream's server options (see <see cref="Loop.ListenTlsAsync(System.Net.EndPoint, SslServerAuthenticationOptions, TcpOptions?, TlsOptions?, CancellationToken)"/>).</param>
    /// <param name="tlsOptions">The handshake timeout.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>The TLS connection, once the handshake completed.</returns>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The handshake failed; <paramref name="connection"/> was closed.</exception>
    /// <exception cref="IOException">The connection failed or closed during the handshake, or it timed out; <paramref name="connection"/> was closed.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public static ValueTask<TlsConnection> StartTlsAsync(this Connection connection, SslServerAuthenticationOptions serverOptions,
        TlsOptions? tlsOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(serverOptions);
        return StartTlsCoreAsync(connection, (ssl, token) => ssl.AuthenticateAsServerAsync(serverOptions, token), tlsOptions, cancellationToken);
    }

    private static ValueTask<TlsConnection> StartTlsCoreAsync(Connection connection, Func<SslStream, CancellationToken, Task> authenticate,
        TlsOptions? tlsOptions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        Loop loop = connection is LoopConnection owned ? owned.Loop : Loop.Current;
        loop.CheckLoopThread();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<TlsConnection>(cancellationToken);
        }

        // The TLS pipes pause and resume where the plaintext connection's did.
        TcpOptions options = connection is LoopConnection loopConnection ? loopConnection.Options : TcpOptions.Default;
        return TlsHandshake.AuthenticateAsync(loop, connection, authenticate, options, tlsOptions?.Validate() ?? TlsOptions.Default, cancellationToken);
    }
}
