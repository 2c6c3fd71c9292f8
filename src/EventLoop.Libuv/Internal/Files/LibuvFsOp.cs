using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// One <c>uv_fs_*</c> request on libuv's thread pool. Its callback runs on the loop thread: it takes what the request
/// found (a stat, directory entries) before <c>uv_fs_req_cleanup</c>, frees the request and completes the task.
/// A cancelled token asks libuv to drop a request that has not started (<c>uv_cancel</c>; the callback then says
/// <c>UV_ECANCELED</c>); one that runs finishes first: a read cannot be taken back half done. Until its callback the
/// request is counted (the leak check) and is pending I/O (shutdown waits for it).
/// </summary>
internal sealed unsafe class LibuvFsOp
{
    private const int EOF = -4095;

    private readonly LibuvLoop _loop;
    private readonly TaskCompletionSource<long> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly FsKind _kind;
    private IntPtr _req;
    private MemoryHandle _pin;
    private CancellationTokenRegistration _cancellation;
    private CancellationToken _token;

    /// <summary>What the callback takes from the request before it is cleaned up.</summary>
    public enum FsKind
    {
        Result,
        Stat,
        ScanDir,
    }

    public LibuvFsOp(LibuvLoop loop, FsKind kind = FsKind.Result)
    {
        _loop = loop;
        _kind = kind;
        _req = LibuvTcp.NewRequest(loop, Uv.ReqType.Fs);
        Uv.SetData(_req, GCHandle.ToIntPtr(GCHandle.Alloc(this)));
    }

    public IntPtr Req => _req;

    /// <summary>The stat of a <see cref="FsKind.Stat"/> request.</summary>
    public LoopFileStatus Status { get; private set; }

    /// <summary>The entries of a <see cref="FsKind.ScanDir"/> request.</summary>
    public List<string>? Names { get; private set; }

    public static delegate* unmanaged[Cdecl]<IntPtr, void> Callback => &OnDone;

    /// <summary>A path as the C string libuv takes (it copies it for a request with a callback).</summary>
    public static byte[] CString(string path)
    {
        byte[] bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        return bytes;
    }

    /// <summary>Keeps a buffer pinned until the callback (libuv's pool thread reads or writes it).</summary>
    public void Pin(MemoryHandle pin) => _pin = pin;

    /// <summary>
    /// After the <c>uv_fs_*</c> call: its status (negative: the request never started, and is freed here), and then
    /// the task of the callback's result.
    /// </summary>
    public Task<long> Started(int status, CancellationToken cancellationToken)
    {
        if (status < 0)
        {
            Free();
            return Task.FromException<long>(new FsError(status));
        }

        _loop.PendingIo++;
        if (cancellationToken.CanBeCanceled)
        {
            _token = cancellationToken;
            _cancellation = cancellationToken.UnsafeRegister(
                static state =>
                {
                    var op = (LibuvFsOp)state!;
                    if (op._loop.IsOnLoopThread)
                    {
                        op.Cancel();
                        return;
                    }

                    try
                    {
                        op._loop.CallSoonThreadSafe(static o => o.Cancel(), op);
                    }
                    catch (InvalidOperationException)
                    {
                        // The loop is closing; the request completes on its own.
                    }
                },
                this);
        }

        return _done.Task;
    }

    private void Cancel()
    {
        if (_req != IntPtr.Zero)
        {
            Uv.Cancel(_loop.NativeLoop, _req); // EBUSY when a pool thread runs it already: it finishes
        }
    }

    private void Free()
    {
        GCHandle.FromIntPtr(Uv.GetData(_req)).Free();
        LibuvTcp.FreeRequest(_loop, ref _req);
        _pin.Dispose();
        _pin = default;
    }

    private void Complete()
    {
        long result = Uv.FsResult(_req);
        if (result >= 0 && _kind == FsKind.Stat)
        {
            ulong* stat = Uv.FsStatBuf(_req);
            const ulong TypeMask = 0xF000, Directory = 0x4000, Regular = 0x8000;
            ulong mode = stat[1];
            bool isDirectory = (mode & TypeMask) == Directory;
            DateTime modified = DateTime.UnixEpoch.AddTicks(((long)stat[14] * TimeSpan.TicksPerSecond) + ((long)stat[15] / 100));
            Status = new LoopFileStatus(isDirectory ? 0 : (long)stat[7], isDirectory, (mode & TypeMask) == Regular, (UnixFileMode)(mode & 0xFFF), modified);
        }
        else if (result >= 0 && _kind == FsKind.ScanDir)
        {
            var names = new List<string>();
            Uv.Dirent entry;
            while (Uv.FsScandirNext(_req, &entry) != EOF)
            {
                names.Add(Marshal.PtrToStringUTF8((IntPtr)entry.Name) ?? "");
            }

            Names = names;
        }

        Uv.FsReqCleanup(_req);
        Free();
        _loop.PendingIo--;
        _cancellation.Dispose();
        if (result == Uv.ECANCELED)
        {
            _done.TrySetCanceled(_token);
        }
        else if (result < 0)
        {
            _done.TrySetException(new FsError((int)result));
        }
        else
        {
            _done.TrySetResult(result);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnDone(IntPtr req)
    {
        LibuvFsOp? op = null;
        try
        {
            op = GCHandle.FromIntPtr(Uv.GetData(req)).Target as LibuvFsOp;
            op?.Complete();
        }
        catch (Exception ex)
        {
            op?._done.TrySetException(ex);
            LibuvLoop.ReportFromNative(op?._loop, "fs", ex);
        }
    }

    /// <summary>A failed request's status, turned into .NET's exception by the caller, who knows the path (<see cref="LibuvFileSystem.Translate"/>).</summary>
    internal sealed class FsError(int status) : Exception(Uv.ErrorName(status))
    {
        public int Status { get; } = status;
    }
}
