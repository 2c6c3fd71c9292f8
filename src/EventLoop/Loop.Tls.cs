using System.Net;
using System.Net.Security;
using EventLoop.Transports.Tls;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Starts listening for TLS connections on <paramref name="endpoint"/>: a TCP listener whose connections are
    /// handed out once their handshake has completed, as <see cref="TlsConnection"/>s (cast the accepted
    /// <see cref="Connection"/> for the negotiated protocol or the client's certificate).
    /// </summary>
    /// <param name="endpoint">The address to listen on (port 0 picks a free port).</param>
    /// <param name="serverOptions">
    /// SslStream's server options, used for every connection: the certificate (<c>ServerCertificateContext</c> builds the
    /// chain once), or a <c>ServerCertificateSelectionCallback</c> that picks one by the name the client asked for (SNI);
    /// ALPN protocols; <c>ClientCertificateRequired</c> and <c>RemoteCertificateValidationCallback</c>. Callbacks run on
    /// the loop thread.
    /// </param>
    /// <param name="options">TCP options; their pause and resume thresholds apply to the TLS pipes too.</param>
    /// <param name="tlsOptions">The handshake timeout, and where failed handshakes are reported.</param>
    /// <param name="cancellationToken">Cancels the listen.</param>
    /// <remarks>
    /// A handshake that fails (a client that refuses the certificate, a plaintext client, one that stalls past
    /// <see cref="TlsOptions.HandshakeTimeout"/>) closes only that connection and is reported once, to
    /// <see cref="TlsOptions.HandshakeFailed"/> or else to the loop's exception handler; the listener goes on.
    /// </remarks>
    /// <exception cref="System.Net.Sockets.SocketException">The address is in use or not available.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (thrown at once, naming it).</exception>
    public ValueTask<ConnectionListener> ListenTlsAsync(EndPoint endpoint, SslServerAuthenticationOptions serverOptions, TcpOptions? options = null,
        TlsOptions? tlsOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(serverOptions);
        return ListenTlsCoreAsync(endpoint, (ssl, token) => ssl.AuthenticateAsServerAsync(serverOptions, token), options, tlsOptions, cancellationToken);
    }

    /// <summary>
    /// Starts listening for TLS connections whose server options are chosen per connection, once the client's hello
    /// has been read (<see cref="SslStream.AuthenticateAsServerAsync(ServerOptionsSelectionCallback, object?, CancellationToken)"/>):
    /// a different certificate, ALPN list or client-certificate policy by the name the client asked for.
    /// </summary>
    /// <param name="endpoint">The address to listen on (port 0 picks a free port).</param>
    /// <param name="optionsCallback">Called on the loop thread for each handshake with the client's hello (its SNI name in <c>ServerName</c>).</param>
    /// <param name="state">Passed to <paramref name="optionsCallback"/>.</param>
    /// <param name="options">TCP options; their pause and resume thresholds apply to the TLS pipes too.</param>
    /// <param name="tlsOptions">The handshake timeout, and where failed handshakes are reported.</param>
    /// <param name="cancellationToken">Cancels the listen.</param>
    /// <exception cref="System.Net.Sockets.SocketException">The address is in use or not available.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (thrown at once, naming it).</exception>
    public ValueTask<ConnectionListener> ListenTlsAsync(EndPoint endpoint, ServerOptionsSelectionCallback optionsCallback, object? state,
        TcpOptions? options = null, TlsOptions? tlsOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(optionsCallback);
        ServerOptionsSelectionCallback onLoop = (stream, hello, callbackState, token) =>
            SslStreamContext.CallOnLoop(this, optionsCallback, stream, hello, callbackState, token);
        return ListenTlsCoreAsync(endpoint, (ssl, token) => ssl.AuthenticateAsServerAsync(onLoop, state, token), options, tlsOptions, cancellationToken);
    }

    /// <summary>
    /// Opens a TCP connection to <paramref name="endpoint"/> and makes the client's TLS handshake over it. The task
    /// completes once the handshake has: the server's certificate was accepted and ALPN settled.
    /// </summary>
    /// <param name="endpoint">The server's address.</param>
    /// <param name="clientOptions">
    /// SslStream's client options. Set <c>TargetHost</c>: it is the name sent for SNI and the name the server's
    /// certificate must carry. A <c>RemoteCertificateValidationCallback</c> replaces the default validation (and runs on
    /// the loop thread); <c>ClientCertificates</c> or <c>ClientCertificateContext</c> give a client certificate.
    /// </param>
    /// <param name="options">TCP options; their pause and resume thresholds apply to the TLS pipes too.</param>
    /// <param name="tlsOptions">The handshake timeout.</param>
    /// <param name="cancellationToken">Cancels the connect and the handshake.</param>
    /// <exception cref="System.Security.Authentication.AuthenticationException">
    /// The handshake failed: the server's certificate is not trusted or not for <c>TargetHost</c> (the message names the
    /// errors), the server does not speak TLS, or no protocol or cipher suite in common.
    /// </exception>
    /// <exception cref="IOException">The connection failed or closed during the handshake, or the handshake timed out.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The TCP connect failed (refused, unreachable).</exception>
    public ValueTask<TlsConnection> ConnectTlsAsync(EndPoint endpoint, SslClientAuthenticationOptions clientOptions, TcpOptions? options = null,
        TlsOptions? tlsOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(clientOptions);
        CheckLoopThread();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<TlsConnection>(cancellationToken);
        }

        TcpOptions tcp = options?.Validate() ?? TcpOptions.Default;
        TlsOptions tls = tlsOptions?.Validate() ?? TlsOptions.Default;
        return ConnectTlsCoreAsync(endpoint, clientOptions, tcp, tls, cancellationToken);
    }

    private async ValueTask<TlsConnection> ConnectTlsCoreAsync(EndPoint endpoint, SslClientAuthenticationOptions clientOptions, TcpOptions options,
        TlsOptions tlsOptions, CancellationToken cancellationToken)
    {
        Connection inner = await ConnectTcpCoreAsync(endpoint, options, cancellationToken).ConfigureAwait(true);
        return await TlsHandshake.AuthenticateAsync(this, inner, (ssl, token) => ssl.AuthenticateAsClientAsync(clientOptions, token),
            options, tlsOptions, cancellationToken).ConfigureAwait(true);
    }

    private ValueTask<ConnectionListener> ListenTlsCoreAsync(EndPoint endpoint, Func<SslStream, CancellationToken, Task> authenticate, TcpOptions? options,
        TlsOptions? tlsOptions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        CheckLoopThread();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ConnectionListener>(cancellationToken);
        }

        TcpOptions tcp = options?.Validate() ?? TcpOptions.Default;
        TlsOptions tls = tlsOptions?.Validate() ?? TlsOptions.Default;
        return StartAsync(this, endpoint, authenticate, tcp, tls, cancellationToken);

        static async ValueTask<ConnectionListener> StartAsync(Loop loop, EndPoint endpoint, Func<SslStream, CancellationToken, Task> authenticate,
            TcpOptions tcp, TlsOptions tls, CancellationToken cancellationToken)
        {
            ConnectionListener inner = await loop.ListenTcpCoreAsync(endpoint, tcp, cancellationToken).ConfigureAwait(true);
            return TlsListener.Start(loop, inner, authenticate, tcp, tls);
        }
    }
}
