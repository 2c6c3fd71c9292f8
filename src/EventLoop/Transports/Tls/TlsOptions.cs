using System.Net;

namespace EventLoop;

/// <summary>Options for TLS listeners and connections (<see cref="Loop.ListenTlsAsync(EndPoint, System.Net.Security.SslServerAuthenticationOptions, TcpOptions?, TlsOptions?, CancellationToken)"/>).</summary>
public sealed class TlsOptions
{
    /// <summary>
    /// How long a handshake may take, from the first byte to the last, before the connection is closed: a peer
    /// that connects and then says nothing (or too little) holds a connection only this long. Default 10 s;
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits for ever.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Called on the loop thread, once per connection, when a listener's handshake fails or times out, with the
    /// peer's address and the failure (an <see cref="System.Security.Authentication.AuthenticationException"/> or
    /// an <see cref="IOException"/> naming the cause). The connection is closed already; the listener goes on
    /// accepting. When null (the default), the failure goes to the loop's <see cref="Loop.ExceptionHandler"/>;
    /// a server that faces the internet, where failed handshakes are routine (scanners, plaintext clients, clients
    /// that distrust the certificate), sets this to log them at a lower level. Not used by connects, which throw.
    /// </summary>
    public Action<EndPoint?, Exception>? HandshakeFailed { get; set; }

    internal static readonly TlsOptions Default = new();

    /// <summary>Checks the values before a listener or connection uses them.</summary>
    internal TlsOptions Validate()
    {
        if (HandshakeTimeout <= TimeSpan.Zero && HandshakeTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(HandshakeTimeout), HandshakeTimeout,
                "TlsOptions.HandshakeTimeout must be positive, or Timeout.InfiniteTimeSpan.");
        }

        return this;
    }
}
