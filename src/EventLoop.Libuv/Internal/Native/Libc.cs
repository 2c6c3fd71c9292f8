using System.Runtime.InteropServices;

namespace EventLoop.Libuv.Internal.Native;

/// <summary>The few C library calls the libuv policy needs beside libuv itself.</summary>
internal static unsafe partial class Libc
{
    private const short PollIn = 0x001;
    private const short PollOut = 0x004;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>
    /// True if <paramref name="fd"/> is readable right now (<c>poll</c> with timeout 0). For libuv's backend
    /// descriptor (an epoll or kqueue fd) that means I/O events are waiting for the loop to process them.
    /// False on any error, and on platforms without <c>poll</c>.
    /// </summary>
    public static bool IsReadable(int fd) => IsReady(fd, writable: false);

    /// <summary>True if <paramref name="fd"/> is readable (or writable, with <paramref name="writable"/>), or in error, right now.</summary>
    public static bool IsReady(int fd, bool writable)
    {
        if (fd < 0 || OperatingSystem.IsWindows())
        {
            return false;
        }

        var pollFd = new PollFd { Fd = fd, Events = writable ? PollOut : PollIn };
        try
        {
            return poll(&pollFd, 1, 0) > 0 && pollFd.Revents != 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private const int SolSocket = 1;  // Linux's SOL_SOCKET
    private const int SoError = 4;    // Linux's SO_ERROR

    /// <summary>
    /// The socket's pending error (<c>getsockopt(SO_ERROR)</c>, which also clears it) as a negated errno, libuv's
    /// convention; 0 when there is none, and on platforms other than Linux (whose constants are used here).
    /// </summary>
    public static int TakePendingSocketError(int fd)
    {
        if (fd < 0 || !OperatingSystem.IsLinux())
        {
            return 0;
        }

        int error = 0;
        int length = sizeof(int);
        try
        {
            return getsockopt(fd, SolSocket, SoError, &error, &length) == 0 ? -error : 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return 0;
        }
    }

    /// <summary>Linux's address families, as <c>uv_tcp_init_ex</c> takes them.</summary>
    public const uint AfInet = 2, AfInet6 = 10;

    private const int SoReusePort = 15; // Linux's SO_REUSEPORT

    /// <summary>
    /// Sets <c>SO_REUSEPORT</c> on <paramref name="fd"/> (Linux; libuv 1.44 has no flag for it: 1.49 added
    /// <c>UV_TCP_REUSEPORT</c>). Returns 0 or a negated errno, libuv's convention.
    /// </summary>
    public static int SetReusePort(int fd)
    {
        if (!OperatingSystem.IsLinux())
        {
            return Uv.ENOSYS;
        }

        int on = 1;
        return setsockopt(fd, SolSocket, SoReusePort, &on, sizeof(int)) == 0 ? 0 : -Marshal.GetLastPInvokeError();
    }

    private const int FDupFdCloExec = 1030; // Linux's F_DUPFD_CLOEXEC

    /// <summary>
    /// A duplicate of <paramref name="fd"/>, close-on-exec as every descriptor .NET opens (plain <c>dup</c> clears the
    /// flag, and a child process would inherit the connection). Returns the new descriptor or a negated errno.
    /// </summary>
    public static int Duplicate(int fd)
    {
        int copy = OperatingSystem.IsLinux() ? fcntl(fd, FDupFdCloExec, 0) : dup(fd);
        return copy >= 0 ? copy : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Closes a descriptor nobody else owns. Returns 0 or a negated errno.</summary>
    public static int Close(int fd) => close(fd) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    // fcntl is variadic; with one int argument the call is the same as a fixed one on the Linux ABIs .NET runs on.
    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "dup", SetLastError = true)]
    private static partial int dup(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int setsockopt(int fd, int level, int name, int* value, int length);

    [LibraryImport("libc", EntryPoint = "getsockopt")]
    private static partial int getsockopt(int fd, int level, int name, int* value, int* length);

    [LibraryImport("libc", EntryPoint = "poll")]
    private static partial int poll(PollFd* fds, nuint count, int timeout);
}
