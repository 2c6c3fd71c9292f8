using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// The libuv backend of <see cref="Loop"/>. The loop thread sits in <c>uv_run(UV_RUN_DEFAULT)</c>; the shared
/// engine on <see cref="Loop"/> is driven from libuv's phases, as uvloop does:
/// <list type="bullet">
/// <item>prepare (just before the poll): if work is ready (or a stop is pending), an idle handle is started
/// so libuv polls with timeout 0 and never blocks; otherwise the single libuv timer is armed for the managed
/// timer heap's next deadline and the loop announces it may sleep (cross-thread posts then wake it with
/// <c>uv_async_send</c>, coalesced).</item>
/// <item>poll: I/O callbacks run here.</item>
/// <item>check (just after the poll): due timers and cross-thread posts move to the ready queue and ready
/// callbacks run, a few batches of <see cref="LoopOptions.CallbacksPerIteration"/>.</item>
/// </list>
/// Timers are one libuv timer over the managed heap rather than a libuv timer each: no native call or native
/// allocation per timer.
/// </summary>
internal sealed unsafe class LibuvLoop : Loop
{
    private const int BatchesPerIteration = 4;

    private readonly NativeLoopState* _state;
    private readonly IntPtr _loop;
    private readonly IntPtr _async;
    private readonly IntPtr _idle;
    private readonly IntPtr _prepare;
    private readonly IntPtr _check;
    private readonly IntPtr _timer;
    private bool _idleActive;
    private bool _sleepAnnounced;
    private bool _draining;
    private bool _nativeClosed;
    private GCHandle _self;

    internal LibuvLoop(LoopOptions options)
        : base(options)
    {
        _state = (NativeLoopState*)NativeMemory.AllocZeroed((nuint)sizeof(NativeLoopState));
        _loop = (IntPtr)NativeMemory.AllocZeroed(Uv.LoopSize());
        try
        {
            Uv.LoopInit(_loop);
        }
        catch
        {
            NativeMemory.Free((void*)_loop);
            NativeMemory.Free(_state);
            throw;
        }

        Uv.SetData(_loop, (IntPtr)_state);
        _async = NewHandle(Uv.HandleType.Async);
        Uv.AsyncInit(_loop, _async, &OnAsync);
        _idle = NewHandle(Uv.HandleType.Idle);
        Uv.IdleInit(_loop, _idle);
        _prepare = NewHandle(Uv.HandleType.Prepare);
        Uv.PrepareInit(_loop, _prepare);
        _check = NewHandle(Uv.HandleType.Check);
        Uv.CheckInit(_loop, _check);
        _timer = NewHandle(Uv.HandleType.Timer);
        Uv.TimerInit(_loop, _timer);
    }

    /// <summary>Frees the native loop of a loop that was never run nor disposed. No loop thread exists then.</summary>
    ~LibuvLoop()
    {
        CloseNative(reportLeaks: false);
    }

    public override string PolicyName => "libuv";

    /// <summary>libuv requests (write, shutdown, connect) allocated and not yet freed. Loop thread only.</summary>
    internal int OpenRequests { get; set; }

    internal override int OpenNativeRequestCount => OpenRequests;

    internal override int OpenNativeHandleCount => OpenSocketCount + (_nativeClosed ? 0 : _state->OpenHandles);

    /// <summary>Handles left open at close, by type name, from the last leak check (empty when none).</summary>
    internal IReadOnlyList<string> LeakedHandles { get; private set; } = [];

    /// <summary>
    /// Native bookkeeping just before every handle this loop allocates: the GCHandle of the managed object
    /// that owns the handle (a connection, a listener), or zero. The handle's own <c>data</c> field always
    /// points to the loop's <see cref="NativeLoopState"/>, so any close callback can do the accounting.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct HandleHeader
    {
        public IntPtr Owner;
        public IntPtr Reserved;
    }

    /// <summary>Allocates a handle's memory (after a <see cref="HandleHeader"/>); it is freed only in the close callback.</summary>
    internal IntPtr NewHandle(Uv.HandleType type)
    {
        byte* block = (byte*)NativeMemory.AllocZeroed((nuint)sizeof(HandleHeader) + Uv.HandleSize(type));
        _state->OpenHandles++;
        return (IntPtr)(block + sizeof(HandleHeader));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static HandleHeader* Header(IntPtr handle) => (HandleHeader*)((byte*)handle - sizeof(HandleHeader));

    /// <summary>The managed owner of a handle (see <see cref="HandleHeader"/>), or null.</summary>
    internal static object? OwnerOf(IntPtr handle)
    {
        IntPtr owner = Header(handle)->Owner;
        return owner == IntPtr.Zero ? null : GCHandle.FromIntPtr(owner).Target;
    }

    /// <summary>
    /// The last step of every handle's close callback: accounting, the owner's GCHandle if still set, the memory.
    /// Needs no managed loop object: safe on any thread.
    /// </summary>
    internal static void FreeHandle(IntPtr handle)
    {
        var state = (NativeLoopState*)Uv.GetData(handle);
        if (state != null)
        {
            state->OpenHandles--;
        }

        HandleHeader* header = Header(handle);
        if (header->Owner != IntPtr.Zero)
        {
            GCHandle.FromIntPtr(header->Owner).Free();
            header->Owner = IntPtr.Zero;
        }

        NativeMemory.Free(header);
    }


    internal IntPtr NativeLoop => _loop;

    /// <summary>Sets a handle's data to this loop's native state (after its init call, which clears nothing we need).</summary>
    internal void Adopt(IntPtr handle) => Uv.SetData(handle, (IntPtr)_state);

    private protected override void RunBackend()
    {
        _state->OwnerThreadId = Environment.CurrentManagedThreadId; // from now on only this thread may call libuv
        EnsureSelfHandle();
        Adopt(_async);
        Adopt(_idle);
        Adopt(_prepare);
        Adopt(_check);
        Adopt(_timer);
        Uv.PrepareStart(_prepare, &OnPrepare);
        Uv.CheckStart(_check, &OnCheck);
        while (!StopRequested)
        {
            // uv_run returns when uv_stop was called (from the check phase, on Stop) or, never here, when no handle is active.
            Uv.Run(_loop, Uv.RunMode.Default);
        }
    }

    private protected override void WakeBackend() => Uv.AsyncSend(_async);

    private protected override bool DrainBackendOnce()
    {
        if (_nativeClosed)
        {
            return false;
        }

        EnsureSelfHandle();
        _draining = true;
        try
        {
            Uv.Run(_loop, Uv.RunMode.NoWait);
        }
        finally
        {
            _draining = false;
        }

        return HasReadyWork;
    }

    private protected override void CloseBackend() => CloseNative(reportLeaks: true);

    /// <summary>
    /// I/O events wait for this thread: libuv's epoll descriptor is readable, or a descriptor whose watcher libuv
    /// has not yet added to epoll is ready. libuv applies a new watcher (a listen, connect, read start or queued
    /// write) only at its next poll, so a wait that blocks before that poll would not show in epoll at all.
    /// </summary>
    private protected override bool HasReadyIo()
    {
        if (_nativeClosed)
        {
            return false;
        }

        if (Libc.IsReadable(Uv.BackendFd(_loop)))
        {
            return true;
        }

        foreach ((IWatcherOwner owner, IntPtr handle, bool writable) in _unpolledWatchers)
        {
            if (owner.IsOpen(handle) && Libc.IsReady(Uv.Fileno(handle), writable))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>What started watching a handle: answers whether the handle is still open (not closing).</summary>
    internal interface IWatcherOwner
    {
        bool IsOpen(IntPtr handle);
    }

    private readonly List<(IWatcherOwner Owner, IntPtr Handle, bool Writable)> _unpolledWatchers = new();

    /// <summary>
    /// Notes that <paramref name="owner"/> started watching <paramref name="handle"/> for reading (or writing): until
    /// libuv's next poll the descriptor is not in epoll, and <see cref="HasReadyIo"/> checks it directly.
    /// </summary>
    internal void NoteWatcherStarted(IWatcherOwner owner, IntPtr handle, bool writable) =>
        _unpolledWatchers.Add((owner, handle, writable));

    private protected override void WaitForPostsDuringShutdown(int milliseconds)
    {
        if (_nativeClosed || !PrepareToSleep())
        {
            return;
        }

        // One libuv iteration that blocks until a post (uv_async_send) or the timer, whichever comes first.
        EnsureSelfHandle();
        SetIdle(false);
        Uv.TimerStart(_timer, &OnTimer, (ulong)milliseconds, 0);
        _draining = true;
        try
        {
            Uv.Run(_loop, Uv.RunMode.Once);
        }
        finally
        {
            _draining = false;
            Uv.TimerStop(_timer);
            AfterSleep();
        }
    }

    private void EnsureSelfHandle()
    {
        if (!_self.IsAllocated)
        {
            _self = GCHandle.Alloc(this);
            _state->Loop = GCHandle.ToIntPtr(_self);
        }
    }

    /// <summary>
    /// Closes every handle, runs libuv until their close callbacks have freed them, closes the loop
    /// (<c>uv_loop_close</c> must return 0) and frees the native memory. Reports any handle that was
    /// still open and not ours: that is a leak.
    /// </summary>
    private void CloseNative(bool reportLeaks)
    {
        if (_nativeClosed)
        {
            return;
        }

        _nativeClosed = true;
        GC.SuppressFinalize(this);
        var leaks = new List<string>();
        GCHandle leakList = GCHandle.Alloc(leaks);
        try
        {
            Uv.IdleStop(_idle);
            Uv.TimerStop(_timer);
            var walk = new WalkContext { Leaks = GCHandle.ToIntPtr(leakList), Async = _async, Idle = _idle, Prepare = _prepare, Check = _check, Timer = _timer, CloseLeaks = 1 };
            Uv.Walk(_loop, &OnWalkClose, (IntPtr)(&walk));
            for (int i = 0; i < 1000 && Uv.Run(_loop, Uv.RunMode.NoWait) != 0; i++)
            {
            }

            int status = Uv.LoopClose(_loop);

            if (status < 0 && reportLeaks)
            {
                ReportException("uv_loop_close failed: a libuv handle or request is still open", Uv.CreateException(status, "uv_loop_close"));
            }
        }
        finally
        {
            leakList.Free();
            if (_state->OpenHandles == 0)
            {
                NativeMemory.Free((void*)_loop);
            }

            _state->Loop = IntPtr.Zero;
            if (_self.IsAllocated)
            {
                _self.Free();
            }

            // The state block stays valid for late close callbacks of a loop that failed to close; it is tiny.
            if (_state->OpenHandles == 0)
            {
                NativeMemory.Free(_state);
            }
        }

        LeakedHandles = leaks;
        if (reportLeaks && leaks.Count > 0)
        {
            ReportException(
                $"The libuv loop closed with {leaks.Count} handle(s) still open: {string.Join(", ", leaks)}. They were closed now; whatever opened them did not close them.",
                new InvalidOperationException("Leaked libuv handles: " + string.Join(", ", leaks)));
        }
    }

    private struct WalkContext
    {
        public IntPtr Leaks;
        public IntPtr Async;
        public IntPtr Idle;
        public IntPtr Prepare;
        public IntPtr Check;
        public IntPtr Timer;
        public int CloseLeaks; // 1: close what is found (the final close); 0: only name it (the leak check)
    }

    /// <summary>
    /// The leak check before the backend closes: every handle that is neither the loop's own nor already closing
    /// (whatever opened it never called <c>uv_close</c>), every request not freed, and any socket.
    /// </summary>
    private protected override string? DescribeOpenResources()
    {
        if (_nativeClosed)
        {
            return base.DescribeOpenResources();
        }

        var open = new List<string>();
        GCHandle list = GCHandle.Alloc(open);
        try
        {
            var walk = new WalkContext { Leaks = GCHandle.ToIntPtr(list), Async = _async, Idle = _idle, Prepare = _prepare, Check = _check, Timer = _timer, CloseLeaks = 0 };
            Uv.Walk(_loop, &OnWalkClose, (IntPtr)(&walk));
        }
        finally
        {
            list.Free();
        }

        if (OpenRequests != 0)
        {
            open.Add($"{OpenRequests} request(s)");
        }

        if (base.DescribeOpenResources() is { } sockets)
        {
            open.Add(sockets);
        }

        return open.Count == 0 ? null : string.Join(", ", open);
    }

    // ------------------------------------------------------------ phases

    private void BeforePoll()
    {
        _unpolledWatchers.Clear(); // the poll that follows adds every new watcher to epoll
        if (_draining)
        {
            return;
        }

        if (StopRequested)
        {
            Uv.Stop(_loop);
            return;
        }

        int timeout = GetPollTimeoutMilliseconds();
        if (timeout != 0 && PrepareToSleep())
        {
            _sleepAnnounced = true;
            SetIdle(false);
            if (timeout > 0)
            {
                Uv.TimerStart(_timer, &OnTimer, (ulong)timeout, 0);
            }
            else
            {
                Uv.TimerStop(_timer);
            }
        }
        else
        {
            SetIdle(true); // work is ready: poll with timeout 0
        }
    }

    private readonly List<LibuvTcpConnection> _deferredInputFlushes = [];

    /// <summary>A connection whose full read deferred its flush (see LibuvTcpConnection.Read): flushed after the poll phase at the latest.</summary>
    internal void DeferInputFlush(LibuvTcpConnection connection) => _deferredInputFlushes.Add(connection);

    private void FlushDeferredInputs()
    {
        // A guard, empty with the libuv of today: a deferred flush happens at the next read of the same event (short,
        // EAGAIN, EOF, error, or a second full read, which flushes both), and libuv reads up to 32 times per event, an
        // even number, so its last read is never a deferring one. A libuv that capped its reads differently, or
        // stopped a stream's reads after a full one, would leave bytes here: they are flushed before this iteration
        // ends, not when the socket next becomes readable (which, for a peer waiting on the reply, is never).
        for (int i = 0; i < _deferredInputFlushes.Count; i++)
        {
            _deferredInputFlushes[i].FlushDeferredInput();
        }

        _deferredInputFlushes.Clear();
    }

    private void AfterPoll()
    {
        if (_deferredInputFlushes.Count != 0)
        {
            FlushDeferredInputs();
        }

        if (_draining)
        {
            return;
        }

        if (_sleepAnnounced)
        {
            _sleepAnnounced = false;
            AfterSleep();
        }

        for (int batch = 0; batch < BatchesPerIteration && !StopRequested; batch++)
        {
            MoveDueTimersAndInjected();
            if (ReadyCount == 0)
            {
                break;
            }

            RunReadyBatch();
        }

        if (StopRequested)
        {
            Uv.Stop(_loop);
        }
    }

    private void SetIdle(bool active)
    {
        if (active == _idleActive)
        {
            return;
        }

        _idleActive = active;
        if (active)
        {
            Uv.IdleStart(_idle, &OnIdle);
        }
        else
        {
            Uv.IdleStop(_idle);
        }
    }

    // ------------------------------------------------------------ native callbacks: never throw into libuv

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static LibuvLoop? FromHandle(IntPtr handle)
    {
        var state = (NativeLoopState*)Uv.GetData(handle);
        if (state == null || state->Loop == IntPtr.Zero)
        {
            return null;
        }

        return Unsafe.As<LibuvLoop>(GCHandle.FromIntPtr(state->Loop).Target);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnPrepare(IntPtr handle)
    {
        LibuvLoop? loop = null;
        try
        {
            loop = FromHandle(handle);
            loop?.BeforePoll();
        }
        catch (Exception ex)
        {
            ReportFromNative(loop, "prepare", ex);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnCheck(IntPtr handle)
    {
        LibuvLoop? loop = null;
        try
        {
            loop = FromHandle(handle);
            loop?.AfterPoll();
        }
        catch (Exception ex)
        {
            ReportFromNative(loop, "check", ex);
        }
    }

    // The async, idle and timer handles only interrupt or shorten the poll; the check phase does the work.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnAsync(IntPtr handle)
    {
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnIdle(IntPtr handle)
    {
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnTimer(IntPtr handle)
    {
    }

    /// <summary>Frees a handle's memory once libuv is done with it. Needs no managed object: safe on any thread.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    internal static void OnClosed(IntPtr handle) => FreeHandle(handle);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnWalkClose(IntPtr handle, IntPtr arg)
    {
        try
        {
            var walk = (WalkContext*)arg;
            if (Uv.IsClosing(handle))
            {
                return;
            }

            if (handle != walk->Async && handle != walk->Idle && handle != walk->Prepare && handle != walk->Check && handle != walk->Timer)
            {
                var leaks = (List<string>)GCHandle.FromIntPtr(walk->Leaks).Target!;
                leaks.Add(Uv.HandleTypeName(Uv.GetHandleType(handle)));
            }

            if (walk->CloseLeaks != 0)
            {
                Uv.Close(handle, &OnClosed);
            }
        }
        catch (Exception ex)
        {
            ReportFromNative(null, "walk", ex);
        }
    }

    internal static void ReportFromNative(Loop? loop, string phase, Exception ex)
    {
        try
        {
            if (loop is not null)
            {
                loop.ReportException($"Exception in the libuv {phase} callback", ex);
            }
            else
            {
                Console.Error.WriteLine($"EventLoop.Libuv: exception in a libuv {phase} callback with no loop: {ex}");
            }
        }
        catch
        {
            // Nothing may escape into native code.
        }
    }

    // ------------------------------------------------------------ TCP: libuv's own streams (uv_tcp_t)

    private protected override ValueTask<ConnectionListener> ListenTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        new(LibuvTcpListener.Listen(this, endpoint, options));

    private protected override ValueTask<Connection> ConnectTcpCoreAsync(EndPoint endpoint, TcpOptions options, CancellationToken cancellationToken) =>
        LibuvTcpConnector.ConnectAsync(this, endpoint, options, cancellationToken);

    private protected override Connection AdoptAcceptedTcpSocketCore(System.Net.Sockets.Socket socket, TcpOptions options) =>
        LibuvTcpHandOff.Adopt(this, socket, options);

    // ------------------------------------------------------------ Unix domain sockets: uv_pipe_t

    private protected override ValueTask<ConnectionListener> ListenUnixCoreAsync(EventLoop.Transports.Unix.UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken) =>
        new(LibuvUnix.Listen(this, path, options));

    private protected override ValueTask<Connection> ConnectUnixCoreAsync(EventLoop.Transports.Unix.UnixSocketPath path, TcpOptions options, CancellationToken cancellationToken) =>
        LibuvUnix.ConnectAsync(this, path, options, cancellationToken);

    // ------------------------------------------------------------ pipes and inherited sockets: uv_pipe_open / uv_tcp_open

    private protected override Connection OpenPipeCore(EventLoop.Transports.Pipes.PipeDescriptor pipe, TcpOptions options) =>
        LibuvPipes.Open(this, pipe, options);

    private protected override ConnectionListener ListenInheritedCore(EventLoop.Transports.Pipes.PipeDescriptor socket, TcpOptions options) =>
        LibuvPipes.Listen(this, socket, options);

    // ------------------------------------------------------------ DNS: uv_getaddrinfo / uv_getnameinfo on libuv's thread pool

    private protected override Task<IPEndPoint[]> GetAddrInfoCoreAsync(string host, int port, System.Net.Sockets.AddressFamily family, CancellationToken cancellationToken) =>
        LibuvDns.GetAddrInfoAsync(this, host, port, family, cancellationToken);

    private protected override Task<string> GetNameInfoCoreAsync(IPAddress address, CancellationToken cancellationToken) =>
        LibuvDns.GetNameInfoAsync(this, address, cancellationToken);

    // ------------------------------------------------------------ files: uv_fs_* on libuv's thread pool

    private protected override DatagramEndpoint OpenDatagramEndpointCore(IPEndPoint local, IPEndPoint? remote, DatagramOptions options) =>
        LibuvUdpEndpoint.Open(this, local, remote, options);

    private protected override LoopFileSystem CreateFileSystem() => new LibuvFileSystem(this);

    // ------------------------------------------------------------ subprocesses: posix_spawn, the pipes as uv_pipe_t

    private EventLoop.Transports.Processes.SpawnedChildren? _children;

    /// <summary>
    /// Spawns as the managed loop does (<see cref="EventLoop.Transports.Processes.SpawnedProcess"/>: <c>posix_spawn</c>,
    /// socket pairs, the exit from SIGCHLD and <c>waitpid</c> on this thread), not with <c>uv_spawn</c>: libuv 1.44's
    /// <c>uv_spawn</c> forks, which copies the page tables of the whole .NET process (0.8 ms of the spawner's CPU a spawn,
    /// 1.75x uvloop's), and installs libuv's own SIGCHLD handler over the runtime's. The parent's pipe ends become
    /// <c>uv_pipe_t</c>s (<see cref="LibuvPipes.OpenChildPipe"/>), the stream connections every libuv pipe uses.
    /// </summary>
    private protected override LoopProcess StartProcessCore(EventLoop.Transports.Processes.ProcessLaunch launch) =>
        EventLoop.Transports.Processes.SpawnedProcess.Start(
            _children ??= new(this, (fd, l, stream) => LibuvPipes.OpenChildPipe(this, fd, l.PipeOptions, "process " + stream)),
            launch);
}
