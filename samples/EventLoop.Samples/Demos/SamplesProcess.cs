using System.Diagnostics;

namespace EventLoop.Samples.Demos;

/// <summary>
/// How to start this samples runner again as a child process (the <c>cpu</c> demo's workers, which pass the file name
/// and arguments to <see cref="Loop.StartProcess"/>; tests of the command line, which use <see cref="Process"/>).
/// </summary>
internal static class SamplesProcess
{
    /// <summary>
    /// The runner with <paramref name="arguments"/>, stdout and stderr redirected: the running executable when this
    /// is the runner's own app host; else the app host beside the runner's assembly (a test's output folder has one);
    /// else the assembly through the <c>dotnet</c> host.
    /// </summary>
    public static ProcessStartInfo StartInfo(params string[] arguments)
    {
        string assembly = typeof(SamplesProcess).Assembly.Location;
        string name = Path.GetFileNameWithoutExtension(assembly);
        string? self = Environment.ProcessPath;
        string appHost = Path.ChangeExtension(assembly, OperatingSystem.IsWindows() ? ".exe" : null);
        ProcessStartInfo start;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == name)
        {
            start = new ProcessStartInfo(self);
        }
        else if (File.Exists(appHost))
        {
            start = new ProcessStartInfo(appHost);
        }
        else
        {
            start = new ProcessStartInfo(DotnetHost());
            start.ArgumentList.Add(assembly);
        }

        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        return start;
    }

    private static string DotnetHost()
    {
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
    }
}
