using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Files;

/// <summary>
/// Files on the loop (the talk's aiofiles): open, positional reads and writes, stat, rename, delete, directory
/// listing, a file as a Stream, sendfile over a connection; the error paths as .NET's own file APIs report them
/// (missing file or directory, a file that exists, a directory where a file was expected: the access error a test
/// running as root can still meet), cancellation, and a file left open at the loop's close.
/// </summary>
public abstract class FileTests : LoopTestBase, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("evl-files-").FullName;

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

    private string In(string name) => Path.Combine(_directory, name);

    [Fact]
    public void Positional_writes_and_reads_round_trip_and_complete_on_the_loop_thread()
    {
        byte[] payload = RandomPayload(3 * 1024 * 1024 + 17, seed: 1);
        RunLoop(async loop =>
        {
            int loopThread = Environment.CurrentManagedThreadId;
            await using (LoopFile file = await loop.Files.OpenAsync(In("data.bin"), FileMode.CreateNew, FileAccess.ReadWrite))
            {
                Assert.Equal(loopThread, Environment.CurrentManagedThreadId);

                // Written out of order, in chunks, several in flight at once: positions are explicit.
                var writes = new List<Task>();
                const int Chunk = 256 * 1024;
                for (int offset = payload.Length / Chunk * Chunk; offset >= 0; offset -= Chunk)
                {
                    int length = Math.Min(Chunk, payload.Length - offset);
                    writes.Add(file.WriteAsync(payload.AsMemory(offset, length), offset).AsTask());
                }

                await Task.WhenAll(writes).WaitAsync(TestTimeout);
                Assert.Equal(loopThread, Environment.CurrentManagedThreadId);
                Assert.Equal(payload.Length, await file.GetLengthAsync().WaitAsync(TestTimeout));

                byte[] middle = new byte[1000];
                Assert.Equal(1000, await file.ReadAsync(middle, 123_456).AsTask().WaitAsync(TestTimeout));
                Assert.Equal(payload.AsSpan(123_456, 1000).ToArray(), middle);
                Assert.Equal(17, await file.ReadAsync(new byte[100], payload.Length - 17).AsTask().WaitAsync(TestTimeout));
                Assert.Equal(0, await file.ReadAsync(new byte[100], payload.Length).AsTask().WaitAsync(TestTimeout)); // the end
            }
        });

        Assert.Equal(payload, File.ReadAllBytes(In("data.bin")));
    }

    [Fact]
    public void A_file_as_a_stream_copies_with_CopyToAsync_and_the_loop_keeps_serving_callbacks()
    {
        byte[] payload = RandomPayload(8 * 1024 * 1024, seed: 2);
        File.WriteAllBytes(In("source.bin"), payload);
        RunLoop(async loop =>
        {
            int ticks = 0;
            bool copying = true;
            void Tick()
            {
                ticks++;
                if (copying)
                {
                    loop.CallLater(TimeSpan.FromMilliseconds(1), Tick);
                }
            }

            Tick();
            await using LoopFile source = await loop.Files.OpenAsync(In("source.bin"));
            await using LoopFile target = await loop.Files.OpenAsync(In("copy.bin"), FileMode.Create, FileAccess.Write);
            Stream reader = source.AsStream();
            Stream writer = target.AsStream();
            Assert.False(reader.CanSeek);
            Assert.True(reader.CanRead && !reader.CanWrite && writer.CanWrite && !writer.CanRead);
            await reader.CopyToAsync(writer, 64 * 1024).WaitAsync(TestTimeout);
            copying = false;
            Assert.Equal(payload.Length, writer.Position);
            Assert.True(ticks > 1, "no timer ran on the loop during the copy");
            Assert.Throws<NotSupportedException>(() => reader.Read(new byte[1], 0, 1));
        });

        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(File.ReadAllBytes(In("copy.bin"))));
    }

    [Fact]
    public void Stat_rename_delete_mkdir_and_list_do_what_they_say()
    {
        File.WriteAllText(In("a.txt"), "hello");
        RunLoop(async loop =>
        {
            LoopFileStatus status = await loop.Files.GetStatusAsync(In("a.txt")).WaitAsync(TestTimeout);
            Assert.Equal(5, status.Length);
            Assert.True(status.IsRegularFile);
            Assert.False(status.IsDirectory);
            Assert.True(status.Mode.HasFlag(UnixFileMode.UserRead));
            Assert.InRange(status.LastWriteTimeUtc, File.GetLastWriteTimeUtc(In("a.txt")).AddSeconds(-1), File.GetLastWriteTimeUtc(In("a.txt")).AddSeconds(1));

            await loop.Files.CreateDirectoryAsync(In("sub")).WaitAsync(TestTimeout);
            Assert.True((await loop.Files.GetStatusAsync(In("sub")).WaitAsync(TestTimeout)).IsDirectory);
            await loop.Files.RenameAsync(In("a.txt"), In("sub/b.txt")).WaitAsync(TestTimeout);
            Assert.Equal(new[] { "sub" }, await loop.Files.ListDirectoryAsync(_directory).WaitAsync(TestTimeout));
            File.WriteAllText(In("sub/a.txt"), "x");
            File.WriteAllText(In("sub/c.txt"), "x");
            Assert.Equal(new[] { "a.txt", "b.txt", "c.txt" }, await loop.Files.ListDirectoryAsync(In("sub")).WaitAsync(TestTimeout));

            await loop.Files.RenameAsync(In("sub/c.txt"), In("sub/a.txt")).WaitAsync(TestTimeout); // replaces
            await loop.Files.DeleteAsync(In("sub/b.txt")).WaitAsync(TestTimeout);
            Assert.Equal(new[] { "a.txt" }, await loop.Files.ListDirectoryAsync(In("sub")).WaitAsync(TestTimeout));
        });

        Assert.Equal("x", File.ReadAllText(In("sub/a.txt")));
    }

    [Fact]
    public void Missing_files_and_directories_fail_as_dotnet_reports_them()
    {
        RunLoop(async loop =>
        {
            await Assert.ThrowsAsync<FileNotFoundException>(() => loop.Files.OpenAsync(In("missing.txt")).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<DirectoryNotFoundException>(() => loop.Files.OpenAsync(In("no/such/file.txt"), FileMode.Create, FileAccess.Write).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<FileNotFoundException>(() => loop.Files.GetStatusAsync(In("missing.txt")).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<FileNotFoundException>(() => loop.Files.DeleteAsync(In("missing.txt")).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<FileNotFoundException>(() => loop.Files.RenameAsync(In("missing.txt"), In("other.txt")).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<DirectoryNotFoundException>(() => loop.Files.ListDirectoryAsync(In("missing")).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<DirectoryNotFoundException>(() => loop.Files.CreateDirectoryAsync(In("no/such")).WaitAsync(TestTimeout));
        });
    }

    [Fact]
    public void Existing_files_and_directories_where_a_file_is_wanted_fail_as_dotnet_reports_them()
    {
        File.WriteAllText(In("exists.txt"), "x");
        Directory.CreateDirectory(In("dir"));
        RunLoop(async loop =>
        {
            var exists = await Assert.ThrowsAsync<IOException>(() => loop.Files.OpenAsync(In("exists.txt"), FileMode.CreateNew, FileAccess.Write).WaitAsync(TestTimeout));
            Assert.IsNotType<FileNotFoundException>(exists);
            await Assert.ThrowsAsync<IOException>(() => loop.Files.CreateDirectoryAsync(In("dir")).WaitAsync(TestTimeout));

            // Access errors a test run as root still meets (root passes every permission check).
            await Assert.ThrowsAsync<UnauthorizedAccessException>(() => loop.Files.OpenAsync(In("dir")).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<UnauthorizedAccessException>(() => loop.Files.OpenAsync(In("dir"), FileMode.Open, FileAccess.Write).WaitAsync(TestTimeout));
            await Assert.ThrowsAsync<UnauthorizedAccessException>(() => loop.Files.DeleteAsync(In("dir")).WaitAsync(TestTimeout));
        });

        Assert.Equal("x", File.ReadAllText(In("exists.txt")));
    }

    [Fact]
    public void Misuse_is_refused_at_once_naming_the_problem()
    {
        File.WriteAllText(In("a.txt"), "abc");
        RunLoop(async loop =>
        {
            Assert.Throws<ArgumentNullException>(() => { _ = loop.Files.OpenAsync(null!); });
            Assert.Throws<ArgumentException>(() => { _ = loop.Files.OpenAsync(""); });
            Assert.Contains("NUL", Assert.Throws<ArgumentException>(() => { _ = loop.Files.GetStatusAsync("a\0b"); }).Message);
            Assert.Contains("Append", Assert.Throws<ArgumentException>(() => { _ = loop.Files.OpenAsync(In("a.txt"), FileMode.Append, FileAccess.Write); }).Message);
            Assert.Contains("read-only", Assert.Throws<ArgumentException>(() => { _ = loop.Files.OpenAsync(In("a.txt"), FileMode.Create, FileAccess.Read); }).Message);
            await Task.Run(() => Assert.Throws<InvalidOperationException>(() => { _ = loop.Files.GetStatusAsync(In("a.txt")); }));

            LoopFile readOnly = await loop.Files.OpenAsync(In("a.txt")).WaitAsync(TestTimeout);
            await Assert.ThrowsAsync<NotSupportedException>(async () => await readOnly.WriteAsync(new byte[1], 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => { _ = readOnly.ReadAsync(new byte[1], -1); });
            await readOnly.DisposeAsync();
            await readOnly.DisposeAsync(); // idempotent
            Assert.True(readOnly.IsClosed);
            Assert.Throws<ObjectDisposedException>(() => { _ = readOnly.ReadAsync(new byte[1], 0); });
        });
    }

    [Fact]
    public void Cancelled_calls_end_cancelled_and_calls_cancelled_in_flight_leave_nothing_open()
    {
        File.WriteAllBytes(In("a.bin"), RandomPayload(1 << 20, seed: 3));
        RunLoop(async loop =>
        {
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            Assert.True(loop.Files.OpenAsync(In("a.bin"), cancellationToken: cancelled.Token).IsCanceled);
            Assert.True(loop.Files.GetStatusAsync(In("a.bin"), cancelled.Token).IsCanceled);
            Assert.True(loop.Files.ListDirectoryAsync(_directory, cancelled.Token).IsCanceled);
            await using LoopFile file = await loop.Files.OpenAsync(In("a.bin")).WaitAsync(TestTimeout);
            Assert.True(file.ReadAsync(new byte[10], 0, cancelled.Token).IsCanceled);

            // Cancelled while in flight: each either ends cancelled or finishes (a read running in the kernel is not
            // taken back), never anything else; the leak check then finds every request freed.
            for (int i = 0; i < 50; i++)
            {
                using var cts = new CancellationTokenSource();
                Task<int> read = file.ReadAsync(new byte[65536], i * 1000L, cts.Token).AsTask();
                Task<LoopFileStatus> stat = loop.Files.GetStatusAsync(In("a.bin"), cts.Token);
                cts.Cancel();
                try
                {
                    Assert.Equal(65536, await read.WaitAsync(TestTimeout));
                }
                catch (OperationCanceledException)
                {
                }

                try
                {
                    Assert.Equal(1 << 20, (await stat.WaitAsync(TestTimeout)).Length);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });
    }

    [Fact]
    public void Disposing_a_file_with_reads_held_in_flight_closes_it_only_after_they_complete()
    {
        RunLoop(async loop =>
        {
            // The reads are held by a gate (a file whose reads complete when the test says so), so they are in flight
            // for certain when the dispose starts: whatever the machine's speed, the close must wait for them.
            var file = new GatedFile(loop);
            Task<int>[] reads = [.. Enumerable.Range(0, 3).Select(i => file.ReadAsync(new byte[10], i).AsTask())];
            ValueTask dispose = file.DisposeAsync();
            Assert.False(file.CloseStarted, "the file was closed with 3 reads in flight");
            Assert.False(dispose.IsCompleted);
            Assert.True(file.IsClosed); // closing: no new reads
            Assert.Throws<ObjectDisposedException>(() => { _ = file.ReadAsync(new byte[1], 0); });

            file.Gate.SetResult(10);
            await dispose.AsTask().WaitAsync(TestTimeout);
            Assert.True(file.CloseStarted);
            Assert.Equal(0, file.ReadsInFlightAtClose);
            int[] done = await Task.WhenAll(reads).WaitAsync(TestTimeout);
            Assert.Equal(new[] { 10, 10, 10 }, done);
        });
    }

    /// <summary>A <see cref="LoopFile"/> whose reads wait for <see cref="Gate"/>; it records what its close saw.</summary>
    private sealed class GatedFile(Loop loop) : LoopFile(loop, "gated", FileAccess.Read)
    {
        private int _pending;

        public TaskCompletionSource<int> Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool CloseStarted { get; private set; }

        public int ReadsInFlightAtClose { get; private set; } = -1;

        private protected override async ValueTask<int> ReadCoreAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken)
        {
            _pending++;
            try
            {
                return await Gate.Task.ConfigureAwait(true);
            }
            finally
            {
                _pending--;
            }
        }

        private protected override ValueTask<int> WriteCoreAsync(ReadOnlyMemory<byte> buffer, long offset, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        private protected override Task<long> GetLengthCoreAsync(CancellationToken cancellationToken) => Task.FromResult(0L);

        private protected override Task CloseCoreAsync()
        {
            CloseStarted = true;
            ReadsInFlightAtClose = _pending;
            return Task.CompletedTask;
        }
    }

    [Fact]
    public void A_file_left_open_with_reads_in_flight_is_closed_by_the_loop_after_them()
    {
        File.WriteAllBytes(In("a.bin"), RandomPayload(1 << 20, seed: 4));
        LoopFile? left = null;
        var reads = new List<Task<int>>();
        RunLoop(async loop =>
        {
            left = await loop.Files.OpenAsync(In("a.bin")).WaitAsync(TestTimeout);
            for (int i = 0; i < 8; i++)
            {
                reads.Add(left.ReadAsync(new byte[128 * 1024], i * 128 * 1024L).AsTask());
            }
        });

        Assert.True(left!.IsClosed);
        Assert.All(reads, r => Assert.Equal(128 * 1024, r.Result));
    }

    [Fact]
    public void SendFileAsync_sends_a_file_range_over_a_connection_with_backpressure()
    {
        byte[] payload = RandomPayload(6 * 1024 * 1024, seed: 5);
        File.WriteAllBytes(In("send.bin"), payload);
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint, new TcpOptions { OutputPauseThreshold = 128 * 1024, OutputResumeThreshold = 64 * 1024 }).AsTask().WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            await using LoopFile file = await loop.Files.OpenAsync(In("send.bin")).WaitAsync(TestTimeout);

            Task<byte[]> received = ReadToEndAsync(server.Input);
            Assert.Equal(payload.Length - 1000, await loop.SendFileAsync(client, file, 1000).WaitAsync(TestTimeout));
            Assert.Equal(5000, await loop.SendFileAsync(client, file, 0, 5000).WaitAsync(TestTimeout));
            Assert.Equal(0, await loop.SendFileAsync(client, file, payload.Length, 10).WaitAsync(TestTimeout));
            await client.ShutdownSendAsync().AsTask().WaitAsync(TestTimeout);
            byte[] all = await received.WaitAsync(TestTimeout);
            Assert.Equal(SHA256.HashData(payload.AsSpan(1000).ToArray().Concat(payload.AsSpan(0, 5000).ToArray()).ToArray()), SHA256.HashData(all));
        });
    }

    [Fact]
    public void SendFileAsync_over_a_connection_that_was_aborted_fails_with_an_IOException()
    {
        File.WriteAllBytes(In("send.bin"), RandomPayload(4 * 1024 * 1024, seed: 6));
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint).AsTask().WaitAsync(TestTimeout);
            await using Connection server = await accept.WaitAsync(TestTimeout);
            await using LoopFile file = await loop.Files.OpenAsync(In("send.bin")).WaitAsync(TestTimeout);
            client.Abort();
            await Assert.ThrowsAnyAsync<IOException>(() => loop.SendFileAsync(client, file).WaitAsync(TestTimeout));
        });
    }
}

public sealed class ManagedFileTests : FileTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvFileTests : FileTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
