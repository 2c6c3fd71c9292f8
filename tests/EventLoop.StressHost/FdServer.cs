using System.IO.Pipelines;
using System.Net;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>
/// An echo server for the descriptor-exhaustion test (issue 9, finding 7: one EMFILE ended the managed accept
/// loop for good). Run it with a low descriptor limit (<c>ulimit -n 128</c>); it prints <c>listening PORT</c>,
/// then <c>accept-error</c> each time the loop reports an accept failure, and serves until standard input closes.
/// Its <c>await foreach</c> accept loop must survive the exhaustion.
/// </summary>
internal static class FdServer
{
    public static void Run(LoopPolicy policy, Failures failures)
    {
        int reported = 0;
        var options = new LoopOptions
        {
            ExceptionHandler = context =>
            {
                if (context.Message.StartsWith("Accepting on", StringComparison.Ordinal))
                {
                    reported++;
                    Console.WriteLine("accept-error " + context.Exception?.Message);
                }
                else
                {
                    failures.Add("the loop reported " + context);
                }
            },
        };

        using Loop loop = policy.CreateLoop(options);
        loop.RunUntilComplete(async () =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), new TcpOptions { Backlog = 4096 });
            Console.WriteLine($"listening {((IPEndPoint)listener.LocalEndPoint).Port}");
            using var stop = new CancellationTokenSource();
            var stdin = new Thread(() =>
            {
                Console.In.ReadToEnd(); // the parent closes our input to stop us
                loop.CallSoonThreadSafe(stop.Cancel);
            })
            { IsBackground = true };
            stdin.Start();

            try
            {
                await foreach (Connection connection in listener.WithCancellation(stop.Token))
                {
                    _ = Echo.ServeAsync(connection);
                }

                failures.Add("the accept loop ended although the listener was not disposed");
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // Stopped by the parent.
            }
        });

        failures.CheckClosedCleanly(loop, "fd-server");
        Console.WriteLine($"accept-errors-reported {reported}");
    }

}
