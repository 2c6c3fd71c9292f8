using System.Reflection;
using System.Runtime.InteropServices;

namespace EventLoop.Libuv.Internal.Native;

/// <summary>
/// Finds and loads the system's libuv: <c>EVENTLOOP_LIBUV_PATH</c> first, then the platform names.
/// Checks the version, and when libuv is missing says how to install it.
/// </summary>
internal static class LibuvLibrary
{
    /// <summary>The environment variable that names the libuv shared library to load.</summary>
    public const string PathVariable = "EVENTLOOP_LIBUV_PATH";

    /// <summary>The name the imports use; the resolver maps it to the real library.</summary>
    public const string ImportName = "libuv";

    /// <summary>libuv 1.34 added uv_handle_get_data / uv_sleep; we use nothing newer.</summary>
    public const uint MinimumVersion = (1 << 16) | (34 << 8);

    internal static readonly string[] PlatformNames =
        ["libuv.so.1", "libuv.so", "libuv.1.dylib", "libuv.dylib", "libuv.dll", "uv.dll", "uv"];

    private static readonly object s_gate = new();
    private static IntPtr s_handle;
    private static bool s_resolverSet;

    /// <summary>Loads libuv (once) and checks its version; throws a clear exception when it cannot.</summary>
    public static void EnsureLoaded()
    {
        if (s_handle != IntPtr.Zero)
        {
            return;
        }

        lock (s_gate)
        {
            if (s_handle != IntPtr.Zero)
            {
                return;
            }

            IntPtr handle = Load(Environment.GetEnvironmentVariable(PathVariable), PlatformNames);
            uint version = GetVersion(handle);
            if ((version >> 16) != 1 || version < MinimumVersion)
            {
                NativeLibrary.Free(handle);
                throw new InvalidOperationException(
                    $"The libuv found is version {FormatVersion(version)}; EventLoop.Libuv needs libuv 1.x, at least {FormatVersion(MinimumVersion)}. " +
                    $"Install a newer one (apt-get install libuv1, brew install libuv) or set {PathVariable}.");
            }

            s_handle = handle;
            if (!s_resolverSet)
            {
                NativeLibrary.SetDllImportResolver(typeof(LibuvLibrary).Assembly, Resolve);
                s_resolverSet = true;
            }
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
    /// Loads libuv from <paramref name="explicitPath"/> if given, else the first of <paramref name="names"/>
    /// that loads. Separate from <see cref="EnsureLoaded"/> so tests can ask for a library that is not there.
    /// </summary>
    internal static IntPtr Load(string? explicitPath, IReadOnlyList<string> names)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            if (NativeLibrary.TryLoad(explicitPath, out IntPtr fromPath))
            {
                return fromPath;
            }

            throw new DllNotFoundException(
                $"{PathVariable} is set to '{explicitPath}', but no libuv could be loaded from there. " +
                $"Point it at libuv's shared library (e.g. /usr/lib/x86_64-linux-gnu/libuv.so.1), or unset it to search the system.");
        }

        foreach (string name in names)
        {
            if (NativeLibrary.TryLoad(name, typeof(LibuvLibrary).Assembly, DllImportSearchPath.SafeDirectories | DllImportSearchPath.AssemblyDirectory, out IntPtr handle))
            {
                return handle;
            }
        }

        throw new DllNotFoundException(
            "The libuv loop policy needs the libuv shared library, and none was found (tried " + string.Join(", ", names) + "). Install it: " +
            "Debian/Ubuntu 'apt-get install libuv1', Fedora 'dnf install libuv', Alpine 'apk add libuv', macOS 'brew install libuv', " +
            $"Windows: put uv.dll beside the app. Or set {PathVariable} to the library's path, or use the managed loop (new ManagedLoopPolicy()).");
    }

    private static unsafe uint GetVersion(IntPtr handle)
    {
        var uvVersion = (delegate* unmanaged[Cdecl]<uint>)NativeLibrary.GetExport(handle, "uv_version");
        return uvVersion();
    }

    private static string FormatVersion(uint version) => $"{version >> 16}.{(version >> 8) & 0xff}.{version & 0xff}";

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == ImportName ? s_handle : IntPtr.Zero;
}
