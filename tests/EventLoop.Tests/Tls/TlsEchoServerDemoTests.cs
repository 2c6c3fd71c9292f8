using System.Net;
using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Tls;

/// <summary>The samples' <c>echo-server --tls</c>: it serves TLS clients and says so, and a failed handshake is one line.</summary>
public abstract partial class TlsEchoServerDemoTests : LoopTestBase
{
    [Fact]
    public void The_echo_server_with_TLS_echoes_over_TLS_and_reports_a_failed_handshake_in_one_line()
    {
        var text = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, Out = new AnsiConsoleOutput(text) });
        console.Profile.Width = 10_000;
        RunLoop(async loop =>
        {
            using var stop = new CancellationTokenSource();
            Task server = EchoServer.RunAsync(loop, IPAddress.Loopback, 0, console, stop.Token, TlsCertificate.ServerOptions(path: null));
            Match listening;
            while (!(listening = ListeningLine().Match(text.ToString())).Success)
            {
                await loop.DelayAsync(TimeSpan.FromMilliseconds(5)).WaitAsync(TestPipes.TestTimeout);
            }

            var endpoint = IPEndPoint.Parse(listening.Groups["endpoint"].Value);
            var client = new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.Subject == "CN=localhost", // self-signed at start-up
            };
            await using (TlsConnection connection = await loop.ConnectTlsAsync(endpoint, client).AsTask().WaitAsync(TestPipes.TestTimeout))
            {
                await connection.Output.WriteAsync("echo me"u8.ToArray());
                Assert.Equal("echo me"u8.ToArray(), await TestPipes.ReadExactlyAsync(connection.Input, 7).WaitAsync(TestPipes.TestTimeout));
            }

            await using (Connection plaintext = await loop.ConnectTcpAsync(endpoint))
            {
                await plaintext.Output.WriteAsync("HELO\r\n"u8.ToArray());
                while (!text.ToString().Contains("TLS handshake from"))
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(5)).WaitAsync(TestPipes.TestTimeout);
                }
            }

            stop.Cancel();
            await server.WaitAsync(TestPipes.TestTimeout);
        });

        string output = text.ToString();
        Assert.Contains(", TLS)", output);
        Assert.Single(output.Split('\n'), line => line.Contains("TLS handshake from") && line.Contains("plaintext"));
        Assert.Contains("stopping", output);
    }

    [GeneratedRegex(@"listening on (?<endpoint>\S+) \(")]
    private static partial Regex ListeningLine();
}

// Libuv only: on the managed loop the demo sets DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS for its process (see
// EchoServer), which would change how every other test of this process completes socket operations. The TLS
// layer under it is the same on both loops and TlsTests runs it on both.
public sealed class LibuvTlsEchoServerDemoTests : TlsEchoServerDemoTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
