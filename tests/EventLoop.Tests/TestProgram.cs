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

    /// <summary><c>signal-default managed|libuv N</c>: handles signal N once on a loop, removes the handler, sends N again (which must end the process).</summary>
    public const string SignalDefaultCommand = "signal-default";

    /// <summary>
    /// <c>socket-activation managed|managed-sockets|libuv</c>: as a service systemd started with one socket: takes the
    /// descriptor <see cref="SocketActivation.ListenFileDescriptors"/> finds (fd 3), listens on it with
    /// <see cref="Loop.ListenInheritedAsync"/>, echoes one connection until its peer half-closes, and prints what it served.
    /// </summary>
    public const string SocketActivationCommand = "socket-activation";

    /// <summary>The <c>dotnet</c> host running these tests (the test host is started with <c>dotnet exec</c>).</summary>
    public static string DotnetHost()
    {
        string? path = Environment.ProcessPath;
        return path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";
    }

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

        if (args is [SocketActivationCommand, string activatedPolicy])
        {
            try
            {
                return ServeActivatedSocket(activatedPolicy);
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"{ex.GetType().FullName}: {ex.Message}");
                return ExceptionExitCode;
            }
        }

        if (args is [SignalDefaultCommand, string policyName, string number])
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
            }, policyName == "libuv" ? new global::EventLoop.Libuv.LibuvLoopPolicy() : new ManagedLoopPolicy());
            Console.WriteLine($"handled {handled}");
            Console.Out.Flush();
            Signals.SignalTests.Raise(signal); // the default action: the process ends here
            Thread.Sleep(TestPipes.TestTimeout); // (a child that outlives it is killed by the test)
            return 0;
        }

        Console.Error.WriteLine($"usage: dotnet exec EventLoop.Tests.dll {SocketActivationCommand} managed|managed-sockets|libuv, or {DefaultLoopCommand}|{LibuvLoopCommand}|{LibuvOrManagedCommand}|{SignalDefaultCommand} managed|libuv N");
        return 2;
    }

    private static int ServeActivatedSocket(string policyName)
    {
        int[] descriptors = SocketActivation.ListenFileDescriptors(unsetEnvironment: true);
        LoopPolicy policy = policyName switch
        {
            "libuv" => new LibuvLoopPolicy(),
            "managed-sockets" => new ManagedLoopPolicy(useEpoll: false),
            _ => new ManagedLoopPolicy(),
        };
        string served = Loop.Run(async () =>
        {
            await using ConnectionListener listener = await Loop.Current.ListenInheritedAsync(descriptors.Single());
            await using Connection connection = await listener.AcceptAsync().AsTask().WaitAsync(TestPipes.TestTimeout);
            byte[] received = await TestPipes.ReadToEndAsync(connection.Input).WaitAsync(TestPipes.TestTimeout);
            await connection.Output.WriteAsync(received);
            await connection.ShutdownSendAsync();
            return $"served {received.Length} bytes on fd {string.Join(",", descriptors)} ({listener.LocalEndPoint}), LISTEN_PID now {Environment.GetEnvironmentVariable("LISTEN_PID") ?? "unset"}";
        }, policy);
        Console.WriteLine(served);
        return 0;
    }
}
