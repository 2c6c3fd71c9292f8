using System.Net.Security;
using System.Runtime.ExceptionServices;
using System.Security.Authentication;
using System.Text;
using EventLoop.Internal;

namespace EventLoop.Transports.Tls;

/// <summary>
/// Runs a TLS handshake over a connection and makes the <see cref="TlsConnection"/>: what the listener, the
/// connect and STARTTLS share. A handshake that fails or times out closes the connection under it and throws an
/// exception that names the cause and the peer.
/// </summary>
internal static class TlsHandshake
{
    /// <summary>Authenticates <paramref name="inner"/> with <paramref name="authenticate"/> (SslStream's server or client handshake).</summary>
    /// <exception cref="AuthenticationException">The handshake failed: the peer's certificate was refused, no protocol or cipher in common, the peer does not speak TLS.</exception>
    /// <exception cref="IOException">The connection failed or closed during the handshake, or it timed out (<see cref="TlsOptions.HandshakeTimeout"/>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static async ValueTask<TlsConnection> AuthenticateAsync(
        Loop loop,
        Connection inner,
        Func<SslStream, CancellationToken, Task> authenticate,
        TcpOptions options,
        TlsOptions tlsOptions,
        CancellationToken cancellationToken)
    {
        var transport = new TlsTransportStream(inner);
        var ssl = new SslStream(transport, leaveInnerStreamOpen: true);
        using var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        TimeSpan timeout = tlsOptions.HandshakeTimeout;
        LoopHandle? timer = timeout == Timeout.InfiniteTimeSpan
            ? null
            : loop.CallLater(timeout, static cts => cts.Cancel(), handshake); // a loop timer: the loop's clock, no thread
        try
        {
            // SslStream continues where its transport's reads and flushes complete: inline on the loop thread, with
            // no context current (see SslStreamContext), which is put back here.
            await authenticate(ssl, handshake.Token).ConfigureAwait(false);
            await SslStreamContext.BackOnLoop(loop);
        }
        catch (Exception ex)
        {
            await SslStreamContext.BackOnLoop(loop);
            bool timedOut = handshake.IsCancellationRequested && !cancellationToken.IsCancellationRequested;
            ssl.Dispose();
            Exception failure = Describe(ex, inner, transport, timedOut, timeout, cancellationToken);
            if (timedOut || failure is OperationCanceledException || IsPlaintext(transport.FirstBytes))
            {
                inner.Abort(); // nothing worth saying to this peer
            }
            else
            {
                // SslStream may have written an alert (a refused certificate, no protocol in common): let it go out.
                _ = inner.DisposeAsync();
            }

            ExceptionDispatchInfo.Throw(failure);
        }
        finally
        {
            timer?.Cancel();
        }

        var connection = new TlsLoopConnection(loop, inner, ssl, transport, options);
        connection.Start();
        return new TlsConnection(connection);
    }

    /// <summary>The exception a failed handshake throws: the same kind as SslStream's, saying what happened and with whom.</summary>
    private static Exception Describe(Exception ex, Connection inner, TlsTransportStream transport, bool timedOut, TimeSpan timeout, CancellationToken cancellationToken)
    {
        string handshake = $"The TLS handshake with {inner.RemoteEndPoint?.ToString() ?? "the peer"}";
        if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            return ex;
        }

        if (timedOut)
        {
            return new IOException(
                $"{handshake} did not complete within {timeout.TotalSeconds:0.###} s (TlsOptions.HandshakeTimeout); the connection was closed.",
                new TimeoutException("The TLS handshake timed out.", ex));
        }

        if (IsPlaintext(transport.FirstBytes))
        {
            return new AuthenticationException(
                $"{handshake} failed: the peer does not speak TLS, it sent plaintext (\"{Printable(transport.FirstBytes)}\"). Is it a plaintext client or server?", ex);
        }

        if (ex is IOException && transport.SawEndOfStream)
        {
            return new IOException($"{handshake} failed: the peer closed the connection during the handshake.", ex);
        }

        return ex switch
        {
            AuthenticationException => new AuthenticationException($"{handshake} failed: {Cause(ex)}", ex),
            IOException => new IOException($"{handshake} failed: {Cause(ex)}", ex),
            _ => ex,
        };
    }

    /// <summary>
    /// The messages down the exception's chain that say something: SslStream's "Authentication failed, see inner
    /// exception." hides OpenSSL's reason ("tlsv1 alert no application protocol") two levels down.
    /// </summary>
    private static string Cause(Exception ex)
    {
        var parts = new List<string>();
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            if (!e.Message.Contains("see inner exception", StringComparison.OrdinalIgnoreCase))
            {
                parts.Add(e.Message.TrimEnd());
            }
        }

        return parts.Count > 0 ? string.Join(" ", parts) : ex.Message;
    }

    /// <summary>
    /// True when the peer's first byte cannot start a TLS record: TLS records begin with a content type from 20 to 23
    /// (a handshake is 22), and an SSLv2-style hello has its high bit set. Text protocols start with letters or digits.
    /// </summary>
    private static bool IsPlaintext(ReadOnlySpan<byte> first) =>
        first.Length > 0 && first[0] is not (>= 20 and <= 23) && (first[0] & 0x80) == 0;

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length * 2);
        foreach (byte b in bytes)
        {
            string shown = b switch
            {
                >= 0x20 and < 0x7f => ((char)b).ToString(),
                (byte)'\r' => "\\r",
                (byte)'\n' => "\\n",
                _ => $"\\x{b:x2}",
            };
            text.Append(shown);
        }

        return text.ToString();
    }
}
