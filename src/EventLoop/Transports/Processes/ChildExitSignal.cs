using System.Runtime.InteropServices;

namespace EventLoop.Transports.Processes;

/// <summary>
/// SIGCHLD, taken through the .NET runtime's signal handling and fanned out to whoever waits for children of its own:
/// the loops of either policy that have children (each reaps its own with <c>waitpid</c> on its thread, see
/// <see cref="SpawnedChildren"/>; the libuv loop does not use <c>uv_spawn</c>, so libuv never installs a SIGCHLD
/// handler of its own over the runtime's). The runtime keeps its own SIGCHLD handler, which reaps
/// only the children <see cref="System.Diagnostics.Process"/> started, so ours and its never take each other's.
/// The registration lives as long as the process: removing the last one would give SIGCHLD back its default action.
/// </summary>
internal static class ChildExitSignal
{
    private static readonly object s_lock = new();
    private static Action[] s_listeners = [];
    private static PosixSignalRegistration? s_registration;

    /// <summary>Makes sure the runtime's SIGCHLD handler is installed and calls <paramref name="listener"/> on every SIGCHLD (any thread).</summary>
    public static void Subscribe(Action listener)
    {
        lock (s_lock)
        {
            if (OperatingSystem.IsWindows())
            {
                throw new PlatformNotSupportedException("SIGCHLD is a Unix signal.");
            }

            s_registration ??= PosixSignalRegistration.Create(PosixSignal.SIGCHLD, static _ => Raise());
            s_listeners = [.. s_listeners, listener];
        }
    }

    public static void Unsubscribe(Action listener)
    {
        lock (s_lock)
        {
            int index = Array.IndexOf(s_listeners, listener);
            if (index >= 0)
            {
                s_listeners = [.. s_listeners[..index], .. s_listeners[(index + 1)..]];
            }
        }
    }

    private static void Raise()
    {
        foreach (Action listener in Volatile.Read(ref s_listeners))
        {
            try
            {
                listener();
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"EventLoop: a SIGCHLD listener threw: {ex}");
            }
        }
    }
}
