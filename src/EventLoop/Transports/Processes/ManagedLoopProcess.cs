using System.Net.Sockets;
using EventLoop.Managed;
using EventLoop.Managed.Epoll;

namespace EventLoop.Transports.Processes;

/// <summary>
/// A child of the managed loop: spawned with <see cref="PosixSpawn"/>, its pipes the loop's own connections over socket
/// pairs (the epoll transport, or .NET sockets with <c>EVENTLOOP_MANAGED_IO=sockets</c>), reaped by the loop's
/// <see cref="ManagedChildren"/> when SIGCHLD says a child exited. Nothing blocks the loop thread but the spawn itself.
/// </summary>
internal sealed class ManagedLoopProcess : LoopProcess
{
    private readonly ManagedChildren _children;
    private bool _reaped;

    private ManagedLoopProcess(ManagedLoop loop, ManagedChildren children, int pid, Connection? stdin, Connection? stdout, Connection? stderr)
        : base(loop, pid, stdin, stdout, stderr)
    {
        _children = children;
    }

    /// <summary>Spawns. Loop thread; on failure every descriptor made is closed and the exception leaves.</summary>
    public static LoopProcess Start(ManagedLoop loop, ManagedChildren children, EpollPoller? poller, ProcessLaunch launch)
    {
        Span<int> parentEnds = [-1, -1, -1];
        Span<int> childEnds = [-1, -1, -1];
        ProcessStdio[] modes = [launch.StandardInput, launch.StandardOutput, launch.StandardError];
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
            int pid = PosixSpawn.Spawn(launch, childEnds);
            CloseChildEnds(childEnds);
            if (pid < 0)
            {
                children.SpawnFailed();
                throw launch.SpawnFailed(pid);
            }

            Connection? stdin = Adopt(loop, poller, ref parentEnds[0], launch, "stdin");
            Connection? stdout = Adopt(loop, poller, ref parentEnds[1], launch, "stdout");
            Connection? stderr = Adopt(loop, poller, ref parentEnds[2], launch, "stderr");
            var process = new ManagedLoopProcess(loop, children, pid, stdin, stdout, stderr);
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

    /// <summary>The parent's end of a pipe as a loop connection; the descriptor is the connection's from here (set to -1).</summary>
    private static Connection? Adopt(ManagedLoop loop, EpollPoller? poller, ref int fd, ProcessLaunch launch, string stream)
    {
        if (fd < 0)
        {
            return null;
        }

        int owned = fd;
        fd = -1;
        loop.OpenSocketCount++;
        if (poller is not null)
        {
            var connection = new EpollConnection(loop, poller, owned, launch.PipeOptions, null, null, "process " + stream);
            connection.Start(); // on failure it closes the descriptor and throws
            return connection;
        }

        Socket socket;
        try
        {
            socket = new Socket(new SafeSocketHandle(owned, ownsHandle: true));
        }
        catch
        {
            PosixSpawn.Close(owned);
            loop.OpenSocketCount--;
            throw;
        }

        return Sockets.SocketConnection.Open(loop, socket, launch.PipeOptions);
    }

    /// <summary>Reaped by <see cref="ManagedChildren"/>. Loop thread.</summary>
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
/// A managed loop's running children, reaped on the loop thread: each SIGCHLD (from <see cref="ChildExitSignal"/>, on
/// another thread) posts one reap, coalesced, which asks <c>waitpid(pid, WNOHANG)</c> of each child of this loop only.
/// </summary>
internal sealed class ManagedChildren
{
    private readonly ManagedLoop _loop;
    private readonly List<ManagedLoopProcess> _running = [];
    private readonly Action _onSignal;
    private int _reapPosted;
    private bool _subscribed;

    public ManagedChildren(ManagedLoop loop)
    {
        _loop = loop;
        _onSignal = OnSignal;
    }

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

    public void Add(ManagedLoopProcess process) => _running.Add(process);

    private void OnSignal()
    {
        if (Interlocked.Exchange(ref _reapPosted, 1) != 0)
        {
            return;
        }

        try
        {
            _loop.CallSoonThreadSafe(static c => c.Reap(), this);
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
            ManagedLoopProcess process = _running[i];
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
