using System.Reflection;
using System.Runtime.InteropServices;

namespace EventLoop.Libuv.Internal.Native;

/// <summary>
/// Finds and loads the system's libuv, checks that it is libuv (every function we import is there) and new enough,
/// and when it cannot, throws one <see cref="LibuvUnavailableException"/> that says what was looked for, where, and
/// how to install it. The resolution order is documented on <see cref="LibuvLoopPolicy"/> (and in the package readme):
/// <list type="number">
/// <item><c>EVENTLOOP_LIBUV_PATH</c>, when set: that file and nothing else;</item>
/// <item>otherwise each of <see cref="PlatformNames"/> in turn, first in the app's directory, then on the system's
/// search path (on Linux: <c>LD_LIBRARY_PATH</c>, the <c>ld.so</c> cache, <c>/lib</c>, <c>/usr/lib</c>).</item>
/// </list>
/// </summary>
internal static class LibuvLibrary
{
    /// <summary>The environment variable that names the libuv shared library to load.</summary>
    public const string PathVariable = "EVENTLOOP_LIBUV_PATH";

    /// <summary>The name the imports use; the resolver maps it to the real library.</summary>
    public const string ImportName = "libuv";

    /// <summary>libuv 1.34 added uv_handle_get_data / uv_sleep; we use nothing newer.</summary>
    public const uint MinimumVersion = (1 << 16) | (34 << 8);

    internal const string InstallHint =
        "Install libuv: Debian/Ubuntu 'apt-get install libuv1', Fedora 'dnf install libuv', Alpine 'apk add libuv', " +
        "macOS 'brew install libuv', Windows: put uv.dll beside the app; or run on the managed loop (new ManagedLoopPolicy()).";

    internal static readonly string[] PlatformNames =
        ["libuv.so.1", "libuv.so", "libuv.1.dylib", "libuv.dylib", "libuv.dll", "uv.dll", "uv"];

    /// <summary>
    /// Every libuv function <see cref="Uv"/> imports (a test keeps this in step with the imports): a library that
    /// lacks one is not a libuv we can use, and is refused when loaded rather than when the call is first made.
    /// </summary>
    internal static readonly string[] RequiredExports =
    [
        "uv_accept", "uv_async_init", "uv_async_send", "uv_backend_fd", "uv_cancel", "uv_check_init", "uv_check_start",
        "uv_close", "uv_err_name", "uv_fileno", "uv_freeaddrinfo", "uv_fs_close", "uv_fs_fstat", "uv_fs_get_result",
        "uv_fs_get_statbuf", "uv_fs_mkdir", "uv_fs_open", "uv_fs_read", "uv_fs_rename", "uv_fs_req_cleanup",
        "uv_fs_scandir", "uv_fs_scandir_next", "uv_fs_stat", "uv_fs_unlink", "uv_fs_write", "uv_getaddrinfo",
        "uv_getnameinfo", "uv_handle_get_type", "uv_handle_size", "uv_handle_type_name", "uv_idle_init",
        "uv_idle_start", "uv_idle_stop", "uv_is_closing", "uv_listen", "uv_loop_close", "uv_loop_init", "uv_loop_size",
        "uv_now", "uv_pipe_connect", "uv_pipe_init", "uv_pipe_open", "uv_prepare_init", "uv_prepare_start",
        "uv_read_start", "uv_read_stop", "uv_req_size", "uv_run", "uv_shutdown", "uv_stop", "uv_strerror",
        "uv_tcp_bind", "uv_tcp_close_reset", "uv_tcp_connect", "uv_tcp_getpeername", "uv_tcp_getsockname",
        "uv_tcp_init", "uv_tcp_init_ex", "uv_tcp_keepalive", "uv_tcp_nodelay", "uv_tcp_open", "uv_timer_init",
        "uv_timer_start", "uv_timer_stop", "uv_try_write", "uv_unref", "uv_walk", "uv_write",
        "uv_recv_buffer_size", "uv_send_buffer_size", "uv_udp_bind", "uv_udp_connect", "uv_udp_getpeername",
        "uv_udp_getsockname", "uv_udp_init_ex", "uv_udp_recv_start", "uv_udp_recv_stop", "uv_udp_send",
        "uv_udp_set_broadcast", "uv_udp_set_membership", "uv_udp_set_multicast_interface", "uv_udp_set_multicast_loop",
        "uv_udp_set_multicast_ttl",
        "uv_udp_try_send",
        "uv_version", // called here, not imported
    ];

    private static readonly object s_gate = new();
    private static IntPtr s_handle;
    private static bool s_resolverSet;

    /// <summary>True once libuv has been loaded and checked.</summary>
    public static bool IsLoaded => Volatile.Read(ref s_handle) != IntPtr.Zero;

    /// <summary>Loads libuv (once) and checks it; throws <see cref="LibuvUnavailableException"/> when it cannot.</summary>
    public static void EnsureLoaded()
    {
        if (Volatile.Read(ref s_handle) != IntPtr.Zero)
        {
            return;
        }

        lock (s_gate)
        {
            if (s_handle != IntPtr.Zero)
            {
                return;
            }

            IntPtr handle = LoadChecked(Environment.GetEnvironmentVariable(PathVariable), PlatformNames);
            if (!s_resolverSet)
            {
                NativeLibrary.SetDllImportResolver(typeof(LibuvLibrary).Assembly, Resolve);
                s_resolverSet = true;
            }

            Volatile.Write(ref s_handle, handle);
        }
    }

    /// <summary>The loaded libuv's version string, e.g. "1.44.2".</summary>
    public static string VersionString
    {
        get
        {
            EnsureLoaded();
            return FormatVersion(GetVersion(s_handle));
        }
    }

    /// <summary>
    /// <see cref="Load"/>, then the checks: every required export present, version 1.x at least
    /// <see cref="MinimumVersion"/>. Frees the library and throws when a check fails. Apart from
    /// <see cref="EnsureLoaded"/> so tests can point it at other libraries without touching the process's libuv.
    /// </summary>
    internal static IntPtr LoadChecked(string? explicitPath, IReadOnlyList<string> names)
    {
        (IntPtr handle, string loadedFrom) = Load(explicitPath, names);
        string[] tried = string.IsNullOrWhiteSpace(explicitPath) ? [.. names] : [explicitPath];
        string[] missing = RequiredExports.Where(name => !NativeLibrary.TryGetExport(handle, name, out _)).ToArray();
        if (missing.Length > 0)
        {
            NativeLibrary.Free(handle);
            string which = missing.Length == RequiredExports.Length
                ? "none of libuv's functions"
                : $"not every libuv function we use (missing: {string.Join(", ", missing.Take(5))}{(missing.Length > 5 ? ", ..." : "")})";
            throw new LibuvUnavailableException(
                $"'{loadedFrom}' was loaded as libuv but is not libuv: it has {which}. " +
                (string.IsNullOrWhiteSpace(explicitPath) ? "" : $"Point {PathVariable} at libuv's shared library (e.g. /usr/lib/x86_64-linux-gnu/libuv.so.1), or unset it to search the system. ") +
                InstallHint,
                tried);
        }

        uint version = GetVersion(handle);
        if ((version >> 16) != 1 || version < MinimumVersion)
        {
            NativeLibrary.Free(handle);
            throw new LibuvUnavailableException(
                $"The libuv loaded from '{loadedFrom}' is version {FormatVersion(version)}; EventLoop.Libuv needs libuv 1.x, at least {FormatVersion(MinimumVersion)}. " +
                InstallHint,
                tried);
        }

        return handle;
    }

    /// <summary>
    /// Loads libuv from <paramref name="explicitPath"/> if given, else the first of <paramref name="names"/>
    /// that loads; no checks. Returns the handle and what it was loaded from.
    /// </summary>
    internal static (IntPtr Handle, string From) Load(string? explicitPath, IReadOnlyList<string> names)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            try
            {
                return (NativeLibrary.Load(explicitPath), explicitPath);
            }
            catch (Exception ex) when (ex is DllNotFoundException or BadImageFormatException)
            {
                string why = File.Exists(explicitPath) ? "the file is there but is not a loadable shared library" : "there is no such file";
                throw new LibuvUnavailableException(
                    $"{PathVariable} is set to '{explicitPath}', but libuv could not be loaded from there ({why}). " +
                    $"Point it at libuv's shared library (e.g. /usr/lib/x86_64-linux-gnu/libuv.so.1), or unset it to search the system. {InstallHint}",
                    [explicitPath],
                    ex);
            }
        }

        foreach (string name in names)
        {
            if (NativeLibrary.TryLoad(name, typeof(LibuvLibrary).Assembly, DllImportSearchPath.SafeDirectories | DllImportSearchPath.AssemblyDirectory, out IntPtr handle))
            {
                return (handle, name);
            }
        }

        throw new LibuvUnavailableException(
            $"The libuv loop needs the libuv shared library, and none was found: looked for {string.Join(", ", names)} in the app's directory " +
            $"({AppContext.BaseDirectory.TrimEnd('/', '\\')}) and on the system's library search path ({SystemSearchPath()}). " +
            $"Set {PathVariable} to the library's path if it is elsewhere. {InstallHint}",
            [.. names]);
    }

    private static string SystemSearchPath() =>
        OperatingSystem.IsWindows() ? "the system directories and PATH"
        : OperatingSystem.IsMacOS() ? "DYLD_LIBRARY_PATH and the default /usr/local/lib, /usr/lib"
        : "LD_LIBRARY_PATH, the ld.so cache, /lib, /usr/lib";

    private static unsafe uint GetVersion(IntPtr handle)
    {
        var uvVersion = (delegate* unmanaged[Cdecl]<uint>)NativeLibrary.GetExport(handle, "uv_version");
        return uvVersion();
    }

    private static string FormatVersion(uint version) => $"{version >> 16}.{(version >> 8) & 0xff}.{version & 0xff}";

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == ImportName ? s_handle : IntPtr.Zero;
}
