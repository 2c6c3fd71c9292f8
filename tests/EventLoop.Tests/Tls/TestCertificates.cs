using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EventLoop.Tests.Tls;

/// <summary>
/// Self-signed certificates made in the test process (ECDSA P-256: fast to make, fast to handshake). On Linux,
/// SslStream takes <c>CertificateRequest.CreateSelfSigned</c>'s certificate with its ephemeral key as it is; no
/// PFX export and re-import is needed (that is Windows' SChannel, which wants a persisted key).
/// </summary>
internal static class TestCertificates
{
    private static readonly ConcurrentDictionary<string, X509Certificate2> Made = new();

    /// <summary>A certificate for <paramref name="name"/> (its subject CN and DNS name), made once per process.</summary>
    public static X509Certificate2 For(string name) => Made.GetOrAdd(name, static n =>
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={n}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(n);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
    });

    /// <summary>The server's certificate for "localhost".</summary>
    public static X509Certificate2 Localhost => For("localhost");

    /// <summary>
    /// A chain policy that trusts exactly <paramref name="roots"/>: .NET's own way to trust a private CA, so the default
    /// validation still checks the host name (no callback that could hide a mismatch).
    /// </summary>
    public static X509ChainPolicy Trusting(params X509Certificate2[] roots)
    {
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.AddRange(roots);
        return policy;
    }

    /// <summary>Server options with <see cref="Localhost"/>.</summary>
    public static SslServerAuthenticationOptions Server(params SslApplicationProtocol[] alpn) => new()
    {
        ServerCertificateContext = SslStreamCertificateContext.Create(Localhost, additionalCertificates: null),
        ApplicationProtocols = alpn.Length > 0 ? [.. alpn] : null,
    };

    /// <summary>Client options for "localhost" that trust <see cref="Localhost"/> and nothing else.</summary>
    public static SslClientAuthenticationOptions Client(string host = "localhost", params SslApplicationProtocol[] alpn) => new()
    {
        TargetHost = host,
        CertificateChainPolicy = Trusting(Localhost),
        ApplicationProtocols = alpn.Length > 0 ? [.. alpn] : null,
    };
}
