using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EventLoop.Libuv;

using static EventLoop.Benchmarking.BenchProcess;

namespace EventLoop.EchoBenchmark;

/// <summary>
/// The TLS echo benchmark (<c>--tls</c>): the same harness, rounds and report as the TCP echo, with TLS 1.3 servers
/// and the C client over OpenSSL (<c>benchmarks/echo/tls_echo_client.c</c>). The certificate is a self-signed
/// ECDSA P-256 one for localhost, written as PEM into the harness's obj folder at the start of a run; every
/// server loads it, and the client trusts exactly it.
/// </summary>
internal static class TlsEcho
{
    private const string Host = "127.0.0.1";

    /// <summary>The compiler flags for the TLS client, also quoted in the report.</summary>
    public const string ClientFlags = "-O2 -std=c11 -Wall -Wextra";

    /// <summary>Where a run's certificate lives: the certificate alone (the client's trust), and with its key (the servers').</summary>
    internal sealed record CertificateFiles(string Certificate, string CertificateAndKey);

    /// <summary>Makes the run's certificate and writes both PEM files.</summary>
    public static CertificateFiles WriteCertificate(string repo)
    {
        string directory = Path.Combine(repo, "benchmarks", "EventLoop.EchoBenchmark", "obj", "tls");
        Directory.CreateDirectory(directory);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
        string pem = certificate.ExportCertificatePem() + "\n";
        var files = new CertificateFiles(Path.Combine(directory, "localhost.pem"), Path.Combine(directory, "localhost-with-key.pem"));
        File.WriteAllText(files.Certificate, pem);
        File.WriteAllText(files.CertificateAndKey, pem + key.ExportPkcs8PrivateKeyPem() + "\n");
        return files;
    }

    /// <summary>The TLS client (C, OpenSSL), built when missing or older than its source; null with the reason when it cannot be.</summary>
    public static (ClientSpec? Client, string? Problem) BuildClient(string repo, CertificateFiles certificate)
    {
        string source = Path.Combine(repo, "benchmarks", "echo", "tls_echo_client.c");
        string? compiler = FindOnPath("gcc") ?? FindOnPath("cc") ?? FindOnPath("clang");
        if (compiler is null)
        {
            return (null, "no C compiler found: `apt-get install -y gcc libssl-dev`");
        }

        string directory = Path.Combine(repo, "benchmarks", "EventLoop.EchoBenchmark", "obj", "native");
        string binary = Path.Combine(directory, "tls_echo_client");
        string openssl = Capture(FindOnPath("openssl") ?? "openssl", "version");
        string description = $"C epoll TLS client `benchmarks/echo/tls_echo_client.c` (one thread, non-blocking OpenSSL {openssl.Replace("OpenSSL ", "", StringComparison.Ordinal)}, " +
            "TLS 1.3 with TLS_AES_256_GCM_SHA384 only, the server's certificate verified, handshakes before the warm-up, every reply byte checked), " +
            $"built with {Capture(compiler, "--version").Split('\n')[0].Trim()} `{ClientFlags} -lssl -lcrypto`";
        ClientSpec Spec() => new("c-tls", binary, ["--ca", certificate.Certificate], description);
        if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) >= File.GetLastWriteTimeUtc(source))
        {
            return (Spec(), null);
        }

        Directory.CreateDirectory(directory);
        string temporary = $"{binary}.{Environment.ProcessId}.tmp";
        var info = new ProcessStartInfo(compiler) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in ClientFlags.Split(' ').Concat(["-o", temporary, source, "-lssl", "-lcrypto"]))
        {
            info.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {compiler}.");
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0 || !File.Exists(temporary))
        {
            File.Delete(temporary);
            string first = stderr.GetAwaiter().GetResult().Split('\n').FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)) ?? "";
            return (null, $"could not build {source} (is libssl-dev installed? `apt-get install -y libssl-dev`): {first}");
        }

        File.Move(temporary, binary, overwrite: true);
        Console.WriteLine($"built {binary} with {compiler}");
        return (Spec(), null);
    }

    /// <summary>The TLS client, or null after saying on stderr why there is none (there is no .NET fallback for TLS).</summary>
    public static ClientSpec? ChooseClient(string repo, CertificateFiles certificate)
    {
        (ClientSpec? client, string? problem) = BuildClient(repo, certificate);
        if (client is null)
        {
            Console.Error.WriteLine($"The TLS client could not be built: {problem}.");
        }

        return client;
    }

    /// <summary>The ways to start each TLS server, as <see cref="Orchestrator"/> tries them.</summary>
    public static List<ServerSpec> Candidates(string name, string repo, Options options, CertificateFiles certificate, List<string> notes)
    {
        string self = typeof(TlsEcho).Assembly.Location;
        string dotnet = DotnetHost();
        string cert = certificate.CertificateAndKey;
        var list = new List<ServerSpec>();
        switch (name)
        {
            case "threadpool":
                list.Add(new ServerSpec(name, ".NET thread-pool SslStream echo server (async accept loop, one task per connection, SslStream over NetworkStream, 64 KiB buffer; this harness)",
                    port => (dotnet, [self, "tls-server", "threadpool", "--host", Host, "--port", Str(port), "--cert", cert])));
                break;
            case "managed" or "libuv":
                string samples = Path.Combine(repo, "samples", "EventLoop.Samples", "bin", "Release", "net10.0", "EventLoop.Samples.dll");
                if (!options.ServerInProc && File.Exists(samples))
                {
                    list.Add(new ServerSpec(name, $"samples runner `echo-server --tls --cert PEM --loop {name}` (`loop.ListenTlsAsync`)",
                        port => (dotnet, [samples, "echo-server", "--tls", "--cert", cert, "--loop", name, "--host", Host, "--port", Str(port)])));
                }

                list.Add(new ServerSpec(name, $"this harness's loop TLS echo server on the {name} loop (`tls-server loop --loop {name}`)",
                    port => (dotnet, [self, "tls-server", "loop", "--loop", name, "--host", Host, "--port", Str(port), "--cert", cert])));
                break;
            case "uvloop":
                string? python = FindPythonWith("import uvloop, ssl");
                if (python is null)
                {
                    notes.Add("uvloop: not measured, no python3 with uvloop (apt-get install -y python3-uvloop).");
                    break;
                }

                string script = Path.Combine(repo, "benchmarks", "echo", "uvloop_echo.py");
                string version = Capture(python, "-c", "import uvloop, ssl; print(uvloop.__version__, '/', ssl.OPENSSL_VERSION)");
                list.Add(new ServerSpec(name, $"uvloop {version} asyncio.Protocol echo with `ssl=` (`benchmarks/echo/uvloop_echo.py --certfile PEM`)",
                    port => (python, [script, "--host", Host, "--port", Str(port), "--certfile", cert])));
                break;
            default:
                notes.Add($"{name}: no TLS server in this harness; not measured.");
                break;
        }

        return list;
    }

    // ------------------------------------------------------------------ the servers this harness hosts

    /// <summary><c>tls-server threadpool|loop [--loop managed|libuv] --host H --port N --cert PEM</c>.</summary>
    public static async Task<int> RunServerFromArgsAsync(string[] args)
    {
        if (args.Length == 0)
        {
            throw new ArgumentException("tls-server needs a kind: threadpool or loop.");
        }

        string host = "127.0.0.1", loopName = "managed";
        string? certPath = null;
        int port = 0;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--host": host = Next(); break;
                case "--port": port = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--loop": loopName = Next(); break;
                case "--cert": certPath = Next(); break;
                default: throw new ArgumentException($"Unknown tls-server option '{args[i]}'.");
            }
        }

        using X509Certificate2 certificate = X509Certificate2.CreateFromPemFile(certPath ?? throw new ArgumentException("tls-server needs --cert PEM."));
        var options = new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(certificate, null) };
        var endpoint = new IPEndPoint(IPAddress.Parse(host), port);
        switch (args[0])
        {
            case "threadpool":
                await RunThreadPoolServerAsync(endpoint, options);
                return 0;
            case "loop":
                LoopPolicy policy = loopName switch
                {
                    "managed" => new ManagedLoopPolicy(),
                    "libuv" => new LibuvLoopPolicy(),
                    _ => throw new ArgumentException($"--loop must be managed or libuv, not '{loopName}'."),
                };
                Loop.Run(() => RunLoopServerAsync(endpoint, options, loopName), policy);
                return 0;
            default:
                throw new ArgumentException($"Unknown tls-server kind '{args[0]}'.");
        }
    }

    /// <summary>
    /// The baseline: what a .NET developer writes without a loop. An accept loop and one task per connection on the
    /// thread pool: SslStream over a NetworkStream, reading into a buffer and writing it back.
    /// </summary>
    private static async Task RunThreadPoolServerAsync(IPEndPoint endpoint, SslServerAuthenticationOptions options)
    {
        using var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(endpoint);
        listener.Listen(512);
        Console.WriteLine($"threadpool TLS echo server listening on {listener.LocalEndPoint}");
        while (true)
        {
            Socket socket = await listener.AcceptAsync();
            socket.NoDelay = true;
            _ = Task.Run(() => EchoSslAsync(socket, options));
        }
    }

    private static async Task EchoSslAsync(Socket socket, SslServerAuthenticationOptions options)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
            await ssl.AuthenticateAsServerAsync(options);
            while (true)
            {
                int received = await ssl.ReadAsync(buffer);
                if (received == 0)
                {
                    break;
                }

                await ssl.WriteAsync(buffer.AsMemory(0, received));
            }
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Our loop's TLS echo over <see cref="Connection"/> pipes (with --server-inproc, or when the samples runner is not built).</summary>
    private static async Task RunLoopServerAsync(IPEndPoint endpoint, SslServerAuthenticationOptions options, string loopName)
    {
        Loop loop = Loop.Current;
        await using ConnectionListener listener = await loop.ListenTlsAsync(endpoint, options, new TcpOptions { Backlog = 1024 });
        Console.WriteLine($"{loopName} loop TLS echo server listening on {listener.LocalEndPoint}");
        await foreach (Connection connection in listener)
        {
            _ = EchoConnectionAsync(connection);
        }
    }

    private static async Task EchoConnectionAsync(Connection connection)
    {
        try
        {
            PipeReader input = connection.Input;
            PipeWriter output = connection.Output;
            while (true)
            {
                ReadResult result = await input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    output.Write(segment.Span);
                }

                input.AdvanceTo(result.Buffer.End);
                FlushResult flush = await output.FlushAsync();
                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (IOException)
        {
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }
}
