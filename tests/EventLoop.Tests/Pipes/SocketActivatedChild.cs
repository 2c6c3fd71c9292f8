using System.Collections;
using System.Runtime.InteropServices;

namespace EventLoop.Tests.Pipes;

/// <summary>
/// Starts this test assembly's <see cref="TestProgram"/> as systemd starts a socket-activated service: the listening
/// socket given as descriptor 3 (<c>posix_spawn</c> with a <c>dup2</c> file action, which clears close-on-exec on the
/// copy), <c>LISTEN_FDS=1</c>, and <c>LISTEN_PID</c> set to the child's own process id (by <c>/bin/sh</c>, whose
/// <c>$$</c> is the id the program keeps after <c>exec</c>). .NET's <see cref="System.Diagnostics.Process"/> cannot
/// pass a descriptor, so this spawns directly.
/// </summary>
internal static class SocketActivatedChild
{
    [DllImport("libc", SetLastError = true)]
    private static extern int posix_spawn_file_actions_init(IntPtr actions);

    [DllImport("libc", SetLastError = true)]
    private static extern int posix_spawn_file_actions_adddup2(IntPtr actions, int fd, int newFd);

    [DllImport("libc", SetLastError = true)]
    private static extern int posix_spawn_file_actions_destroy(IntPtr actions);

    [DllImport("libc", SetLastError = true)]
    private static extern int posix_spawn(out int pid, string path, IntPtr actions, IntPtr attributes, string?[] argv, string?[] envp);

    [DllImport("libc", SetLastError = true)]
    private static extern int waitpid(int pid, out int status, int options);

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>Spawns <c>TestProgram socket-activation <paramref name="policy"/></c> with <paramref name="listeningFd"/> as its fd 3; returns its pid.</summary>
    public static int Start(int listeningFd, string policy)
    {
        IntPtr actions = Marshal.AllocHGlobal(256); // posix_spawn_file_actions_t: 80 bytes on glibc
        try
        {
            Assert.Equal(0, posix_spawn_file_actions_init(actions));
            Assert.Equal(0, posix_spawn_file_actions_adddup2(actions, listeningFd, 3));
            string?[] argv =
            [
                "sh", "-c", "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"",
                TestProgram.DotnetHost(), "exec", ChildProcess.TestProgramPath, TestProgram.SocketActivationCommand, policy, null,
            ];
            var environment = new List<string?>();
            foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
            {
                string name = (string)variable.Key;
                if (name is not ("EVENTLOOP_POLICY" or "LISTEN_PID" or "LISTEN_FDS" or "LISTEN_FDNAMES"))
                {
                    environment.Add($"{name}={variable.Value}");
                }
            }

            environment.Add(null);
            int status = posix_spawn(out int pid, "/bin/sh", actions, IntPtr.Zero, argv, [.. environment]);
            Assert.True(status == 0, $"posix_spawn failed: {status}");
            return pid;
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            Marshal.FreeHGlobal(actions);
        }
    }

    /// <summary>Waits for the child's exit code (bounded; the child is killed past it).</summary>
    public static async Task<int> WaitAsync(int pid)
    {
        Task<int> exited = Task.Factory.StartNew(() =>
        {
            Assert.Equal(pid, waitpid(pid, out int status, 0));
            return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            return await exited.WaitAsync(TestPipes.TestTimeout * 3);
        }
        catch (TimeoutException)
        {
            kill(pid, 9);
            await exited;
            throw;
        }
    }
}
