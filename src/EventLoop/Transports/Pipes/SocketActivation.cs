using System.Globalization;
using EventLoop.Transports.Pipes;

namespace EventLoop;

/// <summary>
/// The listening sockets a service manager passed to this process (systemd socket activation, as
/// <c>sd_listen_fds(3)</c> reads them): <c>LISTEN_PID</c> names this process and <c>LISTEN_FDS</c> counts the
/// descriptors, which start at 3. Hand each to <see cref="Loop.ListenInheritedAsync"/>.
/// </summary>
public static class SocketActivation
{
    /// <summary>The first descriptor systemd passes (<c>SD_LISTEN_FDS_START</c>).</summary>
    public const int FirstFileDescriptor = 3;

    /// <summary>
    /// The descriptors passed to this process, in order (3, 4, ...), each set close-on-exec as <c>sd_listen_fds</c>
    /// does; empty when <c>LISTEN_PID</c> is unset or names another process (the variables were inherited from a
    /// parent), or <c>LISTEN_FDS</c> is unset. With <paramref name="unsetEnvironment"/> the variables
    /// (<c>LISTEN_PID</c>, <c>LISTEN_FDS</c>, <c>LISTEN_FDNAMES</c>) are removed, so child processes do not see them.
    /// </summary>
    /// <exception cref="FormatException"><c>LISTEN_PID</c> or <c>LISTEN_FDS</c> is not a number.</exception>
    public static int[] ListenFileDescriptors(bool unsetEnvironment = false)
    {
        string? pidText = Environment.GetEnvironmentVariable("LISTEN_PID");
        string? countText = Environment.GetEnvironmentVariable("LISTEN_FDS");
        try
        {
            if (pidText is null || countText is null)
            {
                return [];
            }

            if (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                throw new FormatException($"LISTEN_PID is not a process id: '{pidText}'.");
            }

            if (!int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out int count))
            {
                throw new FormatException($"LISTEN_FDS is not a count: '{countText}'.");
            }

            if (pid != Environment.ProcessId || count == 0)
            {
                return [];
            }

            int[] descriptors = new int[count];
            for (int i = 0; i < count; i++)
            {
                descriptors[i] = FirstFileDescriptor + i;
                PipeDescriptor.SetCloseOnExec(descriptors[i]);
            }

            return descriptors;
        }
        finally
        {
            if (unsetEnvironment)
            {
                Environment.SetEnvironmentVariable("LISTEN_PID", null);
                Environment.SetEnvironmentVariable("LISTEN_FDS", null);
                Environment.SetEnvironmentVariable("LISTEN_FDNAMES", null);
            }
        }
    }
}
