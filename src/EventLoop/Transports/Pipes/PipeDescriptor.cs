using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace EventLoop.Transports.Pipes;

/// <summary>
/// A file descriptor handed to the loop (<see cref="Loop.OpenPipe"/>, <see cref="Loop.ListenInheritedAsync"/>), checked and
/// made ready: what it is (<c>fstat</c>: a pipe or FIFO, a socket, a terminal or other character device; a regular
/// file or a directory is refused, as asyncio refuses it, since it is always "ready" and cannot be polled), which way
/// it was opened (<c>F_GETFL</c>'s access mode), its socket family, and non-blocking. When the caller keeps the
/// descriptor (<c>ownsHandle: false</c>) the loop works on a close-on-exec duplicate and closes only that.
/// </summary>
internal readonly partial struct PipeDescriptor
{
    private PipeDescriptor(int fd, bool isSocket, bool canRead, bool canWrite, AddressFamily family)
    {
        Fd = fd;
        IsSocket = isSocket;
        CanRead = canRead;
        CanWrite = canWrite;
        Family = family;
    }

    /// <summary>The descriptor the loop owns now (the caller's, or a duplicate of it).</summary>
    public int Fd { get; }

    /// <summary>A socket (a connected stream or a listener), rather than a pipe, FIFO or terminal.</summary>
    public bool IsSocket { get; }

    /// <summary>Opened for reading (a pipe's read end, a read-write FIFO or terminal, any socket).</summary>
    public bool CanRead { get; }

    /// <summary>Opened for writing.</summary>
    public bool CanWrite { get; }

    /// <summary>The socket's family (<see cref="AddressFamily.Unknown"/> for a non-socket).</summary>
    public AddressFamily Family { get; }

    /// <summary>What a message calls it.</summary>
    public string Kind => IsSocket ? (Family == AddressFamily.Unix ? "Unix socket" : "TCP socket") : "pipe";

    /// <summary>
    /// Checks <paramref name="fd"/> and takes it (or a duplicate, when <paramref name="ownsHandle"/> is false), non-blocking.
    /// <paramref name="listening"/> asks for a listening stream socket instead of a pipe or a connected socket.
    /// </summary>
    /// <exception cref="ArgumentException">Not open (EBADF), a regular file or directory, or not what was asked for.</exception>
    public static PipeDescriptor Take(int fd, bool ownsHandle, bool listening, string parameterName)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Wrapping a file descriptor is supported on Linux only.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(fd, parameterName);
        uint type = FileType(fd, parameterName);
        bool isSocket = type == SocketType;
        if (type is RegularFile or Directory or BlockDevice)
        {
            string what = type == RegularFile ? "a regular file" : type == Directory ? "a directory" : "a block device";
            throw new ArgumentException(
                $"File descriptor {fd} is {what}, which is always ready and cannot be polled: the loop wraps pipes, FIFOs, terminals " +
                "and sockets only. Read and write files with loop.Files (LoopFile) instead.", parameterName);
        }

        AddressFamily family = AddressFamily.Unknown;
        if (isSocket)
        {
            family = GetSocketOption(fd, SoDomain) switch
            {
                1 => AddressFamily.Unix,
                2 => AddressFamily.InterNetwork,
                10 => AddressFamily.InterNetworkV6, // Linux's AF_INET6
                _ => AddressFamily.Unknown,
            };
            if (GetSocketOption(fd, SoType) != SockStream)
            {
                throw new ArgumentException($"File descriptor {fd} is a socket, but not a stream socket (SOCK_STREAM).", parameterName);
            }

            if (family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6 or AddressFamily.Unix))
            {
                throw new ArgumentException($"File descriptor {fd} is a socket of family {family}; TCP (IPv4, IPv6) and Unix sockets are supported.", parameterName);
            }

            bool isListening = GetSocketOption(fd, SoAcceptConn) != 0;
            if (listening != isListening)
            {
                throw new ArgumentException(
                    listening
                        ? $"File descriptor {fd} is a socket that is not listening: bind it and call listen(2) first, or wrap a connected socket with OpenPipe."
                        : $"File descriptor {fd} is a listening socket: use ListenInheritedAsync for it.",
                    parameterName);
            }
        }
        else if (listening)
        {
            throw new ArgumentException($"File descriptor {fd} is not a socket, so nothing can be accepted on it.", parameterName);
        }

        int mode = Imports.fcntl(fd, FGetFl, 0);
        if (mode < 0)
        {
            throw DescriptorError(fd, parameterName, "fcntl(F_GETFL)");
        }

        int access = mode & OAccMode;
        int owned = fd;
        if (!ownsHandle)
        {
            owned = Imports.fcntl(fd, FDupFdCloExec, 0);
            if (owned < 0)
            {
                throw DescriptorError(fd, parameterName, "fcntl(F_DUPFD_CLOEXEC)");
            }
        }

        // The flag belongs to the open file description: a duplicate (and the process that shares it, for an inherited
        // stdin) turns non-blocking too, as asyncio's connect_read_pipe makes it.
        if ((mode & ONonBlock) == 0 && Imports.fcntl(owned, FSetFl, mode | ONonBlock) < 0)
        {
            ArgumentException error = DescriptorError(fd, parameterName, "fcntl(F_SETFL, O_NONBLOCK)");
            if (!ownsHandle)
            {
                Imports.close(owned);
            }

            throw error;
        }

        return new PipeDescriptor(owned, isSocket, isSocket || access != OWrOnly, isSocket || access != ORdOnly, family);
    }

    /// <summary>Closes the descriptor taken (when wrapping it failed).</summary>
    public void Close() => Imports.close(Fd);

    /// <summary>Sets close-on-exec on <paramref name="fd"/> (what <c>sd_listen_fds</c> does to the descriptors it hands out).</summary>
    internal static void SetCloseOnExec(int fd) => Imports.fcntl(fd, FSetFd, FdCloExec);

    private static uint FileType(int fd, string parameterName)
    {
        // struct stat: st_mode is at 24 on x86-64 (after an 8-byte st_nlink), at 16 on arm64; 256 bytes cover both.
        unsafe
        {
            byte* buffer = stackalloc byte[256];
            if (Imports.fstat(fd, buffer) != 0)
            {
                throw DescriptorError(fd, parameterName, "fstat");
            }

            uint mode = *(uint*)(buffer + (RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16));
            return mode & 0xF000; // S_IFMT
        }
    }

    private static int GetSocketOption(int fd, int name)
    {
        unsafe
        {
            int value = 0;
            int length = sizeof(int);
            return Imports.getsockopt(fd, SolSocket, name, &value, &length) == 0 ? value : -1;
        }
    }

    private static ArgumentException DescriptorError(int fd, string parameterName, string call)
    {
        int errno = Marshal.GetLastPInvokeError();
        string reason = errno == EBadF ? "is not an open file descriptor (EBADF)" : $"cannot be used: {call} failed ({Marshal.GetPInvokeErrorMessage(errno)})";
        return new ArgumentException($"File descriptor {fd} {reason}.", parameterName);
    }

    private const uint RegularFile = 0x8000, Directory = 0x4000, BlockDevice = 0x6000, SocketType = 0xC000;
    private const int FSetFd = 2, FGetFl = 3, FSetFl = 4, FDupFdCloExec = 1030, FdCloExec = 1;
    private const int OAccMode = 3, ORdOnly = 0, OWrOnly = 1, ONonBlock = 0x800;
    private const int SolSocket = 1, SoType = 3, SoAcceptConn = 30, SoDomain = 39, SockStream = 1;
    private const int EBadF = 9;

    private static unsafe partial class Imports
    {
        [LibraryImport("libc", SetLastError = true)]
        public static partial int fstat(int fd, byte* buffer);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int fcntl(int fd, int command, int argument);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int getsockopt(int fd, int level, int name, void* value, int* length);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int close(int fd);
    }
}
