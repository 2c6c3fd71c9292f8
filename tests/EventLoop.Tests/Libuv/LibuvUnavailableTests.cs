using System.Reflection;
using System.Runtime.InteropServices;
using EventLoop.Libuv;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Tests.Libuv;

/// <summary>
/// A libuv that cannot be used (missing, a path that is not there, a file that is not a library, a library that is not
/// libuv) is one <see cref="LibuvUnavailableException"/> that says what was looked for, where, and how to install libuv.
/// The loader is tried in this process on names and paths that never touch the process's own libuv; what the
/// environment variable does is tried in child processes (it is read once per process). These are about loading the
/// libuv library, not about a loop's behaviour, so they are not run per policy.
/// </summary>
public sealed class LibuvUnavailableTests
{
    private static void AssertSaysHowToInstall(string message)
    {
        Assert.Contains("apt-get install libuv1", message);
        Assert.Contains("brew install libuv", message);
        Assert.Contains("ManagedLoopPolicy", message);
        Assert.DoesNotContain("\n", message); // one line, fit to print as it is
    }

    /// <summary>A shared library that is certainly there and certainly not libuv: one of the runtime's own.</summary>
    private static string NotLibuvLibrary()
    {
        string directory = RuntimeEnvironment.GetRuntimeDirectory();
        string name = OperatingSystem.IsWindows() ? "System.IO.Compression.Native.dll"
            : OperatingSystem.IsMacOS() ? "libSystem.Native.dylib" : "libSystem.Native.so";
        string path = Path.Combine(directory, name);
        Assert.True(File.Exists(path), $"expected the runtime's {name} at {path}");
        return path;
    }

    [Fact]
    public void No_libuv_on_the_search_path_names_every_library_looked_for_where_and_how_to_install()
    {
        string[] names = ["libuv-that-does-not-exist.so.9", "uv-nor-this"];
        var error = Assert.Throws<LibuvUnavailableException>(() => LibuvLibrary.LoadChecked(null, names));
        Assert.Contains("libuv-that-does-not-exist.so.9, uv-nor-this", error.Message);
        Assert.Contains(AppContext.BaseDirectory.TrimEnd('/', '\\'), error.Message);
        Assert.Contains("library search path", error.Message);
        Assert.Contains(LibuvLibrary.PathVariable, error.Message);
        AssertSaysHowToInstall(error.Message);
        Assert.Equal(names, error.Tried);
    }

    [Fact]
    public void A_path_that_is_not_there_names_the_variable_and_the_path()
    {
        var error = Assert.Throws<LibuvUnavailableException>(() => LibuvLibrary.LoadChecked("/nonexistent/libuv.so.1", LibuvLibrary.PlatformNames));
        Assert.StartsWith("EVENTLOOP_LIBUV_PATH is set to '/nonexistent/libuv.so.1', but libuv could not be loaded from there (there is no such file).", error.Message);
        AssertSaysHowToInstall(error.Message);
        Assert.Equal(["/nonexistent/libuv.so.1"], error.Tried);
        Assert.IsType<DllNotFoundException>(error.InnerException);
    }

    [Fact]
    public void A_file_that_is_not_a_shared_library_is_refused_as_such()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "not a library");
            var error = Assert.Throws<LibuvUnavailableException>(() => LibuvLibrary.LoadChecked(path, LibuvLibrary.PlatformNames));
            Assert.Contains($"'{path}'", error.Message);
            Assert.Contains("the file is there but is not a loadable shared library", error.Message);
            AssertSaysHowToInstall(error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_shared_library_that_is_not_libuv_is_refused_by_its_missing_functions()
    {
        string path = NotLibuvLibrary();
        var error = Assert.Throws<LibuvUnavailableException>(() => LibuvLibrary.LoadChecked(path, LibuvLibrary.PlatformNames));
        Assert.StartsWith($"'{path}' was loaded as libuv but is not libuv: it has none of libuv's functions.", error.Message);
        Assert.Contains("Point EVENTLOOP_LIBUV_PATH at libuv's shared library", error.Message);
        AssertSaysHowToInstall(error.Message);
    }

    [Fact]
    public void The_real_libuv_passes_every_check()
    {
        IntPtr handle = LibuvLibrary.LoadChecked(null, LibuvLibrary.PlatformNames);
        Assert.NotEqual(IntPtr.Zero, handle);
        Assert.True(LibuvLoopPolicy.IsAvailable(out LibuvUnavailableException? error), error?.Message);
        Assert.Null(error);
        LibuvLoopPolicy.EnsureAvailable();
        Assert.Matches(@"^1\.\d+\.\d+$", LibuvLoopPolicy.LibuvVersion);
        Assert.IsType<LibuvLoopPolicy>(LibuvLoopPolicy.OrManaged(TextWriter.Null));
    }

    [Fact]
    public void The_required_exports_are_exactly_the_functions_the_binding_imports_and_uv_version()
    {
        // A function imported but not checked would fail late, at its first call, as EntryPointNotFoundException.
        Type imports = typeof(Uv).GetNestedType("Imports", BindingFlags.NonPublic)!;
        string[] imported = imports.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
            .Where(m => m.GetCustomAttribute<LibraryImportAttribute>() is { LibraryName: LibuvLibrary.ImportName })
            .Select(m => m.GetCustomAttribute<LibraryImportAttribute>()!.EntryPoint ?? m.Name)
            .ToArray();
        Assert.True(imported.Length > 30, $"found only {imported.Length} imports: the reflection no longer sees them");
        Assert.Equal(
            imported.Append("uv_version").Distinct().Order(StringComparer.Ordinal),
            LibuvLibrary.RequiredExports.Order(StringComparer.Ordinal));
    }

    private static Task<ChildProcess.Result> RunChild(string command, string? libuvPath, string? policy = null) =>
        ChildProcess.RunAsync(ChildProcess.TestProgramPath, [command], new Dictionary<string, string?>
        {
            [LibuvLibrary.PathVariable] = libuvPath,
            [EventLoopPolicy.EnvironmentVariable] = policy,
        });

    [Theory]
    [InlineData(TestProgram.LibuvLoopCommand, null)]
    [InlineData(TestProgram.DefaultLoopCommand, "libuv")]
    public async Task A_process_whose_EVENTLOOP_LIBUV_PATH_is_not_there_fails_Loop_Run_with_one_LibuvUnavailableException(string command, string? policy)
    {
        ChildProcess.Result child = await RunChild(command, "/nonexistent", policy);
        Assert.True(child.ExitCode == TestProgram.ExceptionExitCode, child.ToString());
        Assert.Empty(child.Output);
        string line = Assert.Single(child.ErrorLines);
        Assert.StartsWith("EventLoop.Libuv.LibuvUnavailableException: EVENTLOOP_LIBUV_PATH is set to '/nonexistent'", line);
        AssertSaysHowToInstall(line);
    }

    [Fact]
    public async Task A_process_whose_EVENTLOOP_LIBUV_PATH_is_not_libuv_fails_Loop_Run_with_one_LibuvUnavailableException()
    {
        string path = NotLibuvLibrary();
        ChildProcess.Result child = await RunChild(TestProgram.LibuvLoopCommand, path);
        Assert.True(child.ExitCode == TestProgram.ExceptionExitCode, child.ToString());
        string line = Assert.Single(child.ErrorLines);
        Assert.StartsWith($"EventLoop.Libuv.LibuvUnavailableException: '{path}' was loaded as libuv but is not libuv", line);
    }

    [Fact]
    public async Task OrManaged_falls_back_to_the_managed_loop_with_one_warning_when_libuv_cannot_be_loaded()
    {
        ChildProcess.Result child = await RunChild(TestProgram.LibuvOrManagedCommand, "/nonexistent");
        Assert.True(child.ExitCode == 0, child.ToString());
        Assert.Equal("managed", child.Output.Trim());
        string warning = Assert.Single(child.ErrorLines);
        Assert.StartsWith("warning: using the managed loop: EVENTLOOP_LIBUV_PATH is set to '/nonexistent'", warning);
    }

    [Fact]
    public async Task OrManaged_uses_libuv_when_it_loads_and_says_nothing()
    {
        ChildProcess.Result child = await RunChild(TestProgram.LibuvOrManagedCommand, null);
        Assert.True(child.ExitCode == 0, child.ToString());
        Assert.Equal("libuv", child.Output.Trim());
        Assert.Empty(child.Errors);
    }

    [Fact]
    public async Task A_process_whose_EVENTLOOP_LIBUV_PATH_names_the_real_libuv_runs_on_it()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // the library's path is read from /proc/self/maps
        }

        ChildProcess.Result probe = await RunChild(TestProgram.LibuvLoopCommand, null);
        Assert.True(probe.ExitCode == 0, probe.ToString());
        LibuvLoopPolicy.EnsureAvailable(); // mapped into this process too, so its file can be named
        string real = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[5]).StartsWith("libuv.so", StringComparison.Ordinal))
            .Select(f => f[5]).First();
        ChildProcess.Result child = await RunChild(TestProgram.LibuvLoopCommand, real);
        Assert.True(child.ExitCode == 0, child.ToString());
        Assert.Equal(probe.Output, child.Output);
    }
}
