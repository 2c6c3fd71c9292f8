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

    [LibraryImport("libc", EntryPoint = "getsockopt")]
    private static partial int getsockopt(int fd, int level, int name, int* value, int* length);

    [LibraryImport("libc", EntryPoint = "poll")]
    private static partial int poll(PollFd* fds, nuint count, int timeout);
}
