using System.Buffers;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv.Internal;

/// <summary>The libuv loop's files: <c>uv_fs_*</c> requests on libuv's thread pool (<see cref="LibuvFsOp"/>).</summary>
internal sealed class LibuvFileSystem(LibuvLoop loop) : LoopFileSystem(loop)
{
    private const int ENOENT = -2, EPERM = -1, EACCES = -13, EEXIST = -17, ENOTDIR = -20, EISDIR = -21;
    private const int ORdOnly = 0, OWrOnly = 1, ORdWr = 2, OCreat = 0x40, OExcl = 0x80, OTrunc = 0x200, OCloExec = 0x80000;
    private const int CreateMode = 0x1B6; // 0666, less the umask, as .NET creates files
    private const int DirectoryMode = 0x1FF; // 0777, less the umask

    private LibuvLoop UvLoop => (LibuvLoop)Loop;

    private protected override async Task<LoopFile> OpenCoreAsync(string path, FileMode mode, FileAccess access, CancellationToken cancellationToken)
    {
        int flags = OCloExec | access switch { FileAccess.Read => ORdOnly, FileAccess.Write => OWrOnly, _ => ORdWr } | mode switch
        {
            FileMode.CreateNew => OCreat | OExcl,
            FileMode.Create => OCreat | OTrunc,
            FileMode.OpenOrCreate => OCreat,
            FileMode.Truncate => OTrunc,
            _ => 0,
        };
        int fd = (int)await Run(StartPathOp(new LibuvFsOp(UvLoop), path, null, PathOp.Open, flags, cancellationToken), path).ConfigureAwait(true);
        if (IsDirectory(fd))
        {
            CloseNow(fd);
            throw new UnauthorizedAccessException($"Access to the path '{path}' is denied: it is a directory.");
        }

        return new LibuvFile(UvLoop, path, access, fd);
    }

    /// <summary>A synchronous <c>fstat</c> on the loop thread (no disk access: the inode is in memory while the file is open).</summary>
    private unsafe bool IsDirectory(int fd)
    {
        IntPtr req = LibuvTcp.NewRequest(UvLoop, Uv.ReqType.Fs);
        try
        {
            return Uv.FsFstat(UvLoop.NativeLoop, req, fd, null) == 0 && (Uv.FsStatBuf(req)[1] & 0xF000) == 0x4000;
        }
        finally
        {
            Uv.FsReqCleanup(req);
            LibuvTcp.FreeRequest(UvLoop, ref req);
        }
    }

    /// <summary>A synchronous close on the loop thread (closing a descriptor does not wait for the disk).</summary>
    internal unsafe void CloseNow(int fd)
    {
        IntPtr req = LibuvTcp.NewRequest(UvLoop, Uv.ReqType.Fs);
        Uv.FsClose(UvLoop.NativeLoop, req, fd, null);
        Uv.FsReqCleanup(req);
        LibuvTcp.FreeRequest(UvLoop, ref req);
    }

    private protected override async Task<LoopFileStatus> GetStatusCoreAsync(string path, CancellationToken cancellationToken)
    {
        var op = new LibuvFsOp(UvLoop, LibuvFsOp.FsKind.Stat);
        await Run(StartPathOp(op, path, null, PathOp.Stat, 0, cancellationToken), path).ConfigureAwait(true);
        return op.Status;
    }

    private protected override Task RenameCoreAsync(string source, string destination, CancellationToken cancellationToken)
    {
        return Run(StartPathOp(new LibuvFsOp(UvLoop), source, destination, PathOp.Rename, 0, cancellationToken), source);
    }

    private protected override Task DeleteCoreAsync(string path, CancellationToken cancellationToken)
    {
        return Run(StartPathOp(new LibuvFsOp(UvLoop), path, null, PathOp.Unlink, 0, cancellationToken), path);
    }

    private protected override Task CreateDirectoryCoreAsync(string path, CancellationToken cancellationToken)
    {
        return Run(StartPathOp(new LibuvFsOp(UvLoop), path, null, PathOp.Mkdir, DirectoryMode, cancellationToken), path);
    }

    private protected override async Task<string[]> ListDirectoryCoreAsync(string path, CancellationToken cancellationToken)
    {
        var op = new LibuvFsOp(UvLoop, LibuvFsOp.FsKind.ScanDir);
        await Run(StartPathOp(op, path, null, PathOp.Scandir, 0, cancellationToken), path, directory: true).ConfigureAwait(true);
        return op.Names!.ToArray();
    }

    private enum PathOp
    {
        Open,
        Stat,
        Rename,
        Unlink,
        Mkdir,
        Scandir,
    }

    /// <summary>Starts a request on a path (and a second path for a rename); <paramref name="argument"/> is open's flags or mkdir's mode.</summary>
    private unsafe Task<long> StartPathOp(LibuvFsOp op, string path, string? second, PathOp kind, int argument, CancellationToken cancellationToken)
    {
        IntPtr loop = UvLoop.NativeLoop;
        int status;
        fixed (byte* native = LibuvFsOp.CString(path))
        fixed (byte* other = second is null ? null : LibuvFsOp.CString(second))
        {
            status = kind switch
            {
                PathOp.Open => Uv.FsOpen(loop, op.Req, native, argument, CreateMode, LibuvFsOp.Callback),
                PathOp.Stat => Uv.FsStat(loop, op.Req, native, LibuvFsOp.Callback),
                PathOp.Rename => Uv.FsRename(loop, op.Req, native, other, LibuvFsOp.Callback),
                PathOp.Unlink => Uv.FsUnlink(loop, op.Req, native, LibuvFsOp.Callback),
                PathOp.Mkdir => Uv.FsMkdir(loop, op.Req, native, argument, LibuvFsOp.Callback),
                _ => Uv.FsScandir(loop, op.Req, native, LibuvFsOp.Callback),
            };
        }

        return op.Started(status, cancellationToken);
    }


    /// <summary>Awaits a request and turns its failure into the exception .NET's own file APIs throw for <paramref name="path"/>.</summary>
    internal static async Task<long> Run(Task<long> request, string path, bool directory = false)
    {
        try
        {
            return await request.ConfigureAwait(true);
        }
        catch (LibuvFsOp.FsError error)
        {
            throw Translate(error.Status, path, directory);
        }
    }

    /// <summary>.NET's exception for an errno on <paramref name="path"/>; <paramref name="directory"/> when the path had to be a directory.</summary>
    internal static Exception Translate(int status, string path, bool directory = false)
    {
        switch (status)
        {
            case ENOENT:
                return directory ? new DirectoryNotFoundException($"Could not find a part of the path '{path}'.")
                    : Transports.Files.ManagedFileSystem.Missing(path);
            case EACCES or EPERM or EISDIR:
                return new UnauthorizedAccessException($"Access to the path '{path}' is denied ({Uv.ErrorName(status)}).");
            case ENOTDIR:
                return directory ? new IOException($"'{path}' is not a directory.", status) : new DirectoryNotFoundException($"Could not find a part of the path '{path}'.");
            case EEXIST:
                return new IOException($"The file '{path}' already exists.", status);
            default:
                return new IOException($"'{path}': {Uv.ErrorName(status)} ({Uv.ErrorMessage(status)}).", status);
        }
    }

    /// <summary>An open file: reads and writes are <c>uv_fs_read</c>/<c>uv_fs_write</c> at offsets, straight into the caller's pinned buffer.</summary>
    private sealed class LibuvFile(LibuvLoop loop, string path, FileAccess access, int fd) : LoopFile(loop, path, access)
    {
        private LibuvLoop UvLoop => (LibuvLoop)Loop;

        private protected override ValueTask<int> ReadCoreAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken) =>
            ToInt(Run(StartIo(buffer.Pin(), buffer.Length, offset, write: false, cancellationToken), Path));

        private protected override ValueTask<int> WriteCoreAsync(ReadOnlyMemory<byte> buffer, long offset, CancellationToken cancellationToken) =>
            ToInt(Run(StartIo(buffer.Pin(), buffer.Length, offset, write: true, cancellationToken), Path));

        /// <summary>Starts a read or write of the pinned buffer (kept pinned until the callback; libuv copies the buf array).</summary>
        private unsafe Task<long> StartIo(MemoryHandle pin, int length, long offset, bool write, CancellationToken cancellationToken)
        {
            var op = new LibuvFsOp(UvLoop);
            op.Pin(pin);
            var buf = new Uv.Buf { Base = (byte*)pin.Pointer, Length = (nuint)length };
            int status = write
                ? Uv.FsWrite(UvLoop.NativeLoop, op.Req, fd, &buf, 1, offset, LibuvFsOp.Callback)
                : Uv.FsRead(UvLoop.NativeLoop, op.Req, fd, &buf, 1, offset, LibuvFsOp.Callback);
            return op.Started(status, cancellationToken);
        }

        private static async ValueTask<int> ToInt(Task<long> bytes) => (int)await bytes.ConfigureAwait(true);

        private protected override async Task<long> GetLengthCoreAsync(CancellationToken cancellationToken)
        {
            var op = new LibuvFsOp(UvLoop, LibuvFsOp.FsKind.Stat);
            await Run(StartFstat(op, cancellationToken), Path).ConfigureAwait(true);
            return op.Status.Length;
        }

        private unsafe Task<long> StartFstat(LibuvFsOp op, CancellationToken cancellationToken) =>
            op.Started(Uv.FsFstat(UvLoop.NativeLoop, op.Req, fd, LibuvFsOp.Callback), cancellationToken);

        private unsafe Task<long> StartClose(LibuvFsOp op) =>
            op.Started(Uv.FsClose(UvLoop.NativeLoop, op.Req, fd, LibuvFsOp.Callback), CancellationToken.None);

        private protected override Task CloseCoreAsync() => Run(StartClose(new LibuvFsOp(UvLoop)), Path);
    }
}
