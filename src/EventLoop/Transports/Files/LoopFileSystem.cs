namespace EventLoop;

/// <summary>
/// Asynchronous file system calls on a loop (the talk's <c>aiofiles</c>), from <see cref="Loop.Files"/>: the work runs
/// off the loop thread (libuv's thread pool with <c>uv_fs_*</c> on the libuv loop; the executor on the managed loop)
/// and every call completes on the loop thread. Loop thread only.
/// </summary>
/// <remarks>
/// Errors are the exceptions .NET's own file APIs throw: <see cref="FileNotFoundException"/>,
/// <see cref="DirectoryNotFoundException"/>, <see cref="UnauthorizedAccessException"/> (access denied, or a
/// directory where a file was expected), <see cref="IOException"/> otherwise. A cancelled token ends a call that
/// has not started; one already running in the kernel finishes first (a read cannot be taken back half done).
/// </remarks>
public abstract class LoopFileSystem
{
    private protected LoopFileSystem(Loop loop) => Loop = loop;

    private protected Loop Loop { get; }

    /// <summary>
    /// Opens (or creates) a file for positional reads and writes (<see cref="LoopFile.ReadAsync"/>,
    /// <see cref="LoopFile.WriteAsync"/>). Files are not locked; a created file gets mode 0666 less the umask.
    /// </summary>
    /// <exception cref="ArgumentException">The path is empty or holds a NUL; <see cref="FileMode.Append"/> (writes are positional: write at the length); a mode that writes with read-only access.</exception>
    public Task<LoopFile> OpenAsync(string path, FileMode mode = FileMode.Open, FileAccess access = FileAccess.Read, CancellationToken cancellationToken = default)
    {
        CheckPath(path, nameof(path));
        if (mode == FileMode.Append)
        {
            throw new ArgumentException("LoopFile writes are positional: open with FileMode.OpenOrCreate and write at GetLengthAsync's offset instead of FileMode.Append.", nameof(mode));
        }

        if (mode is < FileMode.CreateNew or > FileMode.Append)
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Not a FileMode.");
        }

        if (access is < FileAccess.Read or > FileAccess.ReadWrite)
        {
            throw new ArgumentOutOfRangeException(nameof(access), access, "Not a FileAccess.");
        }

        if (access == FileAccess.Read && mode is FileMode.CreateNew or FileMode.Create or FileMode.Truncate or FileMode.OpenOrCreate)
        {
            throw new ArgumentException($"FileMode.{mode} creates or truncates the file, which read-only access cannot do.", nameof(access));
        }

        return Start(cancellationToken, () => OpenCoreAsync(path, mode, access, cancellationToken));
    }

    /// <summary>The file's or directory's size, kind, mode and last write time (<c>stat</c>, following links).</summary>
    public Task<LoopFileStatus> GetStatusAsync(string path, CancellationToken cancellationToken = default)
    {
        CheckPath(path, nameof(path));
        return Start(cancellationToken, () => GetStatusCoreAsync(path, cancellationToken));
    }

    /// <summary>Renames or moves a file or directory; an existing destination file is replaced (<c>rename(2)</c>).</summary>
    public Task RenameAsync(string source, string destination, CancellationToken cancellationToken = default)
    {
        CheckPath(source, nameof(source));
        CheckPath(destination, nameof(destination));
        return Start(cancellationToken, () => RenameCoreAsync(source, destination, cancellationToken));
    }

    /// <summary>Deletes a file (<c>unlink</c>). Unlike <see cref="File.Delete"/>, a missing file is an error, as in asyncio.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public Task DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        CheckPath(path, nameof(path));
        return Start(cancellationToken, () => DeleteCoreAsync(path, cancellationToken));
    }

    /// <summary>Creates a directory (its parent must exist).</summary>
    public Task CreateDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        CheckPath(path, nameof(path));
        return Start(cancellationToken, () => CreateDirectoryCoreAsync(path, cancellationToken));
    }

    /// <summary>The names in a directory (not their paths; without "." and ".."), in ordinal order.</summary>
    public Task<string[]> ListDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        CheckPath(path, nameof(path));
        return Start(cancellationToken, async () =>
        {
            string[] names = await ListDirectoryCoreAsync(path, cancellationToken).ConfigureAwait(true);
            Array.Sort(names, StringComparer.Ordinal);
            return names;
        });
    }

    private Task<T> Start<T>(CancellationToken cancellationToken, Func<Task<T>> operation)
    {
        Loop.CheckLoopThread();
        Loop.CheckNotClosed();
        return cancellationToken.IsCancellationRequested ? Task.FromCanceled<T>(cancellationToken) : operation();
    }

    private Task Start(CancellationToken cancellationToken, Func<Task> operation)
    {
        Loop.CheckLoopThread();
        Loop.CheckNotClosed();
        return cancellationToken.IsCancellationRequested ? Task.FromCanceled(cancellationToken) : operation();
    }

    internal static void CheckPath(string path, string parameterName)
    {
        ArgumentException.ThrowIfNullOrEmpty(path, parameterName);
        if (path.Contains('\0'))
        {
            throw new ArgumentException("A file path must not hold a NUL character.", parameterName);
        }
    }

    private protected abstract Task<LoopFile> OpenCoreAsync(string path, FileMode mode, FileAccess access, CancellationToken cancellationToken);

    private protected abstract Task<LoopFileStatus> GetStatusCoreAsync(string path, CancellationToken cancellationToken);

    private protected abstract Task RenameCoreAsync(string source, string destination, CancellationToken cancellationToken);

    private protected abstract Task DeleteCoreAsync(string path, CancellationToken cancellationToken);

    private protected abstract Task CreateDirectoryCoreAsync(string path, CancellationToken cancellationToken);

    private protected abstract Task<string[]> ListDirectoryCoreAsync(string path, CancellationToken cancellationToken);
}

/// <summary>What <see cref="LoopFileSystem.GetStatusAsync"/> tells about a path.</summary>
/// <param name="Length">The size in bytes.</param>
/// <param name="IsDirectory">A directory.</param>
/// <param name="IsRegularFile">A regular file.</param>
/// <param name="Mode">The permission bits.</param>
/// <param name="LastWriteTimeUtc">The last modification (<c>st_mtime</c>).</param>
public readonly record struct LoopFileStatus(long Length, bool IsDirectory, bool IsRegularFile, UnixFileMode Mode, DateTime LastWriteTimeUtc);
