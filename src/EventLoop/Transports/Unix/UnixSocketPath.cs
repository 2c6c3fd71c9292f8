using System.Net.Sockets;
using System.Text;
using EventLoop.Managed.Epoll;

namespace EventLoop.Transports.Unix;

/// <summary>
/// A checked Unix domain socket address: a file path, or a name in Linux's abstract namespace (a leading
/// <c>'\0'</c>, as in asyncio and <see cref="UnixDomainSocketEndPoint"/>). Both transports of both policies bind
/// and connect through it, so the checks, the stale-file rule and the clean-up are the same everywhere.
/// </summary>
internal sealed class UnixSocketPath
{
    /// <summary>Bytes of <c>sun_path</c> (108 on Linux), one of which a file path's terminating NUL takes.</summary>
    private const int SunPathLength = 108;

    private UnixSocketPath(string path, byte[] bytes, bool isAbstract)
    {
        Path = path;
        Bytes = bytes;
        IsAbstract = isAbstract;
        EndPoint = new UnixDomainSocketEndPoint(path);
    }

    /// <summary>The path as given (with the leading <c>'\0'</c> of an abstract name).</summary>
    public string Path { get; }

    /// <summary>The UTF-8 bytes of <c>sun_path</c>: the leading NUL and the name for an abstract name; the path without its NUL otherwise.</summary>
    public byte[] Bytes { get; }

    public bool IsAbstract { get; }

    public UnixDomainSocketEndPoint EndPoint { get; }

    /// <summary>For messages: an abstract name shown with a leading '@', as <c>ss</c> and <c>netstat</c> show it.</summary>
    public override string ToString() => IsAbstract ? "@" + Path[1..] : Path;

    /// <summary>Checks <paramref name="path"/>.</summary>
    /// <exception cref="ArgumentException">Empty, too long for <c>sun_path</c>, or a NUL past the first character.</exception>
    public static UnixSocketPath Parse(string path, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(path, parameterName);
        if (path.Length == 0 || path == "\0")
        {
            throw new ArgumentException("A Unix socket path must not be empty (a leading '\\0' names the abstract namespace and needs a name after it).", parameterName);
        }

        if (path.IndexOf('\0', 1) >= 0)
        {
            throw new ArgumentException("A Unix socket path may hold a NUL character only at its start (the abstract namespace).", parameterName);
        }

        bool isAbstract = path[0] == '\0';
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        int limit = isAbstract ? SunPathLength : SunPathLength - 1;
        if (bytes.Length > limit)
        {
            throw new ArgumentException(
                $"The Unix socket path is {bytes.Length} bytes long in UTF-8; sockaddr_un holds at most {limit}" +
                (isAbstract ? " for an abstract name (with its leading NUL)." : " (and the terminating NUL). Use a shorter or relative path."),
                parameterName);
        }

        return new UnixSocketPath(path, bytes, isAbstract);
    }

    /// <summary>
    /// Before a bind, as asyncio's <c>create_unix_server</c> does: a socket file at the path is a previous server's
    /// and is removed; anything else (a regular file, a directory) stays, and the bind then fails with EADDRINUSE.
    /// Nothing to do for an abstract name (it vanishes with its last socket). Errors other than "no such file" are
    /// left for the bind to report.
    /// </summary>
    public void RemoveStaleSocketFile()
    {
        if (!IsAbstract && Linux.TryStat(Path, out FileIdentity identity) && identity.IsSocket)
        {
            Linux.Unlink(Path);
        }
    }

    /// <summary>The socket file a bind just made (null for an abstract name, or when it cannot be told).</summary>
    public FileIdentity? IdentifyBoundFile() =>
        !IsAbstract && Linux.TryStat(Path, out FileIdentity identity) && identity.IsSocket ? identity : null;

    /// <summary>
    /// After the listener closed: removes the socket file if it is still the one this listener bound (Python 3.13's
    /// <c>cleanup_socket</c>): another server that took the path over since keeps its own.
    /// </summary>
    public void RemoveBoundFile(FileIdentity? bound)
    {
        if (bound is { } mine && Linux.TryStat(Path, out FileIdentity now) && now.Device == mine.Device && now.Inode == mine.Inode)
        {
            Linux.Unlink(Path);
        }
    }

    /// <summary>
    /// A listening socket on this address for the managed transports, the stale socket file removed first. On Linux
    /// the socket is made, bound and put to listen here, then wrapped: a <see cref="Socket"/> that bound a path itself
    /// deletes that path when disposed, whoever's file it is by then, and the listener removes its file only if it is
    /// still its own (<see cref="RemoveBoundFile"/>). Elsewhere <see cref="Socket.Bind"/> does it.
    /// </summary>
    /// <exception cref="SocketException">The bind or listen failed (the socket is closed).</exception>
    public Socket BindAndListen(int backlog)
    {
        RemoveStaleSocketFile();
        if (!Linux.IsSupported)
        {
            var portable = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                portable.Bind(EndPoint);
                portable.Listen(backlog);
                return portable;
            }
            catch
            {
                portable.Dispose();
                throw;
            }
        }

        int fd = Linux.UnixSocket();
        if (fd < 0)
        {
            Linux.Throw(fd, "socket");
        }

        int status = Linux.Bind(fd, EndPoint.Serialize());
        if (status == 0)
        {
            status = Linux.Listen(fd, backlog);
        }

        if (status < 0)
        {
            Linux.Close(fd);
            Linux.Throw(status, "bind or listen");
        }

        return new Socket(new SafeSocketHandle((IntPtr)fd, ownsHandle: true));
    }

    /// <summary>A file's device and inode, and whether it is a socket.</summary>
    internal readonly record struct FileIdentity(ulong Device, ulong Inode, bool IsSocket);
}
