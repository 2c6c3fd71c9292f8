using System.Collections;
using System.ComponentModel;
using System.Text;

namespace EventLoop.Transports.Processes;

/// <summary>
/// A spawn, checked and resolved before either policy starts it: the program's path (looked up in the child's
/// <c>PATH</c> as <c>execvp</c> does, so a missing program fails here, the same way on both loops), the argument
/// vector, the environment block (always given: libc's <c>environ</c> lacks what .NET code set) and the working directory.
/// </summary>
internal sealed class ProcessLaunch
{
    private const int ENOENT = 2;

    private ProcessLaunch(string fileName, string path, string[] argv, string[] environment, string? workingDirectory, LoopProcessOptions options)
    {
        FileName = fileName;
        Path = path;
        Argv = argv;
        Environment = environment;
        WorkingDirectory = workingDirectory;
        StandardInput = options.StandardInput;
        StandardOutput = options.StandardOutput;
        StandardError = options.StandardError;
        PipeOptions = new TcpOptions
        {
            NoDelay = false,
            KeepAlive = false,
            InputPauseThreshold = options.PipePauseThreshold,
            InputResumeThreshold = options.PipePauseThreshold / 2,
        }.Validate();
    }

    /// <summary>The program as the caller named it (argv[0]).</summary>
    public string FileName { get; }

    /// <summary>The program's path: <see cref="FileName"/> when it holds a '/', else where it was found in PATH.</summary>
    public string Path { get; }

    /// <summary>argv, argv[0] first.</summary>
    public string[] Argv { get; }

    /// <summary>"NAME=value" entries.</summary>
    public string[] Environment { get; }

    public string? WorkingDirectory { get; }

    public ProcessStdio StandardInput { get; }

    public ProcessStdio StandardOutput { get; }

    public ProcessStdio StandardError { get; }

    /// <summary>The options of the pipe connections (thresholds from <see cref="LoopProcessOptions.PipePauseThreshold"/>).</summary>
    public TcpOptions PipeOptions { get; }

    /// <summary>Checks and resolves a spawn. Throws what <see cref="Loop.StartProcess"/> documents.</summary>
    public static ProcessLaunch Create(string fileName, IEnumerable<string>? arguments, LoopProcessOptions options)
    {
        CheckStdio(options.StandardInput, "options.StandardInput");
        CheckStdio(options.StandardOutput, "options.StandardOutput");
        CheckStdio(options.StandardError, "options.StandardError");
        if (options.PipePauseThreshold < 2)
        {
            throw new ArgumentOutOfRangeException("options.PipePauseThreshold", options.PipePauseThreshold, "The pause threshold must be at least 2 bytes.");
        }

        if (fileName.Contains('\0'))
        {
            throw new ArgumentException("The program name holds a NUL character.", nameof(fileName));
        }

        var argv = new List<string> { fileName };
        if (arguments is not null)
        {
            foreach (string argument in arguments)
            {
                if (argument is null || argument.Contains('\0'))
                {
                    throw new ArgumentException("An argument is null or holds a NUL character.", nameof(arguments));
                }

                argv.Add(argument);
            }
        }

        string? cwd = string.IsNullOrEmpty(options.WorkingDirectory) ? null : options.WorkingDirectory;
        if (cwd is not null && !Directory.Exists(cwd))
        {
            // posix_spawn and libuv report a bad directory as ENOENT, as they report a missing program: say which it was.
            throw new Win32Exception(ENOENT, $"An error occurred trying to start process '{fileName}' with working directory '{cwd}'. The working directory does not exist.");
        }

        string[] environment = BuildEnvironment(options);
        string path = Resolve(fileName, environment, cwd)
            ?? throw new Win32Exception(ENOENT, $"An error occurred trying to start process '{fileName}' with working directory '{cwd ?? System.Environment.CurrentDirectory}'. No such file or directory (not found in PATH).");
        return new ProcessLaunch(fileName, path, argv.ToArray(), environment, cwd, options);
    }

    /// <summary>The exception for a spawn the system refused (a negated errno), named as .NET's <see cref="System.Diagnostics.Process"/> names it.</summary>
    public Win32Exception SpawnFailed(int negatedErrno)
    {
        int errno = -negatedErrno;
        return new Win32Exception(errno, $"An error occurred trying to start process '{FileName}' with working directory '{WorkingDirectory ?? System.Environment.CurrentDirectory}'. {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)}");
    }

    private static void CheckStdio(ProcessStdio stdio, string name)
    {
        if (stdio is not (ProcessStdio.Inherit or ProcessStdio.Pipe or ProcessStdio.Discard))
        {
            throw new ArgumentOutOfRangeException(name, stdio, "Not a ProcessStdio value.");
        }
    }

    /// <summary>
    /// The child's environment: this process's as .NET sees it (variables set with <see cref="System.Environment.SetEnvironmentVariable(string, string)"/>
    /// included, which libc's <c>environ</c> lacks), with the options' changes.
    /// </summary>
    private static string[] BuildEnvironment(LoopProcessOptions options)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        if (options.InheritEnvironment)
        {
            foreach (DictionaryEntry entry in System.Environment.GetEnvironmentVariables())
            {
                variables[(string)entry.Key] = (string?)entry.Value ?? string.Empty;
            }
        }

        foreach ((string name, string? value) in options.Environment)
        {
            if (string.IsNullOrEmpty(name) || name.Contains('=') || name.Contains('\0') || (value?.Contains('\0') ?? false))
            {
                throw new ArgumentException($"The environment variable '{name}' has an empty name, or a '=' or NUL in its name, or a NUL in its value.", "options");
            }

            if (value is null)
            {
                variables.Remove(name);
            }
            else
            {
                variables[name] = value;
            }
        }

        var block = new string[variables.Count];
        int i = 0;
        foreach ((string name, string value) in variables)
        {
            block[i++] = name + "=" + value;
        }

        return block;
    }

    /// <summary>The program's path as execvp finds it: a name with a '/' is a path (relative to the child's directory); else the first executable file in PATH.</summary>
    private static string? Resolve(string fileName, string[] environment, string? cwd)
    {
        if (fileName.Contains('/'))
        {
            string full = cwd is not null && !System.IO.Path.IsPathRooted(fileName) ? System.IO.Path.Combine(cwd, fileName) : fileName;
            return File.Exists(full) ? full : null;
        }

        string? pathVariable = null;
        foreach (string entry in environment)
        {
            if (entry.StartsWith("PATH=", StringComparison.Ordinal))
            {
                pathVariable = entry[5..];
                break;
            }
        }

        foreach (string directory in (pathVariable ?? "/usr/local/bin:/usr/bin:/bin").Split(':'))
        {
            string candidate = System.IO.Path.Combine(directory.Length == 0 ? "." : directory, fileName);
            if (File.Exists(candidate) && IsExecutable(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsExecutable(string path) =>
        !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    /// <summary>A native <c>char*[]</c> of <paramref name="values"/> as NUL-terminated UTF-8, NULL-terminated; one allocation, freed with <see cref="System.Runtime.InteropServices.NativeMemory.Free"/>.</summary>
    public static unsafe byte** ToNativeArray(string[] values)
    {
        nuint pointers = (nuint)(sizeof(byte*) * (values.Length + 1));
        nuint total = pointers;
        foreach (string value in values)
        {
            total += (nuint)Encoding.UTF8.GetByteCount(value) + 1;
        }

        byte* block = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(total);
        byte** array = (byte**)block;
        byte* next = block + pointers;
        for (int i = 0; i < values.Length; i++)
        {
            array[i] = next;
            int length = Encoding.UTF8.GetBytes(values[i], new Span<byte>(next, (int)(block + total - next)));
            next[length] = 0;
            next += length + 1;
        }

        array[values.Length] = null;
        return array;
    }
}
