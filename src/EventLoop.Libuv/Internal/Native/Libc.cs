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

    [LibraryImport("libc", EntryPoint = "poll")]
    private static partial int poll(PollFd* fds, nuint count, int timeout);
}
