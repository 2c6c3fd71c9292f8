using System.Runtime.InteropServices;

namespace EventLoop.Transports.Processes;

/// <summary>
/// Both loops' spawn: glibc's <c>posix_spawn</c> (a <c>vfork</c>-style clone that reports exec failures as its
/// result), the child's standard streams as socket pairs (as libuv makes them for <c>UV_CREATE_PIPE</c>), reaped with
/// <c>waitpid</c>. In the child every signal is back to its default action and none is blocked, as libuv and .NET's
/// <see cref="System.Diagnostics.Process"/> do (the runtime ignores SIGPIPE, which a child must not inherit).
/// </summary>
internal static unsafe partial class PosixSpawn
{
    private const int SetSigDef = 0x04;   // POSIX_SPAWN_SETSIGDEF
    private const int SetSigMask = 0x08;  // POSIX_SPAWN_SETSIGMASK
    private const int OReadOnly = 0, OWriteOnly = 1;
    private const int AfUnix = 1, SockStream = 1, SockCloExec = 0x80000;
    private const int FGetFl = 3, FSetFl = 4, ONonBlock = 0x800;
    private const int WNoHang = 1;
    private const int EINTR = 4;

    /// <summary>A connected pair of stream sockets, close-on-exec; the parent's end (<paramref name="parent"/>) non-blocking. Negated errno on failure.</summary>
    public static int SocketPair(out int parent, out int child)
    {
        int* fds = stackalloc int[2];
        parent = child = -1;
        if (Imports.socketpair(AfUnix, SockStream | SockCloExec, 0, fds) != 0)
        {
            return -Marshal.GetLastPInvokeError();
        }

        int flags = Imports.fcntl(fds[0], FGetFl, 0);
        if (flags < 0 || Imports.fcntl(fds[0], FSetFl, flags | ONonBlock) < 0)
        {
            int error = -Marshal.GetLastPInvokeError();
            Imports.close(fds[0]);
            Imports.close(fds[1]);
            return error;
        }

        parent = fds[0];
        child = fds[1];
        return 0;
    }

    public static void Close(int fd) => Imports.close(fd);

    /// <summary>
    /// Starts the program. <paramref name="stdio"/> holds, for descriptors 0, 1 and 2: a descriptor to give the child,
    /// -1 to inherit, -2 for <c>/dev/null</c>. Returns the pid, or a negated errno.
    /// </summary>
    public static int Spawn(ProcessLaunch launch, ReadOnlySpan<int> stdio)
    {
        // glibc's posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on x86-64; room to spare.
        byte* actions = stackalloc byte[512];
        byte* attributes = stackalloc byte[1024];
        byte* signals = stackalloc byte[128]; // sigset_t
        new Span<byte>(actions, 512).Clear();
        new Span<byte>(attributes, 1024).Clear();
        byte** argv = null;
        byte** envp = null;
        int status = Imports.posix_spawn_file_actions_init(actions);
        if (status != 0)
        {
            return -status;
        }

        status = Imports.posix_spawnattr_init(attributes);
        if (status != 0)
        {
            Imports.posix_spawn_file_actions_destroy(actions);
            return -status;
        }

        try
        {
            for (int fd = 0; fd < 3 && status == 0; fd++)
            {
                if (stdio[fd] >= 0)
                {
                    status = Imports.posix_spawn_file_actions_adddup2(actions, stdio[fd], fd);
                }
                else if (stdio[fd] == -2)
                {
                    status = Imports.posix_spawn_file_actions_addopen(actions, fd, "/dev/null", fd == 0 ? OReadOnly : OWriteOnly, 0);
                }
            }

            if (status == 0 && launch.WorkingDirectory is { } cwd)
            {
                status = Imports.posix_spawn_file_actions_addchdir_np(actions, cwd);
            }

            if (status == 0)
            {
                Imports.sigfillset(signals);
                status = Imports.posix_spawnattr_setsigdefault(attributes, signals);
            }

            if (status == 0)
            {
                Imports.sigemptyset(signals);
                status = Imports.posix_spawnattr_setsigmask(attributes, signals);
            }

            if (status == 0)
            {
                status = Imports.posix_spawnattr_setflags(attributes, SetSigDef | SetSigMask);
            }

            if (status != 0)
            {
                return -status;
            }

            argv = ProcessLaunch.ToNativeArray(launch.Argv);
            envp = ProcessLaunch.ToNativeArray(launch.Environment);
            int pid;
            status = Imports.posix_spawn(&pid, launch.Path, actions, attributes, argv, envp);
            return status == 0 ? pid : -status;
        }
        finally
        {
            NativeMemory.Free(argv);
            NativeMemory.Free(envp);
            Imports.posix_spawnattr_destroy(attributes);
            Imports.posix_spawn_file_actions_destroy(actions);
        }
    }

    /// <summary>Reaps <paramref name="pid"/> if it has exited: true with its status; false while it runs.</summary>
    public static bool TryReap(int pid, out ProcessExitStatus exit)
    {
        int status;
        int result;
        do
        {
            result = Imports.waitpid(pid, &status, WNoHang);
        }
        while (result < 0 && Marshal.GetLastPInvokeError() == EINTR);

        if (result != pid)
        {
            exit = default; // 0: running; -1 (ECHILD): not ours to reap, which cannot happen for a child not yet reaped
            return false;
        }

        exit = Decode(status);
        return true;
    }

    /// <summary>Waits for <paramref name="pid"/> to exit and reaps it (blocking: for a child just killed).</summary>
    public static void Reap(int pid)
    {
        int status;
        while (Imports.waitpid(pid, &status, 0) < 0 && Marshal.GetLastPInvokeError() == EINTR)
        {
        }
    }

    /// <summary>A <c>wait</c> status as an exit code or a terminating signal.</summary>
    public static ProcessExitStatus Decode(int status)
    {
        int signal = status & 0x7f;
        return signal == 0 ? new ProcessExitStatus((status >> 8) & 0xff, 0) : new ProcessExitStatus(0, signal);
    }

    /// <summary>Sends a signal; a negated errno on failure.</summary>
    public static int Kill(int pid, int signal) => Imports.kill(pid, signal) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    private static partial class Imports
    {
        [LibraryImport("libc", SetLastError = true)]
        public static partial int socketpair(int domain, int type, int protocol, int* fds);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int fcntl(int fd, int command, int argument);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int close(int fd);

        [LibraryImport("libc")]
        public static partial int posix_spawn_file_actions_init(byte* actions);

        [LibraryImport("libc")]
        public static partial int posix_spawn_file_actions_destroy(byte* actions);

        [LibraryImport("libc")]
        public static partial int posix_spawn_file_actions_adddup2(byte* actions, int fd, int newFd);

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int posix_spawn_file_actions_addopen(byte* actions, int fd, string path, int flags, int mode);

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int posix_spawn_file_actions_addchdir_np(byte* actions, string path);

        [LibraryImport("libc")]
        public static partial int posix_spawnattr_init(byte* attributes);

        [LibraryImport("libc")]
        public static partial int posix_spawnattr_destroy(byte* attributes);

        [LibraryImport("libc")]
        public static partial int posix_spawnattr_setflags(byte* attributes, short flags);

        [LibraryImport("libc")]
        public static partial int posix_spawnattr_setsigdefault(byte* attributes, byte* signals);

        [LibraryImport("libc")]
        public static partial int posix_spawnattr_setsigmask(byte* attributes, byte* signals);

        [LibraryImport("libc")]
        public static partial int sigfillset(byte* set);

        [LibraryImport("libc")]
        public static partial int sigemptyset(byte* set);

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int posix_spawn(int* pid, string path, byte* actions, byte* attributes, byte** argv, byte** envp);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int waitpid(int pid, int* status, int options);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int kill(int pid, int signal);
    }
}
