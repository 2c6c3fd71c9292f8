using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EventLoop.Samples.Demos;

/// <summary>The echo server's certificate for <c>--tls</c>: loaded from <c>--cert</c>, or made at start-up.</summary>
internal static class TlsCertificate
{
    /// <summary>Server options with the certificate at <paramref name="path"/>, or a self-signed one for localhost when null.</summary>
    /// <param name="path">A PEM file holding the certificate and its private key, or a PKCS#12 file (<c>.pfx</c>, <c>.p12</c>, no password).</param>
    public static SslServerAuthenticationOptions ServerOptions(string? path)
    {
        X509Certificate2 certificate = path is null ? SelfSigned("localhost") : Load(path);
        return new SslServerAuthenticationOptions
        {
            // The chain is built once here, not per handshake.
            ServerCertificateContext = SslStreamCertificateContext.Create(certificate, additionalCertificates: null),
        };
    }

    /// <summary>A self-signed ECDSA P-256 certificate for <paramref name="name"/> and 127.0.0.1, valid for a week.</summary>
    public static X509Certificate2 SelfSigned(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false)); // serverAuth
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(7));
    }

    private static X509Certificate2 Load(string path)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        X509Certificate2 certificate = extension is ".pfx" or ".p12"
            ? X509CertificateLoader.LoadPkcs12FromFile(path, password: null)
            : X509Certificate2.CreateFromPemFile(path); // the certificate and its key in one PEM file
        if (!certificate.HasPrivateKey)
        {
            throw new CryptographicException($"{path} holds no private key for its certificate.");
        }

        return certificate;
    }
}
