using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports.Processes;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// A child of the libuv loop: <c>uv_spawn</c> with a <c>uv_process_t</c>; its pipes are <c>uv_pipe_t</c>s libuv
/// creates (<c>UV_CREATE_PIPE</c>: socket pairs), each the same stream connection as a Unix socket's
/// (<see cref="LibuvTcpConnection"/>); <c>UV_INHERIT_FD</c> for an inherited stream and <c>UV_IGNORE</c> (libuv opens
/// <c>/dev/null</c>) for a discarded one. libuv reaps the child on SIGCHLD and calls the exit callback with the exit
/// status and terminating signal. The process handle is closed after the exit (or after the kill that dispose and the
/// loop's shutdown send to a child still running), so a child never outlives its handle unreaped; the pipes close on
/// their own, before or after the child exits.
/// </summary>
internal sealed unsafe class LibuvProcess : LoopProcess
{
    private readonly LibuvLoop _loop;
    private IntPtr _handle;
    private TaskCompletionSource? _closed;
    private bool _exited;

    private LibuvProcess(LibuvLoop loop, IntPtr handle, int pid, Connection? stdin, Connection? stdout, Connection? stderr)
        : base(loop, pid, stdin, stdout, stderr)
    {
        _loop = loop;
        _handle = handle;
    }

    /// <summary>Spawns. Loop thread; on failure every handle made is closed and the exception leaves.</summary>
    public static LibuvProcess Start(LibuvLoop loop, ProcessLaunch launch)
    {
        ProcessStdio[] modes = [launch.StandardInput, launch.StandardOutput, launch.StandardError];
        IntPtr* pipes = stackalloc IntPtr[3];
        Uv.StdioContainer* stdio = stackalloc Uv.StdioContainer[3];
        for (int fd = 0; fd < 3; fd++)
        {
            pipes[fd] = IntPtr.Zero;
            stdio[fd] = default;
        }

        for (int fd = 0; fd < 3; fd++)
        {
            switch (modes[fd])
            {
                case ProcessStdio.Pipe:
                    try
                    {
                        pipes[fd] = LibuvUnix.NewPipeHandle(loop);
                    }
                    catch
                    {
                        ClosePipes(pipes);
                        throw;
                    }

                    stdio[fd].Flags = Uv.StdioFlags.CreatePipe | (fd == 0 ? Uv.StdioFlags.ReadablePipe : Uv.StdioFlags.WritablePipe);
                    stdio[fd].Stream = pipes[fd];
                    break;
                case ProcessStdio.Inherit:
                    stdio[fd].Flags = Uv.StdioFlags.InheritFd;
                    stdio[fd].Fd = fd;
                    break;
                default:
                    stdio[fd].Flags = Uv.StdioFlags.Ignore;
                    break;
            }
        }

        IntPtr handle = loop.NewHandle(Uv.HandleType.Process);
        byte** argv = null;
        byte** envp = null;
        byte[]? file = null, cwd = null;
        int status;
        try
        {
            argv = ProcessLaunch.ToNativeArray(launch.Argv);
            envp = ProcessLaunch.ToNativeArray(launch.Environment);
            file = CString(launch.Path);
            cwd = launch.WorkingDirectory is null ? null : CString(launch.WorkingDirectory);
            fixed (byte* nativeFile = file)
            fixed (byte* nativeCwd = cwd)
            {
                var options = new Uv.ProcessOptions
                {
                    ExitCallback = &OnExit,
                    File = nativeFile,
                    Args = argv,
                    Env = envp,
                    Cwd = nativeCwd,
                    StdioCount = 3,
                    Stdio = stdio,
                };
                LibuvChildSignal.BeforeSpawn();
                status = Uv.Spawn(loop.NativeLoop, handle, &options);
                loop.Adopt(handle);
                loop.Spawned = true;
                LibuvChildSignal.AfterLibuvChange();
            }
        }
        finally
        {
            NativeMemory.Free(argv);
            NativeMemory.Free(envp);
        }

        if (status < 0)
        {
            // uv_spawn initialised the handle whatever happened: close it, and the pipes it never opened.
            Uv.Close(handle, &LibuvLoop.OnClosed);
            ClosePipes(pipes);
            throw launch.SpawnFailed(status);
        }

        int pid = Uv.ProcessGetPid(handle);
        Connection? stdin = Wrap(loop, pipes[0], launch, "stdin");
        Connection? stdout = Wrap(loop, pipes[1], launch, "stdout");
        Connection? stderr = Wrap(loop, pipes[2], launch, "stderr");
        var process = new LibuvProcess(loop, handle, pid, stdin, stdout, stderr);
        LibuvLoop.Header(handle)->Owner = GCHandle.ToIntPtr(GCHandle.Alloc(process));
        return process;
    }

    /// <summary>Closes the pipe handles a spawn that failed made (never opened: nothing else owns them).</summary>
    private static void ClosePipes(IntPtr* pipes)
    {
        for (int fd = 0; fd < 3; fd++)
        {
            if (pipes[fd] != IntPtr.Zero)
            {
                LibuvTcp.CloseUnowned(pipes[fd]);
                pipes[fd] = IntPtr.Zero;
            }
        }
    }

    private static byte[] CString(string value)
    {
        byte[] bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(value) + 1];
        System.Text.Encoding.UTF8.GetBytes(value, bytes);
        return bytes;
    }

    private static LibuvTcpConnection? Wrap(LibuvLoop loop, IntPtr pipe, ProcessLaunch launch, string stream)
    {
        if (pipe == IntPtr.Zero)
        {
            return null;
        }

        var connection = new LibuvTcpConnection(loop, pipe, launch.PipeOptions, null, null, "process " + stream);
        connection.Start();
        return connection;
    }

    private protected override bool IsHandleClosed => _handle == IntPtr.Zero || _closed is not null;

    private protected override void SendSignalCore(int signal)
    {
        if (_exited || _closed is not null)
        {
            return; // reaped: the id may be another process's now
        }

        int status = Uv.ProcessKill(_handle, signal);
        if (status < 0 && status != -3 /* ESRCH: exited, not yet reaped */)
        {
            Uv.ThrowError(status, $"Sending signal {signal} to process {Id}");
        }
    }

    private protected override ValueTask CloseHandleCoreAsync()
    {
        if (_closed is null)
        {
            _closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Uv.Close(_handle, &OnClosed);
        }

        return new ValueTask(_closed.Task);
    }

    private void Exited(long exitStatus, int termSignal)
    {
        _exited = true;
        OnExited(new ProcessExitStatus((int)exitStatus, termSignal));
    }

    private void HandleClosed()
    {
        _handle = IntPtr.Zero;
        _closed!.TrySetResult();
    }

    // ------------------------------------------------------------------ native callbacks: never throw into libuv

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnExit(IntPtr handle, long exitStatus, int termSignal)
    {
        LibuvProcess? process = null;
        try
        {
            process = LibuvLoop.OwnerOf(handle) as LibuvProcess;
            process?.Exited(exitStatus, termSignal);
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(process?._loop, "process exit", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnClosed(IntPtr handle)
    {
        LibuvProcess? process = null;
        try
        {
            process = LibuvLoop.OwnerOf(handle) as LibuvProcess;
            process?.HandleClosed();
        }
        catch (Exception ex)
        {
            LibuvLoop.ReportFromNative(process?._loop, "process close", ex);
        }
        finally
        {
            LibuvLoop.FreeHandle(handle); // frees the process's GCHandle too
        }
    }
}
