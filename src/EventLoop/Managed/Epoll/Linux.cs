using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EventLoop.Managed.Epoll;

/// <summary>
/// The Linux system calls the managed loop's own poller uses, straight from libc (no native library of ours):
/// epoll, eventfd, and non-blocking socket calls. Thin wrappers that return the result or a negated errno, as
/// libuv does, and the exceptions .NET code already catches for those errors.
/// </summary>
internal static unsafe partial class Linux
{
    public const int EpollCtlAdd = 1;
    public const int EpollCtlDel = 2;
    public const int EpollCtlMod = 3;

    public const uint EpollIn = 0x001;
    public const uint EpollOut = 0x004;
    public const uint EpollErr = 0x008;
    public const uint EpollHup = 0x010;
    public const uint EpollRdHup = 0x2000;
    public const uint EpollEt = 1u << 31;

    private const int CloExec = 0x80000;   // EPOLL_CLOEXEC, EFD_CLOEXEC, SOCK_CLOEXEC
    private const int NonBlock = 0x800;    // EFD_NONBLOCK, SOCK_NONBLOCK
    private const int SockStream = 1;
    private const int IpProtoTcp = 6;
    private const int SolSocket = 1;
    private const int SoError = 4;
    private const int SoKeepAlive = 9;
    private const int SoLinger = 13;
    private const int SoReusePort = 15;
    private const int FGetFl = 3, FSetFl = 4, FDupFdCloExec = 1030, ONonBlock = 0x800;
    private const int TcpNoDelay = 1;
    private const int TcpKeepIdle = 4;
    public const int ShutWr = 1;

    // errno values (Linux x86-64 and arm64 share them).
    public const int EAGAIN = 11;
    public const int EINTR = 4;
    public const int EINPROGRESS = 115;
    public const int ECONNABORTED = 103;
    public const int EMFILE = 24;
    public const int ENFILE = 23;
    public const int ENOBUFS = 105;
    public const int ENOMEM = 12;
    public const int EPROTO = 71;
    public const int ENOTCONN = 107;

    /// <summary>One <c>struct epoll_event</c>: packed on x86-64 (12 bytes), naturally aligned elsewhere (16).</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct EpollEventPacked
    {
        public uint Events;
        public ulong Data;
    }

    /// <summary>The aligned layout (arm64 and every architecture but x86-64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct EpollEventAligned
    {
        public uint Events;
        public ulong Data;
    }

    /// <summary>x86-64 packs <c>struct epoll_event</c>; other architectures align its 64-bit data field.</summary>
    public static readonly bool PackedEpollEvent = RuntimeInformation.ProcessArchitecture == Architecture.X64;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Linger
    {
        public int OnOff;
        public int Seconds;
    }

    /// <summary>True where this poller can run: Linux (x86-64 or arm64), with libc's epoll.</summary>
    public static bool IsSupported =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Errno() => -Marshal.GetLastPInvokeError();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Check(int result) => result >= 0 ? result : Errno();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static nint Check(nint result) => result >= 0 ? result : Errno();

    public static int EpollCreate() => Check(Imports.epoll_create1(CloExec));

    public static int EpollControl(int epfd, int op, int fd, uint events, ulong data)
    {
        if (PackedEpollEvent)
        {
            var ev = new EpollEventPacked { Events = events, Data = data };
            return Check(Imports.epoll_ctl(epfd, op, fd, &ev));
        }

        var aligned = new EpollEventAligned { Events = events, Data = data };
        return Check(Imports.epoll_ctl(epfd, op, fd, &aligned));
    }

    /// <summary><c>epoll_wait</c> into <paramref name="events"/> (an array of the platform's event layout). Returns the count or a negated errno.</summary>
    public static int EpollWait(int epfd, void* events, int max, int timeout) => Check(Imports.epoll_wait(epfd, events, max, timeout));

    public static int EventFd() => Check(Imports.eventfd(0, CloExec | NonBlock));

    public static int Close(int fd) => Check(Imports.close(fd));

    /// <summary>True if <paramref name="fd"/> is readable right now (<c>poll</c>, timeout 0): for an epoll descriptor, events wait.</summary>
    public static bool IsReadable(int fd)
    {
        var pollFd = new PollFd { Fd = fd, Events = 1 /* POLLIN */ };
        return Imports.poll(&pollFd, 1, 0) > 0 && (pollFd.Revents & 1) != 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>Adds one to an eventfd's counter (wakes whoever waits on it). Thread-safe.</summary>
    public static void Signal(int eventFd)
    {
        ulong one = 1;
        Imports.write(eventFd, &one, sizeof(ulong)); // EAGAIN means the counter is saturated: already signalled
    }

    /// <summary>Resets an eventfd's counter.</summary>
    public static void Drain(int eventFd)
    {
        ulong value;
        Imports.read(eventFd, &value, sizeof(ulong));
    }

    public static nint Receive(int fd, byte* buffer, nint length) => Check(Imports.recv(fd, buffer, length, 0));

    public static nint Read(int fd, byte* buffer, nint length) => Check(Imports.read(fd, buffer, length));

    public static nint WriteVector(int fd, IoVec* vectors, int count) => Check(Imports.writev(fd, vectors, count));

    public static int Shutdown(int fd, int how) => Check(Imports.shutdown(fd, how));

    /// <summary>A new non-blocking Unix domain stream socket (<c>AF_UNIX</c>).</summary>
    public static int UnixSocket() => Check(Imports.socket(1 /* AF_UNIX */, SockStream | NonBlock | CloExec, 0));

    /// <summary>
    /// <c>stat</c>: the file's device, inode and whether it is a socket; false when it does not exist or cannot be
    /// read (or off Linux x86-64/arm64, whose <c>struct stat</c> layouts are the ones known here).
    /// </summary>
    public static bool TryStat(string path, out Transports.Unix.UnixSocketPath.FileIdentity identity)
    {
        identity = default;
        if (!IsSupported)
        {
            return false;
        }

        // st_dev and st_ino lead both layouts; st_mode is at 24 on x86-64 (after an 8-byte st_nlink), 16 on arm64.
        byte* buffer = stackalloc byte[256];
        int status;
        try
        {
            status = Imports.stat(path, buffer);
        }
        catch (EntryPointNotFoundException)
        {
            return false; // glibc before 2.33 exports only __xstat
        }

        if (status != 0)
        {
            return false;
        }

        uint mode = *(uint*)(buffer + (RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16));
        const uint TypeMask = 0xF000; // S_IFMT
        const uint Socket = 0xC000;   // S_IFSOCK
        identity = new Transports.Unix.UnixSocketPath.FileIdentity(*(ulong*)buffer, *(ulong*)(buffer + 8), (mode & TypeMask) == Socket);
        return true;
    }

    /// <summary><c>unlink</c>; returns 0 or a negated errno.</summary>
    public static int Unlink(string path) => Check(Imports.unlink(path));

    /// <summary>The address of a Unix domain socket, or null when it has none (an unnamed client socket).</summary>
    public static UnixDomainSocketEndPoint? GetUnixEndPoint(int fd, bool peer)
    {
        const int MaxAddressSize = 128;
        byte* buffer = stackalloc byte[MaxAddressSize];
        int length = MaxAddressSize;
        int status = peer ? Imports.getpeername(fd, buffer, &length) : Imports.getsockname(fd, buffer, &length);
        return status < 0 ? null : ParseUnixAddress(new ReadOnlySpan<byte>(buffer, Math.Min(length, MaxAddressSize)));
    }

    /// <summary>A <c>sockaddr_un</c> as an endpoint: null for an unnamed socket; a leading NUL is an abstract name.</summary>
    public static UnixDomainSocketEndPoint? ParseUnixAddress(ReadOnlySpan<byte> address)
    {
        const int FamilySize = 2;
        if (address.Length <= FamilySize)
        {
            return null;
        }

        ReadOnlySpan<byte> path = address[FamilySize..];
        if (path[0] != 0)
        {
            int end = path.IndexOf((byte)0);
            path = end < 0 ? path : path[..end];
        }

        return path.Length == 0 ? null : new UnixDomainSocketEndPoint(System.Text.Encoding.UTF8.GetString(path));
    }

    /// <summary>A new non-blocking TCP socket for <paramref name="family"/>.</summary>
    public static int Socket(AddressFamily family) =>
        Check(Imports.socket(family == AddressFamily.InterNetworkV6 ? 10 : 2, SockStream | NonBlock | CloExec, IpProtoTcp));

    public static int Connect(int fd, SocketAddress address)
    {
        fixed (byte* native = address.Buffer.Span)
        {
            return Check(Imports.connect(fd, native, address.Size));
        }
    }

    public static int Bind(int fd, SocketAddress address)
    {
        fixed (byte* native = address.Buffer.Span)
        {
            return Check(Imports.bind(fd, native, address.Size));
        }
    }

    public static int Listen(int fd, int backlog) => Check(Imports.listen(fd, backlog));

    /// <summary><c>accept4</c>, non-blocking and close-on-exec. Returns the new fd or a negated errno.</summary>
    public static int Accept(int fd) => Check(Imports.accept4(fd, null, null, NonBlock | CloExec));

    /// <summary>The socket's pending error (<c>SO_ERROR</c>, which clears it), as a negated errno; 0 when none.</summary>
    public static int TakeSocketError(int fd)
    {
        int error = 0;
        int length = sizeof(int);
        int status = Imports.getsockopt(fd, SolSocket, SoError, &error, &length);
        return status < 0 ? Errno() : -error;
    }

    public static int SetNoDelay(int fd, bool on)
    {
        int value = on ? 1 : 0;
        return Check(Imports.setsockopt(fd, IpProtoTcp, TcpNoDelay, &value, sizeof(int)));
    }

    public static int SetKeepAlive(int fd, uint idleSeconds)
    {
        int on = 1;
        int idle = (int)idleSeconds;
        int status = Check(Imports.setsockopt(fd, SolSocket, SoKeepAlive, &on, sizeof(int)));
        return status < 0 ? status : Check(Imports.setsockopt(fd, IpProtoTcp, TcpKeepIdle, &idle, sizeof(int)));
    }

    /// <summary>
    /// A close-on-exec duplicate of <paramref name="fd"/>, made non-blocking (the flag belongs to the open file, so the
    /// original turns non-blocking too). Returns the new descriptor or a negated errno.
    /// </summary>
    public static int DuplicateNonBlocking(int fd)
    {
        int copy = Check(Imports.fcntl(fd, FDupFdCloExec, 0));
        if (copy < 0)
        {
            return copy;
        }

        int flags = Check(Imports.fcntl(copy, FGetFl, 0));
        int status = flags < 0 ? flags : Check(Imports.fcntl(copy, FSetFl, flags | ONonBlock));
        if (status < 0)
        {
            Imports.close(copy);
            return status;
        }

        return copy;
    }

    /// <summary><c>SO_REUSEPORT</c> on a socket not yet bound.</summary>
    public static int SetReusePort(int fd)
    {
        int on = 1;
        return Check(Imports.setsockopt(fd, SolSocket, SoReusePort, &on, sizeof(int)));
    }

    /// <summary>Makes the next close send a reset (RST) instead of a FIN.</summary>
    public static int SetResetOnClose(int fd)
    {
        var linger = new Linger { OnOff = 1, Seconds = 0 };
        return Check(Imports.setsockopt(fd, SolSocket, SoLinger, &linger, sizeof(Linger)));
    }

    /// <summary>A new non-blocking UDP socket for <paramref name="family"/>.</summary>
    public static int DatagramSocket(AddressFamily family) =>
        Check(Imports.socket(family == AddressFamily.InterNetworkV6 ? 10 : 2, 2 /* SOCK_DGRAM */ | NonBlock | CloExec, 17 /* IPPROTO_UDP */));

    /// <summary><c>MSG_TRUNC</c>: for a datagram socket, <c>recvfrom</c> returns the datagram's real length even when it did not fit.</summary>
    public const int MsgTrunc = 0x20;

    /// <summary><c>recvfrom</c>; <paramref name="addressLength"/> is the room in <paramref name="address"/> in, the address's length out.</summary>
    public static nint ReceiveFrom(int fd, byte* buffer, nint length, int flags, byte* address, int* addressLength) =>
        Check(Imports.recvfrom(fd, buffer, length, flags, address, addressLength));

    /// <summary><c>sendto</c>; a null <paramref name="address"/> sends to the connected peer.</summary>
    public static nint SendTo(int fd, byte* buffer, nint length, byte* address, int addressLength) =>
        Check(Imports.sendto(fd, buffer, length, 0, address, addressLength));

    /// <summary><c>setsockopt</c> of an <c>int</c> value.</summary>
    public static int SetIntOption(int fd, int level, int name, int value) => Check(Imports.setsockopt(fd, level, name, &value, sizeof(int)));

    /// <summary><c>setsockopt</c> of a structure (multicast memberships).</summary>
    public static int SetOption(int fd, int level, int name, ReadOnlySpan<byte> value)
    {
        fixed (byte* native = value)
        {
            return Check(Imports.setsockopt(fd, level, name, native, value.Length));
        }
    }

    /// <summary><c>getsockopt</c> of an <c>int</c> value; a negated errno on failure.</summary>
    public static int GetIntOption(int fd, int level, int name)
    {
        int value = 0;
        int length = sizeof(int);
        int status = Imports.getsockopt(fd, level, name, &value, &length);
        return status < 0 ? Errno() : value;
    }

    /// <summary>The local or peer address of a socket, or null if it has none (not connected).</summary>
    public static IPEndPoint? GetEndPoint(int fd, AddressFamily family, bool peer)
    {
        const int MaxAddressSize = 128; // sockaddr_storage
        byte* buffer = stackalloc byte[MaxAddressSize];
        int length = MaxAddressSize;
        int status = peer ? Imports.getpeername(fd, buffer, &length) : Imports.getsockname(fd, buffer, &length);
        if (status < 0 || length <= 0)
        {
            return null;
        }

        var address = new SocketAddress(family, length);
        new ReadOnlySpan<byte>(buffer, length).CopyTo(address.Buffer.Span);
        try
        {
            return (IPEndPoint)new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0).Create(address);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The exception .NET code catches for a negated errno: a <see cref="SocketException"/> with the matching <see cref="SocketError"/>.</summary>
    public static SocketException CreateException(int negatedErrno, string operation)
    {
        int errno = -negatedErrno;
        SocketError error = errno switch
        {
            111 => SocketError.ConnectionRefused,
            104 => SocketError.ConnectionReset,
            103 => SocketError.ConnectionAborted,
            32 => SocketError.Shutdown, // EPIPE
            107 => SocketError.NotConnected,
            110 => SocketError.TimedOut,
            113 => SocketError.HostUnreachable,
            101 => SocketError.NetworkUnreachable,
            98 => SocketError.AddressAlreadyInUse,
            2 => SocketError.AddressNotAvailable, // ENOENT: no socket file at a Unix path (as .NET's sockets say)
            99 => SocketError.AddressNotAvailable,
            97 => SocketError.AddressFamilyNotSupported,
            13 => SocketError.AccessDenied,
            24 or 23 => SocketError.TooManyOpenSockets,
            105 or 12 => SocketError.NoBufferSpaceAvailable,
            11 => SocketError.WouldBlock,
            125 => SocketError.OperationAborted,
            90 => SocketError.MessageSize, // EMSGSIZE: a datagram too large to send
            89 => SocketError.DestinationAddressRequired,
            106 => SocketError.IsConnected,
            19 => SocketError.AddressNotAvailable, // ENODEV: no such interface (a multicast join)
            _ => SocketError.SocketError,
        };
        string text = Marshal.GetPInvokeErrorMessage(errno);
        return new SocketException((int)error, $"{operation} failed: {text} (errno {errno}).");
    }

    [DoesNotReturn]
    public static void Throw(int negatedErrno, string operation) => throw CreateException(negatedErrno, operation);

    private static partial class Imports
    {
        [LibraryImport("libc", SetLastError = true)]
        public static partial int epoll_create1(int flags);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int epoll_ctl(int epfd, int op, int fd, void* ev);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int epoll_wait(int epfd, void* events, int maxevents, int timeout);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int eventfd(uint initval, int flags);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint read(int fd, void* buffer, nint count);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint write(int fd, void* buffer, nint count);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int close(int fd);

        // fcntl is variadic; with one int argument the call is the same as a fixed one on the Linux ABIs this poller runs on.
        [LibraryImport("libc", SetLastError = true)]
        public static partial int fcntl(int fd, int command, int argument);

        [LibraryImport("libc")]
        public static partial int poll(PollFd* fds, nuint count, int timeout);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint recv(int fd, void* buffer, nint length, int flags);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint recvfrom(int fd, void* buffer, nint length, int flags, byte* address, int* addressLength);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint sendto(int fd, void* buffer, nint length, int flags, byte* address, int addressLength);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint writev(int fd, IoVec* vectors, int count);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int shutdown(int fd, int how);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int socket(int domain, int type, int protocol);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int stat(string path, byte* buffer);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int unlink(string path);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int connect(int fd, byte* address, int length);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int bind(int fd, byte* address, int length);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int listen(int fd, int backlog);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int accept4(int fd, byte* address, int* length, int flags);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int getsockopt(int fd, int level, int name, void* value, int* length);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int setsockopt(int fd, int level, int name, void* value, int length);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int getsockname(int fd, byte* address, int* length);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int getpeername(int fd, byte* address, int* length);
    }
}
