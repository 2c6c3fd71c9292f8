using EventLoop.Libuv.Internal;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv;

/// <summary>
/// The libuv "fast loop", as uvloop is for asyncio: the loop thread sits in <c>uv_run</c>; timers, TCP and
/// cross-thread wake-ups are libuv's, and their callbacks run the app's continuations inline on the loop
/// thread.
/// </summary>
/// <remarks>
/// <para>
/// Needs the system's libuv, 1.34 or newer (Debian/Ubuntu <c>apt-get install libuv1</c>, Fedora <c>dnf install libuv</c>,
/// Alpine <c>apk add libuv</c>, macOS <c>brew install libuv</c>; on Windows, <c>uv.dll</c> beside the app). The
/// package ships no native binary. libuv is loaded the first time a loop is created (or <see cref="EnsureAvailable"/>
/// or <see cref="LibuvVersion"/> is called), looked for in this order:
/// </para>
/// <list type="number">
/// <item>the file named by the environment variable <c>EVENTLOOP_LIBUV_PATH</c>, when it is set, and nothing else;</item>
/// <item>otherwise, each of <c>libuv.so.1</c>, <c>libuv.so</c>, <c>libuv.1.dylib</c>, <c>libuv.dylib</c>, <c>libuv.dll</c>,
/// <c>uv.dll</c>, <c>uv</c> in turn, first in the app's directory, then on the system's library search path (on Linux
/// <c>LD_LIBRARY_PATH</c>, the <c>ld.so</c> cache, <c>/lib</c>, <c>/usr/lib</c>).</item>
/// </list>
/// <para>
/// The first library that loads must export every libuv function the loop uses and be libuv 1.x, at least 1.34.
/// When no library is found, the one named cannot be loaded, or it fails a check, a
/// <see cref="LibuvUnavailableException"/> says what was looked for, where, and how to install libuv. An app that
/// would rather run on the managed loop than fail uses <see cref="OrManaged"/>.
/// </para>
/// </remarks>
/// <example><code>
/// Loop.Run(main, new LibuvLoopPolicy());                // this run
/// EventLoopPolicy.Set(new LibuvLoopPolicy());           // or process-wide (or EVENTLOOP_POLICY=libuv)
/// Loop.Run(main, LibuvLoopPolicy.OrManaged(Console.Error)); // libuv if it loads, else managed, with a warning
/// </code></example>
public sealed class LibuvLoopPolicy : LoopPolicy
{
    /// <inheritdoc />
    public override string Name => "libuv";

    /// <summary>The version of the libuv that was loaded, e.g. <c>1.44.2</c>; loads it if needed.</summary>
    /// <exception cref="LibuvUnavailableException">libuv cannot be loaded; the message says why and how to install it.</exception>
    public static string LibuvVersion => LibuvLibrary.VersionString;

    /// <summary>
    /// Loads and checks libuv now (once per process), so an app can report a missing libuv before it starts any work.
    /// </summary>
    /// <exception cref="LibuvUnavailableException">libuv cannot be loaded; the message says what was looked for, where,
    /// and how to install it.</exception>
    public static void EnsureAvailable() => LibuvLibrary.EnsureLoaded();

    /// <summary>
    /// Whether libuv can be loaded (loading it if it was not yet); <paramref name="error"/> says why not.
    /// </summary>
    public static bool IsAvailable(out LibuvUnavailableException? error)
    {
        try
        {
            LibuvLibrary.EnsureLoaded();
            error = null;
            return true;
        }
        catch (LibuvUnavailableException ex)
        {
            error = ex;
            return false;
        }
    }

    /// <summary>
    /// The libuv policy when libuv can be loaded, otherwise a <see cref="ManagedLoopPolicy"/>, after writing one
    /// warning line (the reason libuv is unavailable) to <paramref name="warnings"/>, when given. The choice is made
    /// here, once: loops created from the returned policy are all of one kind.
    /// </summary>
    /// <param name="warnings">Where the warning goes, e.g. <see cref="Console.Error"/>; null for none.</param>
    public static LoopPolicy OrManaged(TextWriter? warnings = null)
    {
        if (IsAvailable(out LibuvUnavailableException? error))
        {
            return new LibuvLoopPolicy();
        }

        warnings?.WriteLine($"warning: using the managed loop: {error!.Message}");
        return new ManagedLoopPolicy();
    }

    /// <inheritdoc />
    /// <exception cref="LibuvUnavailableException">libuv cannot be loaded; the message says what was looked for, where,
    /// and how to install it.</exception>
    public override Loop CreateLoop(LoopOptions? options = null)
    {
        LibuvLibrary.EnsureLoaded();
        return new LibuvLoop(options ?? new LoopOptions());
    }
}
