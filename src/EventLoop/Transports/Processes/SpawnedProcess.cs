using System.Net.Sockets;
using EventLoop.Managed;
using EventLoop.Managed.Epoll;

namespace EventLoop.Transports.Processes;

/// <summary>
/// Opens the parent's end of a child's pipe (a socket pair's end, non-blocking, close-on-exec) as one of the loop's
/// connections, named <c>"process " + stream</c>. It owns <paramref name="fd"/> from the call on: on failure it closes
/// it and throws.
/// </summary>
internal delegate Connection ChildPipeOpener(int fd, ProcessLaunch launch, string stream);

/// <summary>
/// A child of either loop: spawned with <see cref="PosixSpawn"/> (a <c>vfork</c>-style clone, no page tables copied),
/// its pipes socket pairs whose parent ends the loop opens as its own connections (<see cref="ChildPipeOpener"/>: the
/// managed loop's epoll transport or .NET sockets, the libuv loop's <c>uv_pipe_t</c> through <c>uv_pipe_open</c>),
/// reaped by the loop's <see cref="SpawnedChildren"/> when SIGCHLD says a child exited. Nothing blocks the loop thread
/// but the spawn itself.
/// </summary>
internal sealed class SpawnedProcess : LoopProcess
{
    private const int SigKill = 9;
    private static readonly string[] StreamNames = ["stdin", "stdout", "stderr"];

    private bool _reaped;

    private SpawnedProcess(Loop loop, int pid, Connection? stdin, Connection? stdout, Connection? stderr)
        : base(loop, pid, stdin, stdout, stderr)
    {
    }

    /// <summary>Spawns. Loop thread; on failure every descriptor made is closed, no child is left running, and the exception leaves.</summary>
    public static LoopProcess Start(SpawnedChildren children, ProcessLaunch launch)
    {
        Span<int> parentEnds = [-1, -1, -1];
        Span<int> childEnds = [-1, -1, -1];
        ProcessStdio[] modes = [launch.StandardInput, launch.StandardOutput, launch.StandardError];
        int pid = -1;
        Connection?[] pipes = new Connection?[3];
        try
        {
            for (int fd = 0; fd < 3; fd++)
            {
                if (modes[fd] == ProcessStdio.Pipe)
                {
                    int status = PosixSpawn.SocketPair(out parentEnds[fd], out childEnds[fd]);
                    if (status < 0)
                    {
                        throw launch.SpawnFailed(status);
                    }
                }
                else
                {
                    childEnds[fd] = modes[fd] == ProcessStdio.Discard ? -2 : -1;
                }
            }

            // Subscribed before the spawn, so no SIGCHLD of this child comes before the loop listens for it.
            children.BeforeSpawn();
            pid = PosixSpawn.Spawn(launch, childEnds);
            CloseChildEnds(childEnds);
            if (pid < 0)
            {
                children.SpawnFailed();
                throw launch.SpawnFailed(pid);
            }

            for (int fd = 0; fd < 3; fd++)
            {
                if (parentEnds[fd] >= 0)
                {
                    int owned = parentEnds[fd];
                    parentEnds[fd] = -1; // the opener's from here, closed by it on failure
                    pipes[fd] = children.OpenPipe(owned, launch, StreamNames[fd]);
                }
            }

            var process = new SpawnedProcess(children.Loop, pid, pipes[0], pipes[1], pipes[2]);
            children.Add(process);
            return process;
        }
        catch
        {
            CloseChildEnds(childEnds);
            foreach (int fd in parentEnds)
            {
                if (fd >= 0)
                {
                    PosixSpawn.Close(fd);
                }
            }

            if (pid > 0)
            {
                // Started, but a pipe could not be opened on the loop: the child goes, and is reaped here.
                PosixSpawn.Kill(pid, SigKill);
                PosixSpawn.Reap(pid);
                children.SpawnFailed();
                foreach (Connection? pipe in pipes)
                {
                    pipe?.Abort();
                }
            }

            throw;
        }
    }

    private static void CloseChildEnds(Span<int> childEnds)
    {
        for (int i = 0; i < childEnds.Length; i++)
        {
            if (childEnds[i] >= 0)
            {
                PosixSpawn.Close(childEnds[i]);
                childEnds[i] = -1;
            }
        }
    }

    /// <summary>The managed loop's <see cref="ChildPipeOpener"/>: its epoll transport, or a <see cref="Socket"/> with <c>EVENTLOOP_MANAGED_IO=sockets</c>.</summary>
    internal static Connection OpenManagedPipe(ManagedLoop loop, EpollPoller? poller, int fd, ProcessLaunch launch, string stream)
    {
        loop.OpenSocketCount++;
        if (poller is not null)
        {
            var connection = new EpollConnection(loop, poller, fd, launch.PipeOptions, null, null, "process " + stream);
            connection.Start(); // on failure it closes the descriptor and throws
            return connection;
        }

        Socket socket;
        try
        {
            socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        }
        catch
        {
            PosixSpawn.Close(fd);
            loop.OpenSocketCount--;
            throw;
        }

        return Sockets.SocketConnection.Open(loop, socket, launch.PipeOptions);
    }

    /// <summary>Reaped by <see cref="SpawnedChildren"/>. Loop thread.</summary>
    internal void Reaped(ProcessExitStatus status)
    {
        _reaped = true;
        OnExited(status);
    }

    internal int Pid => Id;

    private protected override bool IsHandleClosed => _reaped;

    private protected override void SendSignalCore(int signal)
    {
        // The child is not reaped (reaping happens on this thread), so its id is still its own.
        int status = PosixSpawn.Kill(Id, signal);
        if (status < 0)
        {
            throw new System.ComponentModel.Win32Exception(-status, $"Sending signal {signal} to process {Id} failed.");
        }
    }

    private protected override ValueTask CloseHandleCoreAsync() => default;
}

/// <summary>
/// A loop's running children, reaped on the loop thread: each SIGCHLD (from <see cref="ChildExitSignal"/>, on another
/// thread) posts one reap, coalesced, which asks <c>waitpid(pid, WNOHANG)</c> of each child of this loop only.
/// </summary>
internal sealed class SpawnedChildren
{
    private readonly List<SpawnedProcess> _running = [];
    private readonly ChildPipeOpener _openPipe;
    private readonly Action _onSignal;
    private int _reapPosted;
    private bool _subscribed;

    public SpawnedChildren(Loop loop, ChildPipeOpener openPipe)
    {
        Loop = loop;
        _openPipe = openPipe;
        _onSignal = OnSignal;
    }

    public Loop Loop { get; }

    public Connection OpenPipe(int fd, ProcessLaunch launch, string stream) => _openPipe(fd, launch, stream);

    public void BeforeSpawn()
    {
        if (!_subscribed)
        {
            ChildExitSignal.Subscribe(_onSignal);
            _subscribed = true;
        }
    }

    public void SpawnFailed()
    {
        if (_running.Count == 0)
        {
            Unsubscribe();
        }
    }

    public void Add(SpawnedProcess process) => _running.Add(process);

    private void OnSignal()
    {
        if (Interlocked.Exchange(ref _reapPosted, 1) != 0)
        {
            return;
        }

        try
        {
            Loop.CallSoonThreadSafe(static c => c.Reap(), this);
        }
        catch (InvalidOperationException)
        {
            // The loop closed; its children were reaped by its shutdown.
        }
    }

    private void Reap()
    {
        Volatile.Write(ref _reapPosted, 0);
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            SpawnedProcess process = _running[i];
            if (PosixSpawn.TryReap(process.Pid, out ProcessExitStatus status))
            {
                _running.RemoveAt(i);
                process.Reaped(status);
            }
        }

        if (_running.Count == 0)
        {
            Unsubscribe();
        }
    }

    private void Unsubscribe()
    {
        if (_subscribed)
        {
            _subscribed = false;
            ChildExitSignal.Unsubscribe(_onSignal);
        }
    }
}
