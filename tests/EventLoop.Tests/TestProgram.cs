namespace EventLoop.Tests;

/// <summary>
/// The test assembly's entry point, for tests that need a fresh process (see
/// <see cref="Core.EventLoopPolicyEnvironmentTests"/>): <c>dotnet exec EventLoop.Tests.dll default-loop</c> runs
/// <see cref="Loop.Run{T}(Func{Task{T}})"/> with no policy given and prints which loop it ran on. The test runner
/// never calls it.
/// </summary>
public static class TestProgram
{
    public const string DefaultLoopCommand = "default-loop";

    public static int Main(string[] args)
    {
        if (args is [DefaultLoopCommand])
        {
            string loop = Loop.Run(() => Task.FromResult($"{Loop.Current.PolicyName} {Loop.Current.GetType().Name}"));
            Console.WriteLine($"{loop} {EventLoopPolicy.Current.GetType().FullName}");
            return 0;
        }

        Console.Error.WriteLine($"usage: dotnet exec EventLoop.Tests.dll {DefaultLoopCommand}");
        return 2;
    }
}
