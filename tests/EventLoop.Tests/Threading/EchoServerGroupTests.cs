using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Threading;

/// <summary>The samples' <c>echo-server --loops N</c>: a group of loops serving echo, stopped by its token.</summary>
public abstract class EchoServerGroupTests : LoopTestBase
{
    [Fact]
    public async Task Echo_server_on_a_group_echoes_every_connection_and_stops_when_cancelled()
    {
        var text = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, Out = new AnsiConsoleOutput(text) });
        console.Profile.Width = 10_000;
        using var stop = new CancellationTokenSource();
        Task server = Task.Run(() => EchoServer.RunGroupAsync(CreatePolicy(), 2, IPAddress.Loopback, 0, console, stop.Token));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        Match listening;
        while (!(listening = Regex.Match(text.ToString(), @"listening on 127\.0\.0\.1:(\d+) \((\w+) loop x 2\)")).Success)
        {
            Assert.True(clock.Elapsed < TestPipes.TestTimeout && !server.IsCompleted, $"no 'listening on' line: {text}");
            await Task.Delay(10);
        }

        Assert.Equal(CreatePolicy().Name, listening.Groups[2].Value);
        var endpoint = new IPEndPoint(IPAddress.Loopback, int.Parse(listening.Groups[1].Value));
        await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() =>
        {
            using Socket socket = TestPipes.ConnectPlain(endpoint);
            byte[] message = Encoding.ASCII.GetBytes($"message {i}");
            socket.Send(message);
            Assert.Equal(message, TestPipes.ReceiveExactly(socket, message.Length));
        }))).WaitAsync(TestPipes.TestTimeout);

        stop.Cancel();
        await server.WaitAsync(TestPipes.TestTimeout);
        Assert.Contains("stopping", text.ToString());
    }
}

public sealed class ManagedEchoServerGroupTests : EchoServerGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvEchoServerGroupTests : EchoServerGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
