using EventLoop.Transports.Processes;

namespace EventLoop;

public abstract partial class Loop
{
    /// <summary>
    /// Starts <paramref name="fileName"/> as a child process with <paramref name="arguments"/> (asyncio's
    /// <c>create_subprocess_exec</c>): each argument reaches the child as one <c>argv</c> entry, exactly as given (no
    /// shell, no quoting). A name without a '/' is looked up in the child's <c>PATH</c>, as <c>execvp</c> does. The
    /// child's standard streams are inherited unless <paramref name="options"/> asks for loop pipes or
    /// <c>/dev/null</c>; its exit is seen on the loop (<see cref="LoopProcess.WaitForExitAsync"/>).
    /// </summary>
    /// <remarks>
    /// The spawn itself is synchronous (glibc's <c>posix_spawn</c> on both policies: a <c>vfork</c>-style clone and
    /// <c>exec</c>, tens of microseconds); everything after it runs on the loop.
    /// Errors are those of .NET's <see cref="System.Diagnostics.Process.Start()"/> on Unix: a
    /// <see cref="System.ComponentModel.Win32Exception"/> whose <c>NativeErrorCode</c> is the errno (2 for a program
    /// not found or a working directory that does not exist, 13 for a file that is not executable), and whose message
    /// names the program and the directory.
    /// </remarks>
    /// <exception cref="ArgumentException">The name is empty, or the name, an argument or a variable holds a NUL (or the variable's name a '=').</exception>
    /// <exception cref="System.ComponentModel.Win32Exception">The program was not found or could not be started, or the working directory does not exist.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread, or the loop is closed.</exception>
    public LoopProcess StartProcess(string fileName, IEnumerable<string>? arguments = null, LoopProcessOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        CheckNotClosed();
        CheckLoopThread();
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Subprocesses on the loop are supported on Linux only.");
        }

        ProcessLaunch launch = ProcessLaunch.Create(fileName, arguments, options ?? LoopProcessOptions.Default);
        return StartProcessCore(launch);
    }

    /// <summary>
    /// Runs <paramref name="command"/> with <c>/bin/sh -c</c> (asyncio's <c>create_subprocess_shell</c>): the shell
    /// parses it, so quote what comes from outside. Otherwise as <see cref="StartProcess"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The command is empty or holds a NUL.</exception>
    /// <exception cref="InvalidOperationException">Called off the loop thread, or the loop is closed.</exception>
    public LoopProcess StartShellProcess(string command, LoopProcessOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        return StartProcess("/bin/sh", ["-c", command], options);
    }

    /// <summary>The policy's spawn. Loop thread, the launch checked and resolved.</summary>
    private protected abstract LoopProcess StartProcessCore(ProcessLaunch launch);
}
