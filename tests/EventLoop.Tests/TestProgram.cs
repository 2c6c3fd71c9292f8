using EventLoop.Libuv;

namespace EventLoop.Tests;

/// <summary>
/// The test assembly's entry point, for tests that need a fresh process (see
/// <see cref="Core.EventLoopPolicyEnvironmentTests"/>, <see cref="Libuv.LibuvUnavailableTests"/>): the environment
/// variables the library reads once per process (<c>EVENTLOOP_POLICY</c>, <c>EVENTLOOP_LIBUV_PATH</c>) are set on the
/// child. The test runner never calls it.
/// <list type="bullet">
/// <item><c>default-loop</c>: <see cref="Loop.Run{T}(Func{Task{T}})"/> with no policy given; prints which loop it ran on.</item>
/// <item><c>libuv-loop</c>: <c>Loop.Run</c> on a new <see cref="LibuvLoopPolicy"/>; prints the libuv version.</item>
/// <item><c>libuv-or-managed</c>: <c>Loop.Run</c> on <see cref="LibuvLoopPolicy.OrManaged"/> (warnings to stderr); prints the loop's name.</item>
/// </list>
/// An exception from any of them is printed as one line, <c>Type: message</c>, on stderr, with exit code 3.
/// </summary>
public static class TestProgram
{
    public const string DefaultLoopCommand = "default-loop";
    public const string LibuvLoopCommand = "libuv-loop";
    public const string LibuvOrManagedCommand = "libuv-or-managed";
    public const int ExceptionExitCode = 3;

    public static int Main(string[] args)
    {
        try
        {
            switch (args)
            {
                case [DefaultLoopCommand]:
                    string loop = Loop.Run(() => Task.FromResult($"{Loop.Current.PolicyName} {Loop.Current.GetType().Name}"));
                    Console.WriteLine($"{loop} {EventLoopPolicy.Current.GetType().FullName}");
                    return 0;
                case [LibuvLoopCommand]:
                    Console.WriteLine(Loop.Run(() => Task.FromResult($"{Loop.Current.PolicyName} {LibuvLoopPolicy.LibuvVersion}"), new LibuvLoopPolicy()));
                    return 0;
                case [LibuvOrManagedCommand]:
                    LoopPolicy policy = LibuvLoopPolicy.OrManaged(Console.Error);
                    Console.WriteLine(Loop.Run(() => Task.FromResult(Loop.Current.PolicyName), policy));
                    return 0;
            }
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"{ex.GetType().FullName}: {ex.Message}");
            return ExceptionExitCode;
        }

        Console.Error.WriteLine($"usage: dotnet exec EventLoop.Tests.dll {DefaultLoopCommand}|{LibuvLoopCommand}|{LibuvOrManagedCommand}");
        return 2;
    }
}
