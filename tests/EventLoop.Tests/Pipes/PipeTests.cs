using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using EventLoop.Managed.Epoll;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Pipes;

/// <summary>
/// Descriptors handed to the loop (uvloop's test_pipes; asyncio's <c>connect_read_pipe</c>/<c>connect_write_pipe</c>,
/// <c>create_server(sock=...)</c>): both ends of a <c>pipe2</c> pair through the loop with a checksum, backpressure,
/// end of stream when the write end closes, EPIPE when the read end closes, a connected socket's descriptor, and a
/// listening socket's (systemd socket activation); the error paths: a closed descriptor, a regular file, the wrong kind.
/// </summary>
public abstract class PipeTests : LoopTestBase
{
    private const int OCloExec = 0x80000;

    [DllImport("libc", SetLastError = true)]
    private static extern int pipe2(int[] fds, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern nint write(int fd, byte[] buffer, nint count);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    /// <summary>A new pipe: (read end, write end), blocking, close-on-exec.</summary>
    internal static (int Read, int Write) NewPipe()
    {
        int[] fds = new int[2];
        Assert.Equal(0, pipe2(fds, OCloExec));
        return (fds[0], fds[1]);
    }

    [Fact]
    public void A_pipe2_pair_carries_64_MiB_through_the_loop_with_a_checksum_and_the_reader_sees_end_of_stream()
    {
        const int Length = 64 * 1024 * 1024;
        RunLoop(async loop =>
        {
            (int r, int w) = NewPipe();
            await using Connection reader = loop.OpenPipe(r);
            Connection writer = loop.OpenPipe(w);
            byte[] chunk = RandomPayload(1024 * 1024, seed: 12);
            using var expected = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Task<byte[]> received = HashToEndAsync(reader.Input);
            for (int sent = 0; sent < Length; sent += chunk.Length)
            {
                chunk[0] = (byte)(sent >> 20); // no two chunks alike
                expected.AppendData(chunk);
                await writer.Output.WriteAsync(chunk).AsTask().WaitAsync(TestTimeout);
            }

            await writer.DisposeAsync().AsTask().WaitAsync(TestTimeout); // closes the write end: the reader's end of stream
            Assert.Equal(expected.GetHashAndReset(), await received.WaitAsync(TestTimeout));
        });
    }

    private static async Task<byte[]> HashToEndAsync(PipeReader reader)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        while (true)
        {
            ReadResult result = await reader.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                hash.AppendData(segment.Span);
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return hash.GetHashAndReset();
            }
        }
    }

    [Fact]
    public void A_writer_faster_than_its_reader_is_held_back_until_the_reader_reads()
    {
        RunLoop(async loop =>
        {
            (int r, int w) = NewPipe();
            await using Connection reader = loop.OpenPipe(r);
            await using Connection writer = loop.OpenPipe(w, options: new TcpOptions { OutputPauseThreshold = 64 * 1024, OutputResumeThreshold = 32 * 1024 });
            byte[] chunk = RandomPayload(16 * 1024, seed: 3);

            // Nobody reads: the kernel's pipe buffer fills, then the output pipe, and a flush stays pending.
            int written = 0;
            ValueTask<FlushResult> flush = default;
            while (written < 64 * 1024 * 1024)
            {
                flush = writer.Output.WriteAsync(chunk);
                written += chunk.Length;
                if (!flush.IsCompleted)
                {
                    break;
                }
            }

            Assert.False(flush.IsCompleted, $"{written} bytes were taken although nobody read the pipe");

            // The reader reads: the writer goes on, and every byte arrives.
            Task<byte[]> all = ReadExactlyAsync(reader.Input, written);
            await flush.AsTask().WaitAsync(TestTimeout);
            byte[] received = await all.WaitAsync(TestTimeout);
            for (int offset = 0; offset < written; offset += chunk.Length)
            {
                Assert.True(received.AsSpan(offset, chunk.Length).SequenceEqual(chunk), $"the chunk at {offset} differs");
            }
        });
    }

    [Fact]
    public void Closing_the_write_end_ends_the_readers_stream_after_the_bytes_written()
    {
        RunLoop(async loop =>
        {
            (int r, int w) = NewPipe();
            await using Connection reader = loop.OpenPipe(r);
            Task<byte[]> all = ReadToEndAsync(reader.Input);
            byte[] hello = "hello"u8.ToArray();
            Assert.Equal(hello.Length, write(w, hello, hello.Length));
            Assert.Equal(0, close(w));
            Assert.Equal(hello, await all.WaitAsync(TestTimeout));
            Assert.True(reader.ConnectionClosed.IsCancellationRequested);
        });
    }

    [Fact]
    public void Writing_after_the_read_end_closed_fails_with_EPIPE_as_a_reset()
    {
        RunLoop(async loop =>
        {
            (int r, int w) = NewPipe();
            await using Connection writer = loop.OpenPipe(w);
            Assert.Equal(0, close(r));
            var error = await Assert.ThrowsAnyAsync<IOException>(async () =>
            {
                for (int i = 0; i < 1000; i++)
                {
                    await writer.Output.WriteAsync(new byte[4096]).AsTask().WaitAsync(TestTimeout);
                }
            });
            Assert.IsType<ConnectionResetException>(error);

            // A write end has nothing to read: its input is at end of stream.
            ReadResult input = await writer.Input.ReadAsync().AsTask().WaitAsync(TestTimeout);
            Assert.True(input.IsCompleted);
        });
    }

    [Fact]
    public void A_descriptor_the_caller_keeps_is_duplicated_and_stays_open_after_the_dispose()
    {
        RunLoop(async loop =>
        {
            (int r, int w) = NewPipe();
            try
            {
                Connection writer = loop.OpenPipe(w, ownsHandle: false);
                await writer.Output.WriteAsync("one"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                await writer.DisposeAsync().AsTask().WaitAsync(TestTimeout);
                byte[] two = "two"u8.ToArray();
                Assert.Equal(two.Length, write(w, two, two.Length)); // the caller's descriptor is still open
            }
            finally
            {
                close(w);
            }

            await using Connection reader = loop.OpenPipe(r);
            Assert.Equal("onetwo"u8.ToArray(), await ReadToEndAsync(reader.Input).WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void A_connected_sockets_descriptor_is_a_duplex_connection_with_half_close()
    {
        RunLoop(async loop =>
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(AnyLoopbackPort);
            listener.Listen();
            using Socket client = ConnectPlain(listener.LocalEndPoint!);
            Connection server;
            using (Socket accepted = listener.Accept())
            {
                server = loop.OpenPipe((int)accepted.Handle, ownsHandle: false); // the .NET socket closes its own descriptor only
            }

            await using (server)
            {
                Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
                client.Send("ping"u8);
                client.Shutdown(SocketShutdown.Send);
                Assert.Equal("ping"u8.ToArray(), await ReadToEndAsync(server.Input).WaitAsync(TestTimeout));
                await server.Output.WriteAsync("pong"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                await server.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
                Assert.Equal("pong"u8.ToArray(), ReceiveExactly(client, 4));
                Assert.Equal(0, client.Receive(new byte[1])); // the half-close reached the peer
            }
        });
    }

    [Fact]
    public void A_descriptor_that_is_not_open_is_refused_naming_EBADF()
    {
        RunLoop(loop =>
        {
            var error = Assert.Throws<ArgumentException>(() => loop.OpenPipe(1_000_000));
            Assert.Equal("fileDescriptor", error.ParamName);
            Assert.Contains("EBADF", error.Message);
            error = Assert.Throws<ArgumentException>(() => { _ = loop.ListenInheritedAsync(1_000_000); });
            Assert.Contains("EBADF", error.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => loop.OpenPipe(-1));
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void A_regular_file_is_refused_with_a_pointer_to_loop_Files()
    {
        string path = Path.GetTempFileName();
        try
        {
            using Microsoft.Win32.SafeHandles.SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
            RunLoop(loop =>
            {
                var error = Assert.Throws<ArgumentException>(() => loop.OpenPipe((int)file.DangerousGetHandle(), ownsHandle: false));
                Assert.Equal("fileDescriptor", error.ParamName);
                Assert.Contains("regular file", error.Message);
                Assert.Contains("loop.Files", error.Message);
                return Task.CompletedTask;
            });
            Assert.False(file.IsInvalid);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_pipe_cannot_be_listened_on_and_a_listening_socket_is_not_a_pipe()
    {
        RunLoop(async loop =>
        {
            (int r, int w) = NewPipe();
            try
            {
                var error = await Assert.ThrowsAsync<ArgumentException>(async () => await loop.ListenInheritedAsync(r, ownsHandle: false));
                Assert.Contains("not a socket", error.Message);
                using var listening = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listening.Bind(AnyLoopbackPort);
                listening.Listen();
                error = Assert.Throws<ArgumentException>(() => loop.OpenPipe((int)listening.Handle, ownsHandle: false));
                Assert.Contains("ListenInheritedAsync", error.Message);
                using var unbound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                error = await Assert.ThrowsAsync<ArgumentException>(async () => await loop.ListenInheritedAsync((int)unbound.Handle, ownsHandle: false));
                Assert.Contains("not listening", error.Message);
            }
            finally
            {
                close(r);
                close(w);
            }
        });
    }

    /// <summary>The policy as <see cref="TestProgram.SocketActivationCommand"/> names it.</summary>
    protected virtual string ChildPolicy => CreatePolicy().Name;

    [Fact]
    public async Task A_socket_activated_child_finds_its_socket_as_fd_3_through_LISTEN_FDS_and_serves_on_it()
    {
        // As systemd does it: the socket is bound and listening before the service starts, so a client can connect
        // at once; the service accepts once it is up.
        using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        bound.Bind(AnyLoopbackPort);
        bound.Listen();
        int pid = SocketActivatedChild.Start((int)bound.Handle, ChildPolicy);
        byte[] message = RandomPayload(100_000, seed: 7);
        using (Socket client = ConnectPlain(bound.LocalEndPoint!))
        {
            client.ReceiveTimeout = (int)(TestTimeout * 3).TotalMilliseconds;
            client.Send(message);
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(message, ReceiveExactly(client, message.Length));
            Assert.Equal(0, client.Receive(new byte[1]));
        }

        Assert.Equal(0, await SocketActivatedChild.WaitAsync(pid));
    }

    [Fact]
    public void An_inherited_listening_TCP_socket_accepts_connections()
    {
        RunLoop(async loop =>
        {
            using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            bound.Bind(AnyLoopbackPort);
            bound.Listen();
            await using ConnectionListener listener = await loop.ListenInheritedAsync((int)bound.Handle, ownsHandle: false);
            Assert.Equal(bound.LocalEndPoint, listener.LocalEndPoint);
            for (int i = 0; i < 3; i++)
            {
                using Socket client = ConnectPlain(listener.LocalEndPoint);
                await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
                Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
                client.Send(new[] { (byte)i });
                Assert.Equal(new[] { (byte)i }, await ReadExactlyAsync(server.Input, 1).WaitAsync(TestTimeout));
            }
        });
    }

    [Fact]
    public void An_inherited_listening_Unix_socket_accepts_and_its_file_is_left_to_its_owner()
    {
        string path = Path.Combine(Path.GetTempPath(), $"evl-pipe-{Guid.NewGuid():N}.sock");
        try
        {
            RunLoop(async loop =>
            {
                int fd = Linux.UnixSocket();
                Assert.True(fd >= 0);
                Assert.Equal(0, Linux.Bind(fd, new UnixDomainSocketEndPoint(path).Serialize()));
                Assert.Equal(0, Linux.Listen(fd, 16));
                ConnectionListener listener = await loop.ListenInheritedAsync(fd); // owns it now
                await using (listener)
                {
                    Assert.Equal(path, listener.LocalEndPoint.ToString());
                    await using Connection client = await loop.ConnectUnixAsync(path).AsTask().WaitAsync(TestTimeout);
                    await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
                    await client.Output.WriteAsync("hi"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                    Assert.Equal("hi"u8.ToArray(), await ReadExactlyAsync(server.Input, 2).WaitAsync(TestTimeout));
                }
            });

            Assert.True(File.Exists(path), "the listener removed a socket file it did not bind");
        }
        finally
        {
            File.Delete(path);
        }
    }
}

/// <summary><see cref="SocketActivation"/> reads the variables as <c>sd_listen_fds</c> does (no loop involved).</summary>
[Collection(nameof(SocketActivationTests))] // it sets process-wide environment variables
public sealed class SocketActivationTests
{
    [Fact]
    public void Variables_for_another_process_or_none_give_no_descriptors_and_a_match_gives_3_on()
    {
        try
        {
            Environment.SetEnvironmentVariable("LISTEN_PID", null);
            Environment.SetEnvironmentVariable("LISTEN_FDS", null);
            Assert.Empty(SocketActivation.ListenFileDescriptors());

            Environment.SetEnvironmentVariable("LISTEN_PID", (Environment.ProcessId + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Environment.SetEnvironmentVariable("LISTEN_FDS", "2");
            Assert.Empty(SocketActivation.ListenFileDescriptors()); // inherited from a parent: not ours

            Environment.SetEnvironmentVariable("LISTEN_PID", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(new[] { 3, 4 }, SocketActivation.ListenFileDescriptors(unsetEnvironment: true));
            Assert.Null(Environment.GetEnvironmentVariable("LISTEN_PID"));
            Assert.Null(Environment.GetEnvironmentVariable("LISTEN_FDS"));

            Environment.SetEnvironmentVariable("LISTEN_PID", "x");
            Environment.SetEnvironmentVariable("LISTEN_FDS", "1");
            Assert.Throws<FormatException>(() => SocketActivation.ListenFileDescriptors());
        }
        finally
        {
            Environment.SetEnvironmentVariable("LISTEN_PID", null);
            Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        }
    }
}

public sealed class ManagedPipeTests : PipeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsPipeTests : PipeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();

    protected override string ChildPolicy => "managed-sockets";
}

public sealed class LibuvPipeTests : PipeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
