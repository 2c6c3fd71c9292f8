using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using EventLoop.Managed.Epoll;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Unix;

/// <summary>
/// Unix domain sockets (uvloop's test_unix): listen and connect on a file path and on the abstract namespace, the
/// same <see cref="Connection"/> as TCP, asyncio's stale socket file rule, the clean-up of the socket file, and the
/// error paths: a path that is taken, missing or malformed, nobody listening, cancellation.
/// </summary>
public abstract class UnixTests : LoopTestBase, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("evl-unix-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
    }

    private string SocketPath(string name = "s.sock") => Path.Combine(_directory, name);

    /// <summary>A name in the abstract namespace no other test (or run) uses.</summary>
    private static string AbstractName() => "\0evl-test-" + Guid.NewGuid().ToString("N");

    /// <summary>
    /// A socket file nobody listens on, as a server that died leaves it: bound and closed with plain system calls (a
    /// .NET <see cref="Socket"/> that bound a path deletes it when disposed).
    /// </summary>
    internal static void MakeStaleSocketFile(string path)
    {
        int fd = Linux.UnixSocket();
        Assert.True(fd >= 0);
        Assert.Equal(0, Linux.Bind(fd, new UnixDomainSocketEndPoint(path).Serialize()));
        Linux.Close(fd);
        Assert.True(File.Exists(path));
    }

    private static async Task EchoAllAsync(ConnectionListener listener)
    {
        await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
        while (true)
        {
            System.IO.Pipelines.ReadResult result = await server.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                await server.Output.WriteAsync(segment);
            }

            server.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }
    }

    private async Task EchoRoundTripAsync(Loop loop, string path, int length)
    {
        await using ConnectionListener listener = await loop.ListenUnixAsync(path);
        var endpoint = Assert.IsType<UnixDomainSocketEndPoint>(listener.LocalEndPoint);
        Assert.Equal(path, endpoint.ToString()!.Replace("@", "\0"));
        Task echo = EchoAllAsync(listener);
        byte[] payload = RandomPayload(length, seed: length);
        await using Connection client = await loop.ConnectUnixAsync(path).AsTask().WaitAsync(TestTimeout);
        Assert.IsType<UnixDomainSocketEndPoint>(client.RemoteEndPoint);
        Task<byte[]> back = ReadToEndAsync(client.Input);
        await client.Output.WriteAsync(payload).AsTask().WaitAsync(TestTimeout);
        await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(await back.WaitAsync(TestTimeout)));
        await echo.WaitAsync(TestTimeout);
    }

    [Fact]
    public void A_path_listener_echoes_4_MiB_with_half_close_and_removes_its_socket_file_when_disposed()
    {
        string path = SocketPath();
        RunLoop(async loop =>
        {
            await EchoRoundTripAsync(loop, path, 4 * 1024 * 1024);
        });

        Assert.False(File.Exists(path), "the listener's socket file outlived it");
    }

    [Fact]
    public void An_abstract_name_listener_echoes_and_makes_no_file()
    {
        string name = AbstractName();
        RunLoop(async loop =>
        {
            await EchoRoundTripAsync(loop, name, 64 * 1024);
        });

        Assert.Empty(Directory.GetFileSystemEntries(_directory));
    }

    [Fact]
    public void Many_clients_are_accepted_and_each_gets_its_own_reply()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenUnixAsync(SocketPath(), new UnixSocketOptions { Backlog = 4 });
            var clients = new List<Task>();
            for (int i = 0; i < 20; i++)
            {
                clients.Add(ClientAsync(i));
            }

            for (int i = 0; i < 20; i++)
            {
                _ = EchoAllAsync(listener);
            }

            await Task.WhenAll(clients).WaitAsync(TestTimeout);

            async Task ClientAsync(int id)
            {
                await using Connection client = await loop.ConnectUnixAsync(SocketPath());
                byte[] message = Encoding.ASCII.GetBytes($"client {id:D2}");
                await client.Output.WriteAsync(message);
                await client.ShutdownSendAsync();
                Assert.Equal(message, await ReadToEndAsync(client.Input));
            }
        });
    }

    [Fact]
    public void A_stale_socket_file_is_replaced_as_asyncio_does()
    {
        string path = SocketPath();
        MakeStaleSocketFile(path);

        RunLoop(async loop =>
        {
            await EchoRoundTripAsync(loop, path, 1000);
        });
    }

    [Fact]
    public void A_regular_file_at_the_path_is_left_alone_and_the_listen_fails_with_address_in_use()
    {
        string path = SocketPath();
        File.WriteAllText(path, "precious");
        RunLoop(async loop =>
        {
            var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.ListenUnixAsync(path));
            Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);
        });

        Assert.Equal("precious", File.ReadAllText(path));
    }

    [Fact]
    public void An_abstract_name_in_use_fails_with_address_in_use()
    {
        string name = AbstractName();
        RunLoop(async loop =>
        {
            await using ConnectionListener first = await loop.ListenUnixAsync(name);
            var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.ListenUnixAsync(name));
            Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);
        });
    }

    [Fact]
    public void Disposing_a_listener_whose_path_was_taken_over_leaves_the_new_socket_file()
    {
        string path = SocketPath();
        using var newcomer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        RunLoop(async loop =>
        {
            ConnectionListener listener = await loop.ListenUnixAsync(path);
            File.Delete(path);
            newcomer.Bind(new UnixDomainSocketEndPoint(path));
            newcomer.Listen();
            await listener.DisposeAsync();
            Assert.True(File.Exists(path), "the old listener removed the newcomer's socket file");

            // The newcomer still serves: the loop connects to it.
            await using Connection client = await loop.ConnectUnixAsync(path).AsTask().WaitAsync(TestTimeout);
        });
    }

    [Fact]
    public void Connecting_where_nobody_listens_fails_with_the_right_error()
    {
        string stale = SocketPath("stale.sock");
        MakeStaleSocketFile(stale);

        RunLoop(async loop =>
        {
            var missing = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectUnixAsync(SocketPath("missing.sock")));
            Assert.Equal(SocketError.AddressNotAvailable, missing.SocketErrorCode);
            var refused = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectUnixAsync(stale));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
            var noName = await Assert.ThrowsAsync<SocketException>(async () => await loop.ConnectUnixAsync(AbstractName()));
            Assert.Equal(SocketError.ConnectionRefused, noName.SocketErrorCode);
        });
    }

    [Fact]
    public void Listening_in_a_missing_directory_fails_and_leaves_nothing_open()
    {
        RunLoop(async loop =>
        {
            var error = await Assert.ThrowsAsync<SocketException>(async () => await loop.ListenUnixAsync(Path.Combine(_directory, "no", "such", "dir.sock")));
            Assert.Equal(SocketError.AddressNotAvailable, error.SocketErrorCode);
        });
    }

    [Fact]
    public void Malformed_paths_are_refused_at_once_naming_the_problem()
    {
        RunLoop(loop =>
        {
            Assert.Throws<ArgumentNullException>(() => { _ = loop.ListenUnixAsync(null!); });
            Assert.Contains("empty", Assert.Throws<ArgumentException>(() => { _ = loop.ListenUnixAsync(""); }).Message);
            Assert.Contains("empty", Assert.Throws<ArgumentException>(() => { _ = loop.ConnectUnixAsync("\0"); }).Message);
            Assert.Contains("NUL", Assert.Throws<ArgumentException>(() => { _ = loop.ListenUnixAsync("/tmp/a\0b"); }).Message);
            Assert.Contains("107", Assert.Throws<ArgumentException>(() => { _ = loop.ConnectUnixAsync("/tmp/" + new string('x', 103)); }).Message);
            Assert.Contains("108", Assert.Throws<ArgumentException>(() => { _ = loop.ListenUnixAsync("\0" + new string('x', 108)); }).Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = loop.ListenUnixAsync(SocketPath(), new UnixSocketOptions { Backlog = 0 }); });
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Calls_with_a_cancelled_token_and_a_cancelled_accept_end_cancelled_and_the_listener_still_accepts()
    {
        RunLoop(async loop =>
        {
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await loop.ListenUnixAsync(SocketPath(), null, cancelled.Token));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await loop.ConnectUnixAsync(SocketPath(), null, cancelled.Token));
            Assert.False(File.Exists(SocketPath()));

            await using ConnectionListener listener = await loop.ListenUnixAsync(SocketPath());
            using var soon = new CancellationTokenSource();
            ValueTask<Connection> accept = listener.AcceptAsync(soon.Token);
            soon.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await accept);

            Task echo = EchoAllAsync(listener);
            await using Connection client = await loop.ConnectUnixAsync(SocketPath()).AsTask().WaitAsync(TestTimeout);
            await client.Output.WriteAsync(new byte[] { 1, 2, 3 });
            await client.ShutdownSendAsync();
            Assert.Equal(new byte[] { 1, 2, 3 }, await ReadToEndAsync(client.Input).WaitAsync(TestTimeout));
            await echo.WaitAsync(TestTimeout);
        });
    }

    [Fact]
    public void A_plain_dotnet_socket_peer_talks_to_a_loop_listener_and_a_loop_client_talks_to_a_plain_listener()
    {
        string loopPath = SocketPath("loop.sock");
        string plainPath = SocketPath("plain.sock");
        using var plainListener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        plainListener.Bind(new UnixDomainSocketEndPoint(plainPath));
        plainListener.Listen();
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenUnixAsync(loopPath);
            Task echo = EchoAllAsync(listener);
            byte[] reply = await loop.RunInExecutor(() =>
            {
                using var plain = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                plain.Connect(new UnixDomainSocketEndPoint(loopPath));
                plain.Send(Encoding.ASCII.GetBytes("ping"));
                plain.Shutdown(SocketShutdown.Send);
                return ReceiveExactly(plain, 4);
            }).WaitAsync(TestTimeout);
            Assert.Equal("ping", Encoding.ASCII.GetString(reply));
            await echo.WaitAsync(TestTimeout);

            Task<byte[]> served = loop.RunInExecutor(() =>
            {
                using Socket accepted = plainListener.Accept();
                byte[] got = ReceiveExactly(accepted, 4);
                accepted.Send(Encoding.ASCII.GetBytes("pong"));
                accepted.Shutdown(SocketShutdown.Both);
                return got;
            });
            await using Connection client = await loop.ConnectUnixAsync(plainPath).AsTask().WaitAsync(TestTimeout);
            await client.Output.WriteAsync(Encoding.ASCII.GetBytes("ping"));
            Assert.Equal("pong", Encoding.ASCII.GetString(await ReadToEndAsync(client.Input).WaitAsync(TestTimeout)));
            Assert.Equal("ping", Encoding.ASCII.GetString(await served.WaitAsync(TestTimeout)));
        });
    }

    [Fact]
    public void Connections_left_open_are_closed_by_the_loop_and_the_listener_file_is_removed()
    {
        string path = SocketPath();
        RunLoop(async loop =>
        {
            ConnectionListener listener = await loop.ListenUnixAsync(path);
            Connection client = await loop.ConnectUnixAsync(path).AsTask().WaitAsync(TestTimeout);
            Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
            await client.Output.WriteAsync(new byte[] { 42 });
            Assert.Equal(new byte[] { 42 }, await ReadExactlyAsync(server.Input, 1).WaitAsync(TestTimeout));
        });

        Assert.False(File.Exists(path));
    }
}

public sealed class ManagedUnixTests : UnixTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsUnixTests : UnixTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}

public sealed class LibuvUnixTests : UnixTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
