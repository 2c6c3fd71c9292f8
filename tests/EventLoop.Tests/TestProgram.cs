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

    /// <summary><c>signal-default managed|libuv N</c>: handles signal N once on a loop, removes the handler, sends N again (which must end the process).</summary>
    public const string SignalDefaultCommand = "signal-default";

    /// <summary>The <c>dotnet</c> host running these tests (the test host is started with <c>dotnet exec</c>).</summary>
    public static string DotnetHost()
    {
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

    public static int Main(string[] args)
    {
        if (args is [DefaultLoopCommand])
        {
            string loop = Loop.Run(() => Task.FromResult($"{Loop.Current.PolicyName} {Loop.Current.GetType().Name}"));
            Console.WriteLine($"{loop} {EventLoopPolicy.Current.GetType().FullName}");
            return 0;
        }

        if (args is [SignalDefaultCommand, string policy, string number])
        {
            var signal = (System.Runtime.InteropServices.PosixSignal)int.Parse(number, System.Globalization.CultureInfo.InvariantCulture);
            int handled = Loop.Run(async () =>
            {
                Loop loop = Loop.Current;
                int calls = 0;
                SignalHandlerRegistration registration = loop.AddSignalHandler(signal, () => calls++);
                Signals.SignalTests.Raise(signal);
                using var deadline = new CancellationTokenSource(TestPipes.TestTimeout);
                while (calls == 0)
                {
                    await loop.DelayAsync(TimeSpan.FromMilliseconds(1), deadline.Token);
                }

                registration.Dispose();
                return calls;
            }, policy == "libuv" ? new global::EventLoop.Libuv.LibuvLoopPolicy() : new ManagedLoopPolicy());
            Console.WriteLine($"handled {handled}");
            Console.Out.Flush();
            Signals.SignalTests.Raise(signal); // the default action: the process ends here
            Thread.Sleep(TestPipes.TestTimeout); // (a child that outlives it is killed by the test)
            return 0;
        }

        Console.Error.WriteLine($"usage: dotnet exec EventLoop.Tests.dll {DefaultLoopCommand} | {SignalDefaultCommand} managed|libuv N");
        return 2;
    }
}
