using Microsoft.Win32.SafeHandles;

namespace EventLoop.Transports.Files;

/// <summary>The managed loop's files: .NET's file APIs (<see cref="RandomAccess"/>, <see cref="File"/>) run on the executor.</summary>
internal sealed class ManagedFileSystem(Loop loop) : LoopFileSystem(loop)
{
    /// <summary>
    /// Runs file work on the executor as pending I/O of the loop, so its shutdown waits for it (and its completion
    /// runs on the loop) rather than closing under it.
    /// </summary>
    internal static async Task<T> RunAsync<TState, T>(Loop loop, Func<TState, CancellationToken, T> work, TState state, CancellationToken cancellationToken)
    {
        loop.PendingIo++;
        try
        {
            return await loop.RunInExecutor(work, state, cancellationToken).ConfigureAwait(true);
        }
        finally
        {
            loop.PendingIo--;
        }
    }

    private protected override async Task<LoopFile> OpenCoreAsync(string path, FileMode mode, FileAccess access, CancellationToken cancellationToken)
    {
        SafeFileHandle handle = await RunAsync(Loop,
            static (s, _) => File.OpenHandle(s.path, s.mode, s.access, FileShare.ReadWrite | FileShare.Delete),
            (path, mode, access), cancellationToken).ConfigureAwait(true);
        return new ManagedFile(Loop, path, access, handle);
    }

    private protected override Task<LoopFileStatus> GetStatusCoreAsync(string path, CancellationToken cancellationToken) =>
        RunAsync(Loop, static (path, _) =>
        {
            if (Directory.Exists(path))
            {
                var directory = new DirectoryInfo(path);
                return new LoopFileStatus(0, true, false, directory.UnixFileMode, directory.LastWriteTimeUtc);
            }

            var file = new FileInfo(path);
            if (!file.Exists)
            {
                throw Missing(path);
            }

            return new LoopFileStatus(file.Length, false, true, file.UnixFileMode, file.LastWriteTimeUtc);
        }, path, cancellationToken);

    private protected override Task RenameCoreAsync(string source, string destination, CancellationToken cancellationToken) =>
        RunAsync(Loop, static (s, _) =>
        {
            if (Directory.Exists(s.source))
            {
                Directory.Move(s.source, s.destination);
            }
            else
            {
                File.Move(s.source, s.destination, overwrite: true);
            }

            return true;
        }, (source, destination), cancellationToken);

    private protected override Task DeleteCoreAsync(string path, CancellationToken cancellationToken) =>
        RunAsync(Loop, static (path, _) =>
        {
            if (Directory.Exists(path))
            {
                throw new UnauthorizedAccessException($"Access to the path '{path}' is denied: it is a directory.");
            }

            if (!File.Exists(path))
            {
                throw Missing(path);
            }

            File.Delete(path);
            return true;
        }, path, cancellationToken);

    private protected override Task CreateDirectoryCoreAsync(string path, CancellationToken cancellationToken) =>
        RunAsync(Loop, static (path, _) =>
        {
            // mkdir(2), as on libuv: the parent must exist, and the path must not.
            if (Directory.Exists(path) || File.Exists(path))
            {
                throw new IOException($"The file '{path}' already exists.");
            }

            string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
            if (parent is not null && !Directory.Exists(parent))
            {
                throw new DirectoryNotFoundException($"Could not find a part of the path '{path}'.");
            }

            Directory.CreateDirectory(path);
            return true;
        }, path, cancellationToken);

    private protected override Task<string[]> ListDirectoryCoreAsync(string path, CancellationToken cancellationToken) =>
        RunAsync(Loop, static (path, _) => Array.ConvertAll(Directory.GetFileSystemEntries(path), e => Path.GetFileName(e)), path, cancellationToken);

    /// <summary>What .NET says for a missing path: a missing directory on the way, or a missing file.</summary>
    internal static IOException Missing(string path)
    {
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        return parent is not null && !Directory.Exists(parent)
            ? new DirectoryNotFoundException($"Could not find a part of the path '{path}'.")
            : new FileNotFoundException($"Could not find file '{path}'.", path);
    }

    private sealed class ManagedFile(Loop loop, string path, FileAccess access, SafeFileHandle handle) : LoopFile(loop, path, access)
    {
        private protected override ValueTask<int> ReadCoreAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken) =>
            new(RunAsync(Loop, static (s, _) => RandomAccess.Read(s.handle, s.buffer.Span, s.offset), (handle, buffer, offset), cancellationToken));

        private protected override ValueTask<int> WriteCoreAsync(ReadOnlyMemory<byte> buffer, long offset, CancellationToken cancellationToken) =>
            new(RunAsync(Loop, static (s, _) =>
            {
                RandomAccess.Write(s.handle, s.buffer.Span, s.offset); // writes it all
                return s.buffer.Length;
            }, (handle, buffer, offset), cancellationToken));

        private protected override Task<long> GetLengthCoreAsync(CancellationToken cancellationToken) =>
            RunAsync(Loop, static (handle, _) => RandomAccess.GetLength(handle), handle, cancellationToken);

        private protected override Task CloseCoreAsync()
        {
            handle.Dispose(); // nothing is in flight (LoopFile waits): closing a file descriptor does not block
            return Task.CompletedTask;
        }
    }
}
