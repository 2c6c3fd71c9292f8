using EventLoop.Libuv.Internal;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv;

/// <summary>
/// The libuv "fast loop", as uvloop is for asyncio: the loop thread sits in <c>uv_run</c>; timers, TCP and
/// cross-thread wake-ups are libuv's, and their callbacks run the app's continuations inline on the loop
/// thread. Uses the system's libuv (<c>libuv.so.1</c>; <c>apt-get install libuv1</c>), or the library named by
/// <c>EVENTLOOP_LIBUV_PATH</c>.
/// </summary>
/// <example><code>
/// Loop.Run(main, new LibuvLoopPolicy());      // this run
/// EventLoopPolicy.Set(new LibuvLoopPolicy()); // or process-wide (or EVENTLOOP_POLICY=libuv)
/// </code></example>
public sealed class LibuvLoopPolicy : LoopPolicy
{
    /// <inheritdoc />
    public override string Name => "libuv";

    /// <summary>The version of the libuv that was loaded, e.g. <c>1.44.2</c>.</summary>
    /// <exception cref="DllNotFoundException">libuv is not installed; the message says how to install it.</exception>
    public static string LibuvVersion => LibuvLibrary.VersionString;

    /// <inheritdoc />
    /// <exception cref="DllNotFoundException">libuv is not installed; the message says how to install it.</exception>
    public override Loop CreateLoop(LoopOptions? options = null)
    {
        LibuvLibrary.EnsureLoaded();
        return new LibuvLoop(options ?? new LoopOptions());
    }
}
