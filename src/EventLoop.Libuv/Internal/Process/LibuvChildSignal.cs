using System.Runtime.InteropServices;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports.Processes;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// Keeps SIGCHLD the .NET runtime's while libuv reaps its own children.
/// <para>
/// <c>uv_spawn</c> starts a libuv signal watcher for SIGCHLD, and libuv installs its own handler for the signal when the
/// first such watcher in the process starts (and sets it back to <c>SIG_DFL</c> when the last stops, at
/// <c>uv_loop_close</c>), without chaining to the one it replaced. That one is the runtime's, which
/// <see cref="System.Diagnostics.Process"/> needs to see its children exit: after a libuv spawn, a
/// <c>Process.WaitForExit</c> anywhere in the process would hang.
/// </para>
/// <para>
/// So the runtime's disposition is saved before the first spawn and put back after each spawn and loop close that
/// changed it, and libuv's handler is remembered and called from the runtime's SIGCHLD notification
/// (<see cref="ChildExitSignal"/>): libuv's handler only writes to its loops' signal pipes, which is safe from any
/// thread, and the loops' own watchers then run <c>waitpid</c> on each of their children, as before. A SIGCHLD that
/// arrives in the moment libuv's handler is installed is not lost to the runtime: after putting its handler back the
/// bridge raises SIGCHLD once, and both sides look at their children again.
/// </para>
/// </summary>
internal static unsafe class LibuvChildSignal
{
    private const int SigChld = 17;
    private static readonly object s_lock = new();
    private static IntPtr s_runtimeAction; // a saved struct sigaction, native, for the process's lifetime
    private static IntPtr s_libuvHandler;

    /// <summary>Before <c>uv_spawn</c>: the runtime's handler is installed (by the registration) and saved.</summary>
    public static void BeforeSpawn()
    {
        if (Volatile.Read(ref s_runtimeAction) != 0)
        {
            return;
        }

        lock (s_lock)
        {
            if (s_runtimeAction != 0)
            {
                return;
            }

            ChildExitSignal.Subscribe(static () => CallLibuvHandler());
            byte* action = (byte*)NativeMemory.AllocZeroed(Libc.SigActionSize);
            Libc.GetSignalAction(SigChld, action);
            Volatile.Write(ref s_runtimeAction, (IntPtr)action);
        }
    }

    /// <summary>After <c>uv_spawn</c> or <c>uv_loop_close</c>: if libuv changed SIGCHLD's disposition, puts the runtime's back.</summary>
    public static void AfterLibuvChange()
    {
        if (Volatile.Read(ref s_runtimeAction) == 0)
        {
            return;
        }

        lock (s_lock)
        {
            byte* current = stackalloc byte[Libc.SigActionSize];
            new Span<byte>(current, Libc.SigActionSize).Clear();
            if (Libc.GetSignalAction(SigChld, current) != 0)
            {
                return;
            }

            IntPtr handler = *(IntPtr*)current; // sa_handler is the first member
            IntPtr runtime = *(IntPtr*)s_runtimeAction;
            if (handler == runtime)
            {
                return;
            }

            if (handler != 0 && handler != 1)
            {
                Volatile.Write(ref s_libuvHandler, handler); // SIG_DFL is 0, SIG_IGN 1: anything else is libuv's handler
            }

            Libc.SetSignalAction(SigChld, (byte*)s_runtimeAction);
        }

        Libc.RaiseInProcess(SigChld);
    }

    /// <summary>On the runtime's SIGCHLD notification (its signal thread): libuv's handler wakes every libuv loop watching SIGCHLD.</summary>
    private static void CallLibuvHandler()
    {
        IntPtr handler = Volatile.Read(ref s_libuvHandler);
        if (handler != 0)
        {
            ((delegate* unmanaged[Cdecl]<int, void>)handler)(SigChld);
        }
    }
}
