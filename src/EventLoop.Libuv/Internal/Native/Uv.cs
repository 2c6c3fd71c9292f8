using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EventLoop.Libuv.Internal.Native;

/// <summary>
/// The raw libuv layer: the imports (private) and thin typed wrappers. Nothing here is public, and
/// nothing here knows about the loop's logic. Pointers are libuv's own structs in native memory.
/// </summary>
internal static unsafe partial class Uv
{
    /// <summary>The AppContext switch that turns on the loop-thread check of every libuv call (the test suite sets it).</summary>
    public const string CheckLoopThreadSwitch = "EventLoop.Libuv.CheckLoopThread";

    /// <summary>
    /// libuv is not thread-safe: but for <c>uv_async_send</c>, a loop and its handles may only be touched on the
    /// thread running the loop. With the check on (the <see cref="CheckLoopThreadSwitch"/> AppContext switch, or
    /// <c>EVENTLOOP_DEBUG=1</c>), every call below that touches a loop or handle verifies the calling thread and
    /// throws <see cref="InvalidOperationException"/> before reaching libuv. Off, it costs nothing: a static
    /// readonly false folds away in optimised code.
    /// </summary>
    private static readonly bool s_checkLoopThread =
        (AppContext.TryGetSwitch(CheckLoopThreadSwitch, out bool on) && on) ||
        Environment.GetEnvironmentVariable("EVENTLOOP_DEBUG") is "1" or "true" or "True" or "TRUE" or "yes";

    /// <summary>True when the loop-thread check is on.</summary>
    public static bool ChecksLoopThread => s_checkLoopThread;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static IntPtr OnLoopThread(IntPtr handleOrLoop, string operation)
    {
        if (s_checkLoopThread)
        {
            CheckLoopThread(handleOrLoop, operation);
        }

        return handleOrLoop;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CheckLoopThread(IntPtr handleOrLoop, string operation)
    {
        // Every handle's data field, and the loop's, points to the loop's NativeLoopState (null before adoption).
        var state = (NativeLoopState*)GetData(handleOrLoop);
        int owner = state == null ? 0 : state->OwnerThreadId;
        int current = Environment.CurrentManagedThreadId;
        if (owner != 0 && owner != current)
        {
            throw new InvalidOperationException(
                $"{operation} was called on thread {current}, but this libuv loop runs on thread {owner}. libuv is not " +
                "thread-safe: its loop and handles may only be used on the loop thread (EventLoop.Libuv's loop-thread check).");
        }
    }

    public enum HandleType
    {
        Unknown = 0,
        Async = 1,
        Check = 2,
        FsEvent = 3,
        FsPoll = 4,
        Handle = 5,
        Idle = 6,
        NamedPipe = 7,
        Poll = 8,
        Prepare = 9,
        Process = 10,
        Stream = 11,
        Tcp = 12,
        Timer = 13,
        Tty = 14,
        Udp = 15,
        Signal = 16,
    }

    public enum RunMode
    {
        Default = 0,
        Once = 1,
        NoWait = 2,
    }

    // libuv's error codes on Unix are negated errno values.
    public const int EOF = -4095;
    public const int EAGAIN = -11;
    public const int ECANCELED = -125;
    public const int EBUSY = -16;
    public const int EINVAL = -22;
    public const int ENOSYS = -38;
    public const int ENOTCONN = -107;

    public static nuint LoopSize() => Imports.uv_loop_size();

    public static nuint HandleSize(HandleType type) => Imports.uv_handle_size((int)type);

    public static nuint ReqSize(int type) => Imports.uv_req_size(type);

    public static void LoopInit(IntPtr loop) => ThrowIfError(Imports.uv_loop_init(loop), "uv_loop_init");

    public static int LoopClose(IntPtr loop) => Imports.uv_loop_close(loop);

    public static int Run(IntPtr loop, RunMode mode) => Imports.uv_run(OnLoopThread(loop, "uv_run"), (int)mode);

    public static void Stop(IntPtr loop) => Imports.uv_stop(OnLoopThread(loop, "uv_stop"));

    public static ulong Now(IntPtr loop) => Imports.uv_now(OnLoopThread(loop, "uv_now"));

    /// <summary>The loop's poll descriptor (epoll or kqueue), or -1 where there is none (Windows).</summary>
    public static int BackendFd(IntPtr loop) => Imports.uv_backend_fd(OnLoopThread(loop, "uv_backend_fd"));

    public static void Walk(IntPtr loop, delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void> callback, IntPtr arg) =>
        Imports.uv_walk(OnLoopThread(loop, "uv_walk"), callback, arg);

    public static void Close(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback) => Imports.uv_close(OnLoopThread(handle, "uv_close"), callback);

    /// <summary>The handle's file descriptor, or -1 when it has none (yet) or is closed.</summary>
    public static int Fileno(IntPtr handle)
    {
        int fd;
        return Imports.uv_fileno(OnLoopThread(handle, "uv_fileno"), &fd) == 0 ? fd : -1;
    }

    public static bool IsClosing(IntPtr handle) => Imports.uv_is_closing(OnLoopThread(handle, "uv_is_closing")) != 0;

    public static HandleType GetHandleType(IntPtr handle) => (HandleType)Imports.uv_handle_get_type(handle);

    public static string HandleTypeName(HandleType type) =>
        Marshal.PtrToStringUTF8(Imports.uv_handle_type_name((int)type)) ?? type.ToString();

    /// <summary>
    /// The <c>data</c> field. It is the first member of every handle and of the loop (UV_HANDLE_FIELDS),
    /// a stable part of libuv 1.x's ABI, so it is read directly instead of through a call.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IntPtr GetData(IntPtr handleOrLoop) => *(IntPtr*)handleOrLoop;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetData(IntPtr handleOrLoop, IntPtr data) => *(IntPtr*)handleOrLoop = data;

    public static void AsyncInit(IntPtr loop, IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        ThrowIfError(Imports.uv_async_init(OnLoopThread(loop, "uv_async_init"), handle, callback), "uv_async_init");

    public static void AsyncSend(IntPtr handle) => ThrowIfError(Imports.uv_async_send(handle), "uv_async_send");

    public static void IdleInit(IntPtr loop, IntPtr handle) => ThrowIfError(Imports.uv_idle_init(OnLoopThread(loop, "uv_idle_init"), handle), "uv_idle_init");

    public static void IdleStart(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        ThrowIfError(Imports.uv_idle_start(OnLoopThread(handle, "uv_idle_start"), callback), "uv_idle_start");

    public static void IdleStop(IntPtr handle) => Imports.uv_idle_stop(OnLoopThread(handle, "uv_idle_stop"));

    public static void PrepareInit(IntPtr loop, IntPtr handle) => ThrowIfError(Imports.uv_prepare_init(OnLoopThread(loop, "uv_prepare_init"), handle), "uv_prepare_init");

    public static void PrepareStart(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        ThrowIfError(Imports.uv_prepare_start(OnLoopThread(handle, "uv_prepare_start"), callback), "uv_prepare_start");

    public static void CheckInit(IntPtr loop, IntPtr handle) => ThrowIfError(Imports.uv_check_init(OnLoopThread(loop, "uv_check_init"), handle), "uv_check_init");

    public static void CheckStart(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        ThrowIfError(Imports.uv_check_start(OnLoopThread(handle, "uv_check_start"), callback), "uv_check_start");

    public static void TimerInit(IntPtr loop, IntPtr handle) => ThrowIfError(Imports.uv_timer_init(OnLoopThread(loop, "uv_timer_init"), handle), "uv_timer_init");

    public static void TimerStart(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback, ulong timeout, ulong repeat) =>
        ThrowIfError(Imports.uv_timer_start(OnLoopThread(handle, "uv_timer_start"), callback, timeout, repeat), "uv_timer_start");

    public static void TimerStop(IntPtr handle) => Imports.uv_timer_stop(OnLoopThread(handle, "uv_timer_stop"));

    public static void Unref(IntPtr handle) => Imports.uv_unref(OnLoopThread(handle, "uv_unref"));

    // ------------------------------------------------------------ requests and TCP streams

    /// <summary>libuv's <c>uv_req_type</c> values used here.</summary>
    public enum ReqType
    {
        Connect = 2,
        Write = 3,
        Shutdown = 4,
        UdpSend = 5,
        Fs = 6,
        GetAddrInfo = 8,
        GetNameInfo = 9,
    }

    /// <summary>libuv's <c>uv_buf_t</c> on Unix: a pointer and a length.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Buf
    {
        public byte* Base;
        public nuint Length;
    }

    public static nuint ReqSize(ReqType type) => Imports.uv_req_size((int)type);

    public static int TcpInit(IntPtr loop, IntPtr handle) => Imports.uv_tcp_init(OnLoopThread(loop, "uv_tcp_init"), handle);

    /// <summary>
    /// <c>uv_tcp_init_ex</c>: initialises the handle and creates its socket at once, of address family
    /// <paramref name="addressFamily"/> (the low 8 bits of the flags: <c>AF_INET</c>, <c>AF_INET6</c>), so socket
    /// options can be set on its descriptor (<see cref="Fileno"/>) before it is bound.
    /// </summary>
    public static int TcpInitEx(IntPtr loop, IntPtr handle, uint addressFamily) => Imports.uv_tcp_init_ex(OnLoopThread(loop, "uv_tcp_init_ex"), handle, addressFamily);

    /// <summary><c>uv_tcp_open</c>: makes an initialised handle of an existing socket descriptor, which libuv then owns (on success).</summary>
    public static int TcpOpen(IntPtr handle, int fd) => Imports.uv_tcp_open(OnLoopThread(handle, "uv_tcp_open"), fd);

    public static int TcpNoDelay(IntPtr handle, bool enable) => Imports.uv_tcp_nodelay(OnLoopThread(handle, "uv_tcp_nodelay"), enable ? 1 : 0);

    public static int TcpKeepAlive(IntPtr handle, bool enable, uint delaySeconds) => Imports.uv_tcp_keepalive(OnLoopThread(handle, "uv_tcp_keepalive"), enable ? 1 : 0, delaySeconds);

    public static int TcpBind(IntPtr handle, byte* address, uint flags) => Imports.uv_tcp_bind(OnLoopThread(handle, "uv_tcp_bind"), address, flags);

    public static int TcpGetSockName(IntPtr handle, byte* address, int* length) => Imports.uv_tcp_getsockname(OnLoopThread(handle, "uv_tcp_getsockname"), address, length);

    public static int TcpGetPeerName(IntPtr handle, byte* address, int* length) => Imports.uv_tcp_getpeername(OnLoopThread(handle, "uv_tcp_getpeername"), address, length);

    public static int TcpConnect(IntPtr req, IntPtr handle, byte* address, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback) =>
        Imports.uv_tcp_connect(req, OnLoopThread(handle, "uv_tcp_connect"), address, callback);

    public static int TcpCloseReset(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback) => Imports.uv_tcp_close_reset(OnLoopThread(handle, "uv_tcp_close_reset"), callback);

    public static int Listen(IntPtr stream, int backlog, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback) => Imports.uv_listen(OnLoopThread(stream, "uv_listen"), backlog, callback);

    public static int Accept(IntPtr server, IntPtr client) => Imports.uv_accept(OnLoopThread(server, "uv_accept"), client);

    public static int ReadStart(
        IntPtr stream,
        delegate* unmanaged[Cdecl]<IntPtr, nuint, Buf*, void> alloc,
        delegate* unmanaged[Cdecl]<IntPtr, nint, Buf*, void> read) => Imports.uv_read_start(OnLoopThread(stream, "uv_read_start"), alloc, read);

    public static int ReadStop(IntPtr stream) => Imports.uv_read_stop(OnLoopThread(stream, "uv_read_stop"));

    public static int TryWrite(IntPtr stream, Buf* bufs, uint count) => Imports.uv_try_write(OnLoopThread(stream, "uv_try_write"), bufs, count);

    public static int Write(IntPtr req, IntPtr stream, Buf* bufs, uint count, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback) =>
        Imports.uv_write(req, OnLoopThread(stream, "uv_write"), bufs, count, callback);

    public static int Shutdown(IntPtr req, IntPtr stream, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback) =>
        Imports.uv_shutdown(req, OnLoopThread(stream, "uv_shutdown"), callback);

    // ------------------------------------------------------------ Unix domain sockets (uv_pipe_t)

    public static int PipeInit(IntPtr loop, IntPtr handle) => Imports.uv_pipe_init(OnLoopThread(loop, "uv_pipe_init"), handle, 0);

    /// <summary><c>uv_pipe_connect</c>: the result, errors included, comes to the callback.</summary>
    public static void PipeConnect(IntPtr req, IntPtr handle, byte* name, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback) =>
        Imports.uv_pipe_connect(req, OnLoopThread(handle, "uv_pipe_connect"), name, callback);

    /// <summary><c>uv_pipe_open</c>: adopts a socket descriptor (made non-blocking by libuv).</summary>
    public static int PipeOpen(IntPtr handle, int fd) => Imports.uv_pipe_open(OnLoopThread(handle, "uv_pipe_open"), fd);

    // ------------------------------------------------------------ UDP (uv_udp_t)

    /// <summary><c>uv_udp_bind</c> flag: <c>SO_REUSEADDR</c> before binding.</summary>
    public const uint UdpReuseAddr = 4;

    /// <summary><c>uv_udp_recv_cb</c> flag: the datagram did not fit the buffer and was cut short.</summary>
    public const uint UdpPartial = 2;

    /// <summary><c>uv_udp_init_ex</c>: the handle with its socket created at once, of address family <paramref name="addressFamily"/> (the low 8 bits of the flags).</summary>
    public static int UdpInitEx(IntPtr loop, IntPtr handle, uint addressFamily) => Imports.uv_udp_init_ex(OnLoopThread(loop, "uv_udp_init_ex"), handle, addressFamily);

    public static int UdpBind(IntPtr handle, byte* address, uint flags) => Imports.uv_udp_bind(OnLoopThread(handle, "uv_udp_bind"), address, flags);

    public static int UdpConnect(IntPtr handle, byte* address) => Imports.uv_udp_connect(OnLoopThread(handle, "uv_udp_connect"), address);

    public static int UdpGetSockName(IntPtr handle, byte* address, int* length) => Imports.uv_udp_getsockname(OnLoopThread(handle, "uv_udp_getsockname"), address, length);

    public static int UdpGetPeerName(IntPtr handle, byte* address, int* length) => Imports.uv_udp_getpeername(OnLoopThread(handle, "uv_udp_getpeername"), address, length);

    /// <summary><c>uv_udp_try_send</c>: the bytes sent, or a negative status (<see cref="EAGAIN"/> when it would have to wait). A null address sends to the connected peer.</summary>
    public static int UdpTrySend(IntPtr handle, Buf* bufs, uint count, byte* address) => Imports.uv_udp_try_send(OnLoopThread(handle, "uv_udp_try_send"), bufs, count, address);

    /// <summary><c>uv_udp_send</c>: queues the datagram; the buffers must stay valid until the callback.</summary>
    public static int UdpSend(IntPtr req, IntPtr handle, Buf* bufs, uint count, byte* address, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback) =>
        Imports.uv_udp_send(req, OnLoopThread(handle, "uv_udp_send"), bufs, count, address, callback);

    public static int UdpRecvStart(
        IntPtr handle,
        delegate* unmanaged[Cdecl]<IntPtr, nuint, Buf*, void> alloc,
        delegate* unmanaged[Cdecl]<IntPtr, nint, Buf*, byte*, uint, void> receive) => Imports.uv_udp_recv_start(OnLoopThread(handle, "uv_udp_recv_start"), alloc, receive);

    public static int UdpRecvStop(IntPtr handle) => Imports.uv_udp_recv_stop(OnLoopThread(handle, "uv_udp_recv_stop"));

    public static int UdpSetBroadcast(IntPtr handle, bool on) => Imports.uv_udp_set_broadcast(OnLoopThread(handle, "uv_udp_set_broadcast"), on ? 1 : 0);

    /// <summary><c>uv_udp_set_membership</c>: join (or leave) a group, given as text, on the interface with the address given (null: the system picks).</summary>
    public static int UdpSetMembership(IntPtr handle, byte* group, byte* interfaceAddress, bool join) =>
        Imports.uv_udp_set_membership(OnLoopThread(handle, "uv_udp_set_membership"), group, interfaceAddress, join ? 1 : 0);

    /// <summary><c>uv_udp_set_multicast_interface</c>: the interface multicast is sent from, given as its address in text.</summary>
    public static int UdpSetMulticastInterface(IntPtr handle, byte* interfaceAddress) =>
        Imports.uv_udp_set_multicast_interface(OnLoopThread(handle, "uv_udp_set_multicast_interface"), interfaceAddress);

    public static int UdpSetMulticastTtl(IntPtr handle, int ttl) => Imports.uv_udp_set_multicast_ttl(OnLoopThread(handle, "uv_udp_set_multicast_ttl"), ttl);

    public static int UdpSetMulticastLoop(IntPtr handle, bool on) => Imports.uv_udp_set_multicast_loop(OnLoopThread(handle, "uv_udp_set_multicast_loop"), on ? 1 : 0);

    /// <summary><c>uv_send_buffer_size</c> with a non-zero value: sets <c>SO_SNDBUF</c>.</summary>
    public static int SetSendBufferSize(IntPtr handle, int size) => Imports.uv_send_buffer_size(OnLoopThread(handle, "uv_send_buffer_size"), &size);

    /// <summary><c>uv_recv_buffer_size</c> with a non-zero value: sets <c>SO_RCVBUF</c>.</summary>
    public static int SetReceiveBufferSize(IntPtr handle, int size) => Imports.uv_recv_buffer_size(OnLoopThread(handle, "uv_recv_buffer_size"), &size);

    // ------------------------------------------------------------ DNS (libuv's thread pool) and cancelling requests

    /// <summary><c>struct addrinfo</c> on Linux (64-bit): what the hints and the results are.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct AddrInfo
    {
        public int Flags;
        public int Family;
        public int SockType;
        public int Protocol;
        public uint AddrLen;
        public byte* Addr;
        public byte* CanonName;
        public AddrInfo* Next;
    }

    /// <summary><c>uv_getaddrinfo</c>; libuv copies the node, service and hints. The result comes to the callback, which must free it.</summary>
    public static int GetAddrInfo(IntPtr loop, IntPtr req, delegate* unmanaged[Cdecl]<IntPtr, int, AddrInfo*, void> callback, byte* node, byte* service, AddrInfo* hints) =>
        Imports.uv_getaddrinfo(OnLoopThread(loop, "uv_getaddrinfo"), req, callback, node, service, hints);

    /// <summary><c>uv_freeaddrinfo</c> (null is fine).</summary>
    public static void FreeAddrInfo(AddrInfo* info) => Imports.uv_freeaddrinfo(info);

    /// <summary><c>uv_getnameinfo</c>; libuv copies the address.</summary>
    public static int GetNameInfo(IntPtr loop, IntPtr req, delegate* unmanaged[Cdecl]<IntPtr, int, byte*, byte*, void> callback, byte* address, int flags) =>
        Imports.uv_getnameinfo(OnLoopThread(loop, "uv_getnameinfo"), req, callback, address, flags);

    /// <summary><c>uv_cancel</c>: a thread-pool request that has not started is cancelled (its callback gets a cancel status); one that runs is not (EBUSY).</summary>
    public static int Cancel(IntPtr loop, IntPtr req)
    {
        OnLoopThread(loop, "uv_cancel"); // the request's data is ours, not the loop's: check with the loop it belongs to
        return Imports.uv_cancel(req);
    }

    // ------------------------------------------------------------ files (uv_fs_t on libuv's thread pool)

    /// <summary>libuv's <c>uv_dirent_t</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Dirent
    {
        public byte* Name;
        public int Type;
    }

    public static int FsOpen(IntPtr loop, IntPtr req, byte* path, int flags, int mode, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_open(OnLoopThread(loop, "uv_fs_open"), req, path, flags, mode, callback);

    /// <summary><c>uv_fs_close</c>; with a null callback it runs at once, on this thread.</summary>
    public static int FsClose(IntPtr loop, IntPtr req, int file, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_close(OnLoopThread(loop, "uv_fs_close"), req, file, callback);

    public static int FsRead(IntPtr loop, IntPtr req, int file, Buf* bufs, uint count, long offset, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_read(OnLoopThread(loop, "uv_fs_read"), req, file, bufs, count, offset, callback);

    public static int FsWrite(IntPtr loop, IntPtr req, int file, Buf* bufs, uint count, long offset, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_write(OnLoopThread(loop, "uv_fs_write"), req, file, bufs, count, offset, callback);

    public static int FsStat(IntPtr loop, IntPtr req, byte* path, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_stat(OnLoopThread(loop, "uv_fs_stat"), req, path, callback);

    /// <summary><c>uv_fs_fstat</c>; with a null callback it runs at once, on this thread.</summary>
    public static int FsFstat(IntPtr loop, IntPtr req, int file, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_fstat(OnLoopThread(loop, "uv_fs_fstat"), req, file, callback);

    public static int FsRename(IntPtr loop, IntPtr req, byte* path, byte* newPath, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_rename(OnLoopThread(loop, "uv_fs_rename"), req, path, newPath, callback);

    public static int FsUnlink(IntPtr loop, IntPtr req, byte* path, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_unlink(OnLoopThread(loop, "uv_fs_unlink"), req, path, callback);

    public static int FsMkdir(IntPtr loop, IntPtr req, byte* path, int mode, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_mkdir(OnLoopThread(loop, "uv_fs_mkdir"), req, path, mode, callback);

    public static int FsScandir(IntPtr loop, IntPtr req, byte* path, delegate* unmanaged[Cdecl]<IntPtr, void> callback) =>
        Imports.uv_fs_scandir(OnLoopThread(loop, "uv_fs_scandir"), req, path, 0, callback);

    /// <summary>The next entry of a finished scandir request; <see cref="EOF"/> at the end.</summary>
    public static int FsScandirNext(IntPtr req, Dirent* entry) => Imports.uv_fs_scandir_next(req, entry);

    /// <summary>Frees what libuv allocated for a finished fs request (its path copy, scandir entries); the request's memory stays ours.</summary>
    public static void FsReqCleanup(IntPtr req) => Imports.uv_fs_req_cleanup(req);

    /// <summary>The request's result: a descriptor, a byte count, or a negative status.</summary>
    public static long FsResult(IntPtr req) => Imports.uv_fs_get_result(req);

    /// <summary>The <c>uv_stat_t</c> of a finished stat request: sixteen 64-bit fields, then four timespecs.</summary>
    public static ulong* FsStatBuf(IntPtr req) => (ulong*)Imports.uv_fs_get_statbuf(req);

    /// <summary>Throws for a negative libuv status. Tiny so it inlines; the throw is out of line.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ThrowIfError(int status, string operation)
    {
        if (status < 0)
        {
            ThrowError(status, operation);
        }
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowError(int status, string operation) => throw CreateException(status, operation);

    /// <summary>
    /// The exception .NET users already catch for a libuv status: <see cref="SocketException"/> with the
    /// matching <see cref="SocketError"/> for network errors, <see cref="IOException"/> otherwise.
    /// </summary>
    public static Exception CreateException(int status, string operation)
    {
        string name = ErrorName(status);
        string message = $"{operation} failed: {name} ({ErrorMessage(status)})";
        SocketError? socketError = name switch
        {
            "ECONNREFUSED" => SocketError.ConnectionRefused,
            "EADDRINUSE" => SocketError.AddressAlreadyInUse,
            "EADDRNOTAVAIL" => SocketError.AddressNotAvailable,
            "ECONNRESET" => SocketError.ConnectionReset,
            "ECONNABORTED" => SocketError.ConnectionAborted,
            "ENETUNREACH" => SocketError.NetworkUnreachable,
            "EHOSTUNREACH" => SocketError.HostUnreachable,
            "ETIMEDOUT" => SocketError.TimedOut,
            "EPIPE" => SocketError.Shutdown,
            "ENOTCONN" => SocketError.NotConnected,
            "EAFNOSUPPORT" => SocketError.AddressFamilyNotSupported,
            "EACCES" => SocketError.AccessDenied,
            "ENOENT" => SocketError.AddressNotAvailable,
            "EAI_NONAME" or "EAI_NODATA" or "EAI_ADDRFAMILY" => SocketError.HostNotFound,
            "EAI_AGAIN" => SocketError.TryAgain,
            "EAI_FAIL" => SocketError.NoRecovery,
            "EAI_FAMILY" => SocketError.AddressFamilyNotSupported,
            "EAI_CANCELED" => SocketError.OperationAborted, // no socket file at a Unix path (as .NET's sockets say)
            "EAGAIN" => SocketError.WouldBlock,
            "EMSGSIZE" => SocketError.MessageSize,
            "EDESTADDRREQ" => SocketError.DestinationAddressRequired,
            "EISCONN" => SocketError.IsConnected,
            "ENODEV" => SocketError.AddressNotAvailable,
            "ECANCELED" => SocketError.OperationAborted,
            _ => null,
        };
        return socketError is { } error ? new SocketException((int)error, message) : new IOException(message);
    }

    public static string ErrorName(int status) => Marshal.PtrToStringUTF8(Imports.uv_err_name(status)) ?? status.ToString();

    public static string ErrorMessage(int status) => Marshal.PtrToStringUTF8(Imports.uv_strerror(status)) ?? status.ToString();

    private static partial class Imports
    {
        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial nuint uv_loop_size();

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial nuint uv_handle_size(int type);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial nuint uv_req_size(int type);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_loop_init(IntPtr loop);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_loop_close(IntPtr loop);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_run(IntPtr loop, int mode);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_stop(IntPtr loop);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial ulong uv_now(IntPtr loop);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_backend_fd(IntPtr loop);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_walk(IntPtr loop, delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void> callback, IntPtr arg);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_close(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_is_closing(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fileno(IntPtr handle, int* fd);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_handle_get_type(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial IntPtr uv_handle_type_name(int type);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_unref(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_async_init(IntPtr loop, IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_async_send(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_idle_init(IntPtr loop, IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_idle_start(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_idle_stop(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_prepare_init(IntPtr loop, IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_prepare_start(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_check_init(IntPtr loop, IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_check_start(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_timer_init(IntPtr loop, IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_timer_start(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback, ulong timeout, ulong repeat);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_timer_stop(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_init(IntPtr loop, IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_init_ex(IntPtr loop, IntPtr handle, uint flags);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_open(IntPtr handle, int sock);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_nodelay(IntPtr handle, int enable);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_keepalive(IntPtr handle, int enable, uint delay);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_bind(IntPtr handle, byte* address, uint flags);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_getsockname(IntPtr handle, byte* address, int* length);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_getpeername(IntPtr handle, byte* address, int* length);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_connect(IntPtr req, IntPtr handle, byte* address, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_tcp_close_reset(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_listen(IntPtr stream, int backlog, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_accept(IntPtr server, IntPtr client);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_read_start(IntPtr stream, delegate* unmanaged[Cdecl]<IntPtr, nuint, Buf*, void> alloc, delegate* unmanaged[Cdecl]<IntPtr, nint, Buf*, void> read);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_read_stop(IntPtr stream);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_try_write(IntPtr stream, Buf* bufs, uint count);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_write(IntPtr req, IntPtr stream, Buf* bufs, uint count, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_shutdown(IntPtr req, IntPtr stream, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_pipe_init(IntPtr loop, IntPtr handle, int ipc);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_pipe_connect(IntPtr req, IntPtr handle, byte* name, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_pipe_open(IntPtr handle, int fd);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_init_ex(IntPtr loop, IntPtr handle, uint flags);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_bind(IntPtr handle, byte* address, uint flags);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_connect(IntPtr handle, byte* address);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_getsockname(IntPtr handle, byte* address, int* length);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_getpeername(IntPtr handle, byte* address, int* length);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_try_send(IntPtr handle, Buf* bufs, uint count, byte* address);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_send(IntPtr req, IntPtr handle, Buf* bufs, uint count, byte* address, delegate* unmanaged[Cdecl]<IntPtr, int, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_recv_start(IntPtr handle, delegate* unmanaged[Cdecl]<IntPtr, nuint, Buf*, void> alloc, delegate* unmanaged[Cdecl]<IntPtr, nint, Buf*, byte*, uint, void> receive);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_recv_stop(IntPtr handle);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_set_broadcast(IntPtr handle, int on);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_set_membership(IntPtr handle, byte* group, byte* interfaceAddress, int membership);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_set_multicast_interface(IntPtr handle, byte* interfaceAddress);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_set_multicast_ttl(IntPtr handle, int ttl);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_udp_set_multicast_loop(IntPtr handle, int on);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_send_buffer_size(IntPtr handle, int* value);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_recv_buffer_size(IntPtr handle, int* value);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_getaddrinfo(IntPtr loop, IntPtr req, delegate* unmanaged[Cdecl]<IntPtr, int, AddrInfo*, void> callback, byte* node, byte* service, AddrInfo* hints);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_freeaddrinfo(AddrInfo* info);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_getnameinfo(IntPtr loop, IntPtr req, delegate* unmanaged[Cdecl]<IntPtr, int, byte*, byte*, void> callback, byte* address, int flags);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_cancel(IntPtr req);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_open(IntPtr loop, IntPtr req, byte* path, int flags, int mode, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_close(IntPtr loop, IntPtr req, int file, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_read(IntPtr loop, IntPtr req, int file, Buf* bufs, uint count, long offset, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_write(IntPtr loop, IntPtr req, int file, Buf* bufs, uint count, long offset, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_stat(IntPtr loop, IntPtr req, byte* path, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_fstat(IntPtr loop, IntPtr req, int file, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_rename(IntPtr loop, IntPtr req, byte* path, byte* newPath, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_unlink(IntPtr loop, IntPtr req, byte* path, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_mkdir(IntPtr loop, IntPtr req, byte* path, int mode, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_scandir(IntPtr loop, IntPtr req, byte* path, int flags, delegate* unmanaged[Cdecl]<IntPtr, void> callback);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial int uv_fs_scandir_next(IntPtr req, Dirent* entry);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial void uv_fs_req_cleanup(IntPtr req);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial nint uv_fs_get_result(IntPtr req);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial IntPtr uv_fs_get_statbuf(IntPtr req);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial IntPtr uv_err_name(int status);

        [LibraryImport(LibuvLibrary.ImportName)]
        public static partial IntPtr uv_strerror(int status);
    }
}
