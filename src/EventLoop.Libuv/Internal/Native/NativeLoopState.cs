using System.Runtime.InteropServices;

namespace EventLoop.Libuv.Internal.Native;

/// <summary>
/// Per-loop bookkeeping in native memory. The loop's <c>data</c> field and every handle's point to it, so a
/// close callback can do the accounting, and the binding can check the calling thread, without a GCHandle.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NativeLoopState
{
    /// <summary>GCHandle to the managed loop while it runs or closes; zero otherwise.</summary>
    public IntPtr Loop;

    /// <summary>Handles allocated on this loop and not yet freed by their close callback.</summary>
    public int OpenHandles;

    /// <summary>The managed id of the thread running the loop; zero before it first runs (see <see cref="Uv"/>'s thread check).</summary>
    public int OwnerThreadId;
}
