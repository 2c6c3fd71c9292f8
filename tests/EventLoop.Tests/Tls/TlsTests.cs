using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace EventLoop.Tests.Tls;

/// <summary>
/// TLS on the loop's connections (SslStream over the connection pipes), written once for every loop policy:
/// handshakes, ALPN, SNI, client certificates, failures that must stay with one connection, STARTTLS,
/// backpressure through both layers, and closing from other threads and at shutdown. Certificates are made in
/// the test (<see cref="TestCertificates"/>); everything binds 127.0.0.1 with port 0.
/// </summary>
public abstract class TlsTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout;

    private static IPEndPoint AnyLoopbackPort => TestPipes.AnyLoopbackPort;

    // ------------------------------------------------------------------ helpers

    /// <summary>Echoes until the peer's end of stream, then disposes (close_notify, FIN).</summary>
    private static async Task EchoAsync(Connection connection)
    {
        await using (connection)
        {
            while (true)
            {
                ReadResult result = await connection.Input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    connection.Output.Write(segment.Span);
                }

                connection.Input.AdvanceTo(result.Buffer.End);
                FlushResult flush = await connection.Output.FlushAsync();
                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
    }

    /// <summary>Accepts and echoes every connection until the listener is disposed; echo failures are collected, not thrown.</summary>
    private static async Task ServeEchoAsync(ConnectionListener listener, List<Task>? handlers = null)
    {
        await foreach (Connection connection in listener)
        {
            Task handler = EchoAsync(connection);
            handlers?.Add(handler);
        }
    }

    private static async Task<long> ReadToEndAsync(PipeReader reader, IncrementalHash? hash = null)
    {
        long total = 0;
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                hash?.AppendData(segment.Span);
            }

            total += result.Buffer.Length;
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return total;
            }
        }
    }

    /// <summary>Writes <paramref name="text"/>, reads its echo back, and checks it.</summary>
    private static async Task AssertEchoesAsync(Connection client, string text)
    {
        byte[] message = Encoding.ASCII.GetBytes(text);
        await client.Output.WriteAsync(message);
        Assert.Equal(message, await TestPipes.ReadExactlyAsync(client.Input, message.Length).WaitAsync(Timeout));
    }

    /// <summary>Collects a listener's failed handshakes (<see cref="TlsOptions.HandshakeFailed"/>).</summary>
    private sealed class HandshakeFailures
    {
        private readonly TaskCompletionSource<(EndPoint? Peer, Exception Error)> _first = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<(EndPoint? Peer, Exception Error)> All { get; } = [];

        public List<int> Threads { get; } = [];

        public Task<(EndPoint? Peer, Exception Error)> First => _first.Task;

        public TlsOptions Options(TimeSpan? timeout = null) => new()
        {
            HandshakeTimeout = timeout ?? TimeSpan.FromSeconds(10),
            HandshakeFailed = (peer, error) =>
            {
                All.Add((peer, error));
                Threads.Add(Environment.CurrentManagedThreadId);
                _first.TrySetResult((peer, error));
            },
        };
    }

    // ------------------------------------------------------------------ handshake and echo

    [Fact]
    public void A_handshake_then_an_echo_run_on_the_loop_thread_and_say_what_was_negotiated()
    {
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            var selectionThreads = new List<int>();
            var validationThreads = new List<int>();
            var serverOptions = new SslServerAuthenticationOptions
            {
                ServerCertificateSelectionCallback = (_, name) =>
                {
                    selectionThreads.Add(Environment.CurrentManagedThreadId);
                    return TestCertificates.Localhost;
                },
            };
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, serverOptions);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            SslClientAuthenticationOptions clientOptions = TestCertificates.Client();
            clientOptions.RemoteCertificateValidationCallback = (_, _, _, errors) =>
            {
                validationThreads.Add(Environment.CurrentManagedThreadId);
                return errors == SslPolicyErrors.None;
            };

            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, clientOptions).AsTask().WaitAsync(Timeout);
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            TlsConnection server = Assert.IsType<TlsConnection>(await accept.WaitAsync(Timeout));

            // SslStream's own continuations (it calls these from inside its handshake) ran on the loop thread.
            Assert.NotEmpty(selectionThreads);
            Assert.NotEmpty(validationThreads);
            Assert.All(selectionThreads.Concat(validationThreads), thread => Assert.Equal(loopThread, thread));

            Assert.True(server.IsServer);
            Assert.False(client.IsServer);
            Assert.Equal("localhost", server.TargetHostName);
            Assert.Equal(TestCertificates.Localhost.GetCertHashString(), client.RemoteCertificate?.GetCertHashString());
            Assert.Equal(TestCertificates.Localhost.GetCertHashString(), server.LocalCertificate?.GetCertHashString());
            Assert.Null(server.RemoteCertificate);
            Assert.True(client.SslProtocol is SslProtocols.Tls13 or SslProtocols.Tls12, $"negotiated {client.SslProtocol}");
            Assert.Equal(client.NegotiatedCipherSuite, server.NegotiatedCipherSuite);
            Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
            Assert.Equal(server.LocalEndPoint, client.RemoteEndPoint);
            Assert.Equal(default, client.NegotiatedApplicationProtocol); // no ALPN offered

            Task echo = EchoAsync(server);
            for (int i = 0; i < 100; i++)
            {
                await AssertEchoesAsync(client, $"message {i:D4}");
                Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            }

            await client.ShutdownSendAsync().AsTask().WaitAsync(Timeout);
            Assert.Equal(0, await ReadToEndAsync(client.Input).WaitAsync(Timeout)); // the server's close_notify
            Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
            await echo.WaitAsync(Timeout);
            Assert.True(client.ConnectionClosed.IsCancellationRequested);
        });
    }

    [Fact]
    public void Echo_of_16_MiB_through_TLS_arrives_whole_with_the_same_checksum()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server());
            var handlers = new List<Task>();
            Task serve = ServeEchoAsync(listener, handlers);
            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);

            byte[] payload = TestPipes.RandomPayload(16 * 1024 * 1024, seed: 42);
            byte[] expected = SHA256.HashData(payload);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Task<long> reading = ReadToEndAsync(client.Input, hash);
            for (int offset = 0; offset < payload.Length; offset += 100_000)
            {
                int size = Math.Min(100_000, payload.Length - offset);
                await client.Output.WriteAsync(payload.AsMemory(offset, size)).AsTask().WaitAsync(Timeout);
            }

            await client.ShutdownSendAsync().AsTask().WaitAsync(Timeout);
            Assert.Equal(payload.Length, await reading.WaitAsync(Timeout));
            Assert.Equal(expected, hash.GetHashAndReset());
            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
            await Task.WhenAll(handlers).WaitAsync(Timeout);
        });
    }

    [Fact]
    public void Half_close_sends_close_notify_and_a_FIN_and_the_half_closed_side_still_receives()
    {
        RunLoop(async loop =>
        {
            // The server upgrades a plaintext connection it holds, so the test can watch the TCP layer under TLS too.
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Task<TlsConnection> connecting = loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask();
            Connection serverTcp = await accept.WaitAsync(Timeout);
            await using TlsConnection server = await serverTcp.StartTlsAsync(TestCertificates.Server()).AsTask().WaitAsync(Timeout);
            await using TlsConnection client = await connecting.WaitAsync(Timeout);

            await client.Output.WriteAsync("question"u8.ToArray());
            await client.ShutdownSendAsync().AsTask().WaitAsync(Timeout);
            Assert.Equal("question"u8.ToArray(), await TestPipes.ReadToEndAsync(server.Input).WaitAsync(Timeout));
            Assert.True(server.ConnectionClosed.IsCancellationRequested);

            // close_notify ended the TLS stream; the FIN after it ends the TCP connection's input under it.
            var fin = new TaskCompletionSource();
            using (serverTcp.ConnectionClosed.Register(() => fin.TrySetResult()))
            {
                await fin.Task.WaitAsync(Timeout);
            }

            await server.Output.WriteAsync("answer"u8.ToArray());
            await server.DisposeAsync().AsTask().WaitAsync(Timeout);
            Assert.Equal("answer"u8.ToArray(), await TestPipes.ReadToEndAsync(client.Input).WaitAsync(Timeout));
        });
    }

    // ------------------------------------------------------------------ ALPN, SNI, client certificates

    [Fact]
    public void ALPN_settles_on_a_protocol_both_offer_and_fails_the_handshake_when_there_is_none()
    {
        RunLoop(async loop =>
        {
            var failures = new HandshakeFailures();
            var options = TestCertificates.Server(SslApplicationProtocol.Http2, SslApplicationProtocol.Http11);
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, options, tlsOptions: failures.Options());
            Task<Connection> accept = listener.AcceptAsync().AsTask();

            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint,
                TestCertificates.Client("localhost", SslApplicationProtocol.Http11, new SslApplicationProtocol("other"))).AsTask().WaitAsync(Timeout);
            var server = (TlsConnection)await accept.WaitAsync(Timeout);
            Assert.Equal(SslApplicationProtocol.Http11, client.NegotiatedApplicationProtocol);
            Assert.Equal(SslApplicationProtocol.Http11, server.NegotiatedApplicationProtocol);
            await server.DisposeAsync();

            // Nothing in common: both sides fail, and the client's error says why.
            AuthenticationException none = await Assert.ThrowsAsync<AuthenticationException>(() =>
                loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client("localhost", new SslApplicationProtocol("other"))).AsTask().WaitAsync(Timeout));
            Assert.Contains("application protocol", none.Message);
            Assert.Contains("TLS handshake with", none.Message);
            (_, Exception serverError) = await failures.First.WaitAsync(Timeout);
            Assert.IsType<AuthenticationException>(serverError);
        });
    }

    [Fact]
    public void SNI_picks_the_certificate_by_the_name_the_client_asks_for()
    {
        RunLoop(async loop =>
        {
            X509Certificate2 alpha = TestCertificates.For("alpha.test"), beta = TestCertificates.For("beta.test");
            var names = new List<string?>();
            var serverOptions = new SslServerAuthenticationOptions
            {
                ServerCertificateSelectionCallback = (_, name) =>
                {
                    names.Add(name);
                    return name == "beta.test" ? beta : alpha;
                },
            };
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, serverOptions);
            foreach (X509Certificate2 expected in new[] { alpha, beta })
            {
                string host = expected.GetNameInfo(X509NameType.DnsName, forIssuer: false);
                Task<Connection> accept = listener.AcceptAsync().AsTask();
                var clientOptions = new SslClientAuthenticationOptions { TargetHost = host, CertificateChainPolicy = TestCertificates.Trusting(alpha, beta) };
                await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, clientOptions).AsTask().WaitAsync(Timeout);
                await using var server = (TlsConnection)await accept.WaitAsync(Timeout);
                Assert.Equal(expected.GetCertHashString(), client.RemoteCertificate?.GetCertHashString());
                Assert.Equal(host, server.TargetHostName);
            }

            Assert.Contains("alpha.test", names);
            Assert.Contains("beta.test", names);
        });
    }

    [Fact]
    public void The_options_callback_chooses_certificate_and_ALPN_per_client_hello()
    {
        RunLoop(async loop =>
        {
            X509Certificate2 alpha = TestCertificates.For("alpha.test"), beta = TestCertificates.For("beta.test");
            int loopThread = Environment.CurrentManagedThreadId;
            var threads = new List<int>();
            ServerOptionsSelectionCallback choose = (_, hello, state, _) =>
            {
                threads.Add(Environment.CurrentManagedThreadId);
                Assert.Equal("state", state);
                bool isBeta = hello.ServerName == "beta.test";
                return ValueTask.FromResult(new SslServerAuthenticationOptions
                {
                    ServerCertificate = isBeta ? beta : alpha,
                    ApplicationProtocols = [new SslApplicationProtocol(isBeta ? "b-proto" : "a-proto")],
                });
            };
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, choose, "state");
            foreach ((X509Certificate2 expected, string protocol) in new[] { (alpha, "a-proto"), (beta, "b-proto") })
            {
                var clientOptions = new SslClientAuthenticationOptions
                {
                    TargetHost = expected.GetNameInfo(X509NameType.DnsName, forIssuer: false),
                    CertificateChainPolicy = TestCertificates.Trusting(alpha, beta),
                    ApplicationProtocols = [new SslApplicationProtocol("a-proto"), new SslApplicationProtocol("b-proto")],
                };
                Task<Connection> accept = listener.AcceptAsync().AsTask();
                await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, clientOptions).AsTask().WaitAsync(Timeout);
                await using Connection server = await accept.WaitAsync(Timeout);
                Assert.Equal(expected.GetCertHashString(), client.RemoteCertificate?.GetCertHashString());
                Assert.Equal(protocol, client.NegotiatedApplicationProtocol.ToString());
            }

            Assert.Equal(2, threads.Count);
            Assert.All(threads, thread => Assert.Equal(loopThread, thread));
        });
    }

    [Fact]
    public void A_client_certificate_reaches_the_server_and_a_missing_one_fails_only_that_handshake()
    {
        RunLoop(async loop =>
        {
            X509Certificate2 clientCertificate = TestCertificates.For("client.test");
            var failures = new HandshakeFailures();
            var serverOptions = new SslServerAuthenticationOptions
            {
                ServerCertificate = TestCertificates.Localhost,
                ClientCertificateRequired = true,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate?.GetCertHashString() == clientCertificate.GetCertHashString(),
            };
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, serverOptions, tlsOptions: failures.Options());

            // Without a certificate: the server refuses the handshake (with TLS 1.3 the client learns it on its first read).
            SslClientAuthenticationOptions anonymous = TestCertificates.Client();
            try
            {
                await using TlsConnection refused = await loop.ConnectTlsAsync(listener.LocalEndPoint, anonymous).AsTask().WaitAsync(Timeout);
                await refused.Output.WriteAsync("anyone?"u8.ToArray());
                // Either the alert (an IOException naming it) or the end of the stream (EndOfStreamException, an IOException too).
                await Assert.ThrowsAnyAsync<IOException>(async () =>
                {
                    ReadResult result = await refused.Input.ReadAsync().AsTask().WaitAsync(Timeout);
                    Assert.True(result.IsCompleted && result.Buffer.IsEmpty, "the refused client read data");
                    throw new EndOfStreamException();
                });
            }
            catch (AuthenticationException)
            {
                // TLS 1.2: the client's own handshake fails.
            }

            (_, Exception serverError) = await failures.First.WaitAsync(Timeout);
            Assert.IsType<AuthenticationException>(serverError);
            Assert.Contains("RemoteCertificateValidationCallback", serverError.Message);

            // With one: accepted, and the server sees it.
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            SslClientAuthenticationOptions withCertificate = TestCertificates.Client();
            withCertificate.ClientCertificates = [clientCertificate];
            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, withCertificate).AsTask().WaitAsync(Timeout);
            var server = (TlsConnection)await accept.WaitAsync(Timeout);
            Assert.Equal(clientCertificate.GetCertHashString(), server.RemoteCertificate?.GetCertHashString());
            Task echo = EchoAsync(server);
            await AssertEchoesAsync(client, "certified");
            await client.ShutdownSendAsync();
            await echo.WaitAsync(Timeout);
            Assert.Single(failures.All);
        });
    }

    // ------------------------------------------------------------------ failures stay with their connection

    [Fact]
    public void A_client_that_distrusts_the_certificate_or_its_name_fails_and_the_listener_serves_others()
    {
        RunLoop(async loop =>
        {
            var failures = new HandshakeFailures();
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server(), tlsOptions: failures.Options());
            var handlers = new List<Task>();
            Task serve = ServeEchoAsync(listener, handlers);

            // The machine's trust store does not know the self-signed certificate.
            AuthenticationException untrusted = await Assert.ThrowsAsync<AuthenticationException>(() =>
                loop.ConnectTlsAsync(listener.LocalEndPoint, new SslClientAuthenticationOptions { TargetHost = "localhost" }).AsTask().WaitAsync(Timeout));
            Assert.Contains("UntrustedRoot", untrusted.Message);
            Assert.Contains(listener.LocalEndPoint.ToString()!, untrusted.Message);

            // Trusted, but not for this name.
            AuthenticationException wrongName = await Assert.ThrowsAsync<AuthenticationException>(() =>
                loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client("wrong.test")).AsTask().WaitAsync(Timeout));
            Assert.Contains("RemoteCertificateNameMismatch", wrongName.Message);

            // The listener goes on serving.
            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);
            await AssertEchoesAsync(client, "still serving");
            await client.ShutdownSendAsync();
            Assert.Equal(0, await ReadToEndAsync(client.Input).WaitAsync(Timeout));

            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);

            // With TLS 1.3 the server finishes its handshake before the client judges the certificate: the refused
            // clients' connections were accepted and then ended with an error or an empty stream; either way each
            // ended on its own.
            foreach (Task handler in handlers)
            {
                await handler.ContinueWith(_ => { }, TaskScheduler.Default).WaitAsync(Timeout);
            }
        });
    }

    [Fact]
    public void A_plaintext_client_on_a_TLS_port_fails_its_own_handshake_and_others_are_served()
    {
        RunLoop(async loop =>
        {
            var failures = new HandshakeFailures();
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server(), tlsOptions: failures.Options());
            Task serve = ServeEchoAsync(listener);

            await using Connection plaintext = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await plaintext.Output.WriteAsync("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"u8.ToArray());
            (EndPoint? peer, Exception error) = await failures.First.WaitAsync(Timeout);
            Assert.Equal(plaintext.LocalEndPoint, peer);
            AuthenticationException authentication = Assert.IsType<AuthenticationException>(error);
            Assert.Contains("plaintext", authentication.Message);
            Assert.Contains("GET / HT", authentication.Message);

            // Its connection was closed: a reset, or an end of stream.
            try
            {
                Assert.Equal(0, await ReadToEndAsync(plaintext.Input).WaitAsync(Timeout));
            }
            catch (IOException)
            {
            }

            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);
            await AssertEchoesAsync(client, "served");
            Assert.Single(failures.All);
            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
        });
    }

    [Fact]
    public void A_TLS_client_of_a_plaintext_server_is_told_the_server_does_not_speak_TLS()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener plainServer = await loop.ListenTcpAsync(AnyLoopbackPort);
            async Task GreetAsync()
            {
                await using Connection connection = await plainServer.AcceptAsync();
                await connection.Output.WriteAsync("220 smtp.test ESMTP ready\r\n"u8.ToArray());
                try
                {
                    await ReadToEndAsync(connection.Input);
                }
                catch (IOException)
                {
                }
            }

            Task greeting = GreetAsync();
            AuthenticationException error = await Assert.ThrowsAsync<AuthenticationException>(() =>
                loop.ConnectTlsAsync(plainServer.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout));
            Assert.Contains("does not speak TLS", error.Message);
            Assert.Contains("220 smtp", error.Message);
            await greeting.WaitAsync(Timeout);
        });
    }

    [Fact]
    public void A_client_that_stalls_mid_handshake_is_timed_out_while_others_are_served()
    {
        RunLoop(async loop =>
        {
            var failures = new HandshakeFailures();
            TimeSpan timeout = TimeSpan.FromSeconds(2);
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server(), tlsOptions: failures.Options(timeout));
            Task serve = ServeEchoAsync(listener);
            await using (TlsConnection warm = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout))
            {
                await AssertEchoesAsync(warm, "warm-up"); // code paths compiled before the clock starts
            }

            // The start of a TLS record header, then nothing.
            TimeSpan start = loop.Time;
            await using Connection stalled = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await stalled.Output.WriteAsync(new byte[] { 0x16, 0x03, 0x01 });

            // Meanwhile another client is served at once.
            await using (TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout))
            {
                await AssertEchoesAsync(client, "not held up");
            }

            Assert.Empty(failures.All);
            (EndPoint? peer, Exception error) = await failures.First.WaitAsync(Timeout);
            TimeSpan waited = loop.Time - start;
            Assert.Equal(stalled.LocalEndPoint, peer);
            IOException timedOut = Assert.IsType<IOException>(error);
            Assert.IsType<TimeoutException>(timedOut.InnerException);
            Assert.Contains("did not complete within 2 s", timedOut.Message);
            Assert.True(waited >= timeout - TimeSpan.FromMilliseconds(50), $"timed out after {waited}");

            // The stalled connection was closed (reset).
            await Assert.ThrowsAnyAsync<IOException>(() => ReadToEndAsync(stalled.Input).WaitAsync(Timeout));
            await using (TlsConnection after = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout))
            {
                await AssertEchoesAsync(after, "after the timeout");
            }

            Assert.Single(failures.All);
            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
        });
    }

    [Fact]
    public void A_client_handshake_times_out_against_a_silent_server_and_is_cancelled_by_its_token()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener silent = await loop.ListenTcpAsync(AnyLoopbackPort);
            var accepted = new List<Connection>();
            async Task AcceptSilentlyAsync()
            {
                await foreach (Connection connection in silent)
                {
                    accepted.Add(connection); // and never answer
                }
            }

            Task accepting = AcceptSilentlyAsync();
            IOException timedOut = await Assert.ThrowsAsync<IOException>(() =>
                loop.ConnectTlsAsync(silent.LocalEndPoint, TestCertificates.Client(), tlsOptions: new TlsOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(300) })
                    .AsTask().WaitAsync(Timeout));
            Assert.IsType<TimeoutException>(timedOut.InnerException);

            using var cts = new CancellationTokenSource();
            Task<TlsConnection> connecting = loop.ConnectTlsAsync(silent.LocalEndPoint, TestCertificates.Client(), cancellationToken: cts.Token).AsTask();
            loop.CallLater(TimeSpan.FromMilliseconds(100), cts.Cancel);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connecting.WaitAsync(Timeout));

            ArgumentOutOfRangeException bad = Assert.Throws<ArgumentOutOfRangeException>(() =>
                loop.ConnectTlsAsync(silent.LocalEndPoint, TestCertificates.Client(), tlsOptions: new TlsOptions { HandshakeTimeout = TimeSpan.Zero }));
            Assert.Equal(nameof(TlsOptions.HandshakeTimeout), bad.ParamName);

            await silent.DisposeAsync();
            await accepting.WaitAsync(Timeout);
            foreach (Connection connection in accepted)
            {
                await connection.DisposeAsync();
            }
        });
    }

    [Fact]
    public void Without_a_HandshakeFailed_callback_a_failed_handshake_goes_to_the_exception_handler_once()
    {
        ExpectErrors = true;
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server());
            Task serve = ServeEchoAsync(listener);
            await using (Connection plaintext = await loop.ConnectTcpAsync(listener.LocalEndPoint))
            {
                await plaintext.Output.WriteAsync("HELLO\r\n"u8.ToArray());
                while (UnhandledErrors.Count == 0)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(5)).WaitAsync(Timeout);
                }
            }

            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);
            await AssertEchoesAsync(client, "served");
            LoopExceptionContext report = Assert.Single(UnhandledErrors);
            Assert.Contains("TLS handshake on", report.Message);
            Assert.IsType<AuthenticationException>(report.Exception);
            await listener.DisposeAsync();
            await serve.WaitAsync(Timeout);
        });
    }

    // ------------------------------------------------------------------ STARTTLS

    [Fact]
    public void STARTTLS_upgrades_mid_stream_and_the_client_hello_already_buffered_is_not_lost()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection clientPlain = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            Connection serverPlain = await accept.WaitAsync(Timeout);

            // A plaintext exchange first.
            await clientPlain.Output.WriteAsync("EHLO client\r\n"u8.ToArray());
            Assert.Equal("EHLO client\r\n"u8.ToArray(), await TestPipes.ReadExactlyAsync(serverPlain.Input, 13).WaitAsync(Timeout));
            await serverPlain.Output.WriteAsync("250 hello\r\n"u8.ToArray());
            Assert.Equal("250 hello\r\n"u8.ToArray(), await TestPipes.ReadExactlyAsync(clientPlain.Input, 11).WaitAsync(Timeout));

            // The client asks to upgrade and starts its handshake at once: its hello follows the command.
            await clientPlain.Output.WriteAsync("STARTTLS\r\n"u8.ToArray());
            Task<TlsConnection> clientUpgrade = clientPlain.StartTlsAsync(TestCertificates.Client()).AsTask();

            // The server reads the command and waits until the hello is in its buffer too, examining everything (the
            // worst case: an examined buffer makes a plain ReadAsync wait for more), then upgrades.
            byte[] command = "STARTTLS\r\n"u8.ToArray();
            long buffered;
            while (true)
            {
                ReadResult result = await serverPlain.Input.ReadAsync().AsTask().WaitAsync(Timeout);
                buffered = result.Buffer.Length;
                if (buffered > command.Length)
                {
                    Assert.Equal(command, result.Buffer.Slice(0, command.Length).ToArray());
                    Assert.Equal(0x16, result.Buffer.Slice(command.Length, 1).FirstSpan[0]); // a TLS handshake record
                    serverPlain.Input.AdvanceTo(result.Buffer.GetPosition(command.Length), result.Buffer.End);
                    break;
                }

                serverPlain.Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }

            await using TlsConnection server = await serverPlain.StartTlsAsync(TestCertificates.Server()).AsTask().WaitAsync(Timeout);
            await using TlsConnection client = await clientUpgrade.WaitAsync(Timeout);
            Assert.Equal("localhost", server.TargetHostName);

            // Then a TLS exchange both ways, every byte checked.
            byte[] request = TestPipes.RandomPayload(300_000, seed: 7), reply = TestPipes.RandomPayload(200_000, seed: 8);
            Task<byte[]> serverReads = TestPipes.ReadExactlyAsync(server.Input, request.Length);
            await client.Output.WriteAsync(request);
            Assert.Equal(request, await serverReads.WaitAsync(Timeout));
            await server.Output.WriteAsync(reply);
            Assert.Equal(reply, await TestPipes.ReadExactlyAsync(client.Input, reply.Length).WaitAsync(Timeout));

            // Disposing the TLS connections closes the plaintext ones under them.
            await client.DisposeAsync();
            Assert.Equal(0, await ReadToEndAsync(server.Input).WaitAsync(Timeout));
            Assert.True(clientPlain.ConnectionClosed.IsCancellationRequested);
        });
    }

    // ------------------------------------------------------------------ backpressure

    [Fact]
    public void A_slow_reader_holds_the_writer_back_through_TLS_and_buffers_stay_bounded()
    {
        RunLoop(async loop =>
        {
            var options = new TcpOptions
            {
                InputPauseThreshold = 64 * 1024,
                InputResumeThreshold = 32 * 1024,
                OutputPauseThreshold = 64 * 1024,
                OutputResumeThreshold = 32 * 1024,
            };
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server(), options);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client(), options).AsTask().WaitAsync(Timeout);
            await using Connection server = await accept.WaitAsync(Timeout);
            int rentedBefore = loop.MemoryPool.RentedCount;

            // The server writes a counting pattern while the client reads nothing, until a flush stays pending.
            byte[] chunk = new byte[32 * 1024];
            long written = 0;
            int largestRented = 0;
            ValueTask<FlushResult> blocked;
            while (true)
            {
                for (int i = 0; i < chunk.Length; i++)
                {
                    chunk[i] = (byte)((written + i) % 251);
                }

                blocked = server.Output.WriteAsync(chunk);
                written += chunk.Length;
                largestRented = Math.Max(largestRented, loop.MemoryPool.RentedCount);
                Assert.True(written < 256L * 1024 * 1024, "no backpressure after 256 MiB");
                if (!blocked.IsCompleted)
                {
                    using var cts = new CancellationTokenSource();
                    Task delay = loop.DelayAsync(TimeSpan.FromMilliseconds(200), cts.Token);
                    Task<FlushResult> flushed = blocked.AsTask();
                    if (await Task.WhenAny(flushed, delay) != flushed)
                    {
                        blocked = new ValueTask<FlushResult>(flushed);
                        break;
                    }

                    cts.Cancel();
                    largestRented = Math.Max(largestRented, loop.MemoryPool.RentedCount);
                }
            }

            // Bounded: beyond the kernel's socket buffers, each of the eight pipes (TLS and TCP, in and out, both
            // ends) holds about its threshold plus one 64 KiB block.
            Assert.True(written < 64L * 1024 * 1024, $"{written} bytes were accepted before the flush waited");
            largestRented = Math.Max(largestRented, loop.MemoryPool.RentedCount);
            Assert.True(largestRented - rentedBefore <= 20, $"the pipes held {largestRented - rentedBefore} blocks of 64 KiB");

            // The reader catches up: the flush completes, and every byte arrives in order.
            Task<FlushResult> pendingFlush = blocked.AsTask();
            long read = 0;
            while (read < written)
            {
                ReadResult result = await client.Input.ReadAsync().AsTask().WaitAsync(Timeout);
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    ReadOnlySpan<byte> span = segment.Span;
                    for (int i = 0; i < span.Length; i++)
                    {
                        if (span[i] != (byte)((read + i) % 251))
                        {
                            Assert.Fail($"byte {read + i} is {span[i]}, expected {(read + i) % 251}");
                        }
                    }

                    read += span.Length;
                }

                client.Input.AdvanceTo(result.Buffer.End);
            }

            Assert.False((await pendingFlush.WaitAsync(Timeout)).IsCompleted);
            Assert.Equal(written, read);
        });
    }

    [Fact]
    public void Idle_TLS_connections_hold_no_more_pool_blocks_than_the_TCP_connections_under_them()
    {
        RunLoop(async loop =>
        {
            const int Pairs = 40;

            // What idle TCP connections of this loop hold (the managed loop's receive pump holds a block while it
            // waits; libuv takes one only when bytes arrive), measured with the same exchange.
            async Task<int> IdleBlocksAsync(Func<EndPoint, Task<Connection>> connect, Func<Task<ConnectionListener>> listen)
            {
                await using ConnectionListener listener = await listen();
                var connections = new List<Connection>();
                int before = loop.MemoryPool.RentedCount;
                for (int i = 0; i < Pairs; i++)
                {
                    Task<Connection> accept = listener.AcceptAsync().AsTask();
                    Connection client = await connect(listener.LocalEndPoint);
                    Connection server = await accept.WaitAsync(Timeout);
                    connections.Add(client);
                    connections.Add(server);
                    Task echo = EchoOnceAsync(server);
                    await AssertEchoesAsync(client, $"hello {i}");
                    await echo.WaitAsync(Timeout);
                }

                await loop.DelayAsync(TimeSpan.FromMilliseconds(50));
                int held = loop.MemoryPool.RentedCount - before;

                // Each TLS connection waits in a zero-byte read: SslStream holds no buffer of its own for it either.
                foreach (TlsConnection tls in connections.OfType<TlsConnection>())
                {
                    Assert.Equal(0, tls.Core.Transport.WaitingReadSize);
                }

                foreach (Connection connection in connections)
                {
                    await connection.DisposeAsync().AsTask().WaitAsync(Timeout);
                }

                return held;
            }

            static async Task EchoOnceAsync(Connection connection)
            {
                ReadResult result = await connection.Input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    connection.Output.Write(segment.Span);
                }

                connection.Input.AdvanceTo(result.Buffer.End);
                await connection.Output.FlushAsync();
            }

            int tcp = await IdleBlocksAsync(
                async endpoint => await loop.ConnectTcpAsync(endpoint), async () => await loop.ListenTcpAsync(AnyLoopbackPort));
            int tls = await IdleBlocksAsync(
                async endpoint => await loop.ConnectTlsAsync(endpoint, TestCertificates.Client()),
                async () => await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server()));
            Assert.True(tls <= tcp + 2, $"{Pairs * 2} idle TLS connections hold {tls} blocks of 64 KiB, their TCP connections alone {tcp}");
        });
    }

    // ------------------------------------------------------------------ closing

    [Fact]
    public void Dispose_and_abort_from_other_threads_close_on_the_loop()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server());

            // Dispose from the thread pool: what was written goes out, then close_notify; the task completes once closed.
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);
            await using Connection server = await accept.WaitAsync(Timeout);
            int openHandles = loop.OpenNativeHandleCount;
            await client.Output.WriteAsync("last words"u8.ToArray());
            await Task.Run(async () => await client.DisposeAsync()).WaitAsync(Timeout);
            Assert.True(client.ConnectionClosed.IsCancellationRequested);
            Assert.Equal(openHandles - 1, loop.OpenNativeHandleCount); // the TCP connection under it is closed too
            Assert.Equal("last words"u8.ToArray(), await TestPipes.ReadToEndAsync(server.Input).WaitAsync(Timeout));
            await Task.Run(async () => await client.DisposeAsync()).WaitAsync(Timeout); // again: the same close

            // Abort from the thread pool: the peer sees a reset, the aborted side's reads fail with the reason.
            accept = listener.AcceptAsync().AsTask();
            await using TlsConnection second = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);
            await using Connection secondServer = await accept.WaitAsync(Timeout);
            Task<ReadResult> pending = secondServer.Input.ReadAsync().AsTask();
            await Task.Run(() => secondServer.Abort());
            await Assert.ThrowsAsync<ConnectionAbortedException>(() => pending.WaitAsync(Timeout));
            await Assert.ThrowsAnyAsync<IOException>(() => ReadToEndAsync(second.Input).WaitAsync(Timeout));
        });
    }

    [Fact]
    public void The_loop_closes_TLS_listeners_connections_and_handshakes_left_open_when_main_returns()
    {
        Task<ReadResult>? clientRead = null, serverRead = null;
        Task<Connection>? pendingAccept = null;
        RunLoop(async loop =>
        {
            ConnectionListener listener = await loop.ListenTlsAsync(AnyLoopbackPort, TestCertificates.Server());
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            TlsConnection client = await loop.ConnectTlsAsync(listener.LocalEndPoint, TestCertificates.Client()).AsTask().WaitAsync(Timeout);
            Connection server = await accept.WaitAsync(Timeout);
            clientRead = client.Input.ReadAsync().AsTask();
            serverRead = server.Input.ReadAsync().AsTask();
            pendingAccept = listener.AcceptAsync().AsTask();

            // And one handshake in progress.
            Connection stalled = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await stalled.Output.WriteAsync(new byte[] { 0x16 });
            await loop.DelayAsync(TimeSpan.FromMilliseconds(50));

            // main returns with all of it open; the leak check then requires every socket and handle closed, and
            // nothing reported (a handshake ended by the shutdown is not a failure to report).
        });

        Assert.True(clientRead!.IsCompleted && serverRead!.IsCompleted, "reads pending at shutdown must end");
        Assert.IsAssignableFrom<IOException>(clientRead.Exception?.InnerException);
        Assert.IsAssignableFrom<IOException>(serverRead.Exception?.InnerException);
        Assert.IsType<ObjectDisposedException>(pendingAccept!.Exception?.InnerException);
    }
}

public sealed class ManagedTlsTests : TlsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvTlsTests : TlsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

/// <summary>The managed loop's portable socket transport (the default off Linux) under the whole TLS suite.</summary>
public sealed class ManagedSocketsTlsTests : TlsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}
