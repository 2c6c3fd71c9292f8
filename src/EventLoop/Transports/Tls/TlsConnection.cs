using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using EventLoop.Transports.Tls;

namespace EventLoop;

/// <summary>
/// A TLS connection on a loop: a <see cref="Connection"/> whose pipes carry plaintext, encrypted by an
/// <see cref="SslStream"/> over another connection, with what the handshake settled (the negotiated ALPN
/// protocol, the peer's certificate). Made by <see cref="Loop.ConnectTlsAsync"/>, accepted from a listener of
/// <see cref="Loop.ListenTlsAsync(EndPoint, SslServerAuthenticationOptions, TcpOptions?, TlsOptions?, CancellationToken)"/>
/// (cast the accepted <see cref="Connection"/>), or upgraded from a plaintext one by
/// <see cref="TlsConnectionExtensions.StartTlsAsync(Connection, SslClientAuthenticationOptions, TlsOptions?, CancellationToken)"/>.
/// </summary>
/// <remarks>
/// It behaves as the TCP connection does, and owns the connection under it: reads and flushes complete on the loop
/// thread, a slow reader stops the peer (through both layers), <see cref="ShutdownSendAsync"/> sends TLS's
/// close_notify and then a TCP FIN, <see cref="Abort"/> resets the connection under it, <see cref="DisposeAsync"/>
/// sends close_notify, closes both layers and is safe from any thread, and the loop's shutdown closes it. Errors
/// reach the pipes as <see cref="IOException"/>s; a peer that ends the connection without close_notify is seen as a
/// plain end of stream, as <see cref="SslStream"/> reports it.
/// </remarks>
public sealed class TlsConnection : Connection
{
    private readonly TlsLoopConnection _core;

    internal TlsConnection(TlsLoopConnection core) => _core = core;

    /// <summary>The connection's core: its pipes and pumps.</summary>
    internal TlsLoopConnection Core => _core;

    /// <inheritdoc/>
    public override PipeReader Input => _core.Input;

    /// <inheritdoc/>
    public override PipeWriter Output => _core.Output;

    /// <inheritdoc/>
    public override EndPoint? LocalEndPoint => _core.LocalEndPoint;

    /// <inheritdoc/>
    public override EndPoint? RemoteEndPoint => _core.RemoteEndPoint;

    /// <inheritdoc/>
    public override CancellationToken ConnectionClosed => _core.ConnectionClosed;

    /// <summary>The application protocol ALPN settled on (<c>default</c> when none was offered or agreed).</summary>
    public SslApplicationProtocol NegotiatedApplicationProtocol => _core.NegotiatedApplicationProtocol;

    /// <summary>The peer's certificate: the server's on a client, the client's on a server that asked for one (else null).</summary>
    public X509Certificate? RemoteCertificate => _core.RemoteCertificate;

    /// <summary>The certificate this side presented, if any.</summary>
    public X509Certificate? LocalCertificate => _core.LocalCertificate;

    /// <summary>The TLS version in use.</summary>
    public SslProtocols SslProtocol => _core.SslProtocol;

    /// <summary>The cipher suite in use.</summary>
    public TlsCipherSuite NegotiatedCipherSuite => _core.NegotiatedCipherSuite;

    /// <summary>The server name: on a server, the name the client asked for (SNI; empty when it sent none); on a client, the one it asked for.</summary>
    public string TargetHostName => _core.TargetHostName;

    /// <summary>True on the server side of the handshake.</summary>
    public bool IsServer => _core.IsServer;

    /// <summary>
    /// Sends everything written so far, then TLS's close_notify, then shuts down the send side of the connection
    /// under it (a TCP FIN). <see cref="Input"/> keeps receiving until the peer closes too. Loop thread only.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public override ValueTask ShutdownSendAsync(CancellationToken cancellationToken = default) => _core.ShutdownSendAsync(cancellationToken);

    /// <summary>
    /// Closes at once: the connection under TLS is reset (no close_notify); pending and later reads and flushes fail
    /// with <paramref name="reason"/>, by default a <see cref="ConnectionAbortedException"/>. Safe from any thread.
    /// </summary>
    public override void Abort(Exception? reason = null) => _core.Abort(reason);

    /// <summary>
    /// Closes gracefully: sends what was written and close_notify, stops reading, closes the connection under TLS
    /// (FIN) and frees the TLS state. Safe from any thread: off the loop thread the close hops to the loop, and the
    /// task completes once it has happened there. Every call returns the same close.
    /// </summary>
    public override ValueTask DisposeAsync() => _core.DisposeAsync();

    /// <inheritdoc/>
    public override string ToString() => _core.ToString();
}
