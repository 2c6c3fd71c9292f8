using System.Reflection;
using EventLoop.Internal;
using Xunit.Sdk;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Reliability;

/// <summary>
/// The leak check every loop test ends with (<see cref="LoopTestBase.AssertClosedCleanly"/>) must be able to fail:
/// these tests leak on purpose and expect it to.
/// </summary>
public abstract class LeakCheckTests : LoopTestBase
{
    [Fact]
    public void The_leak_check_fails_when_a_listener_escapes_the_shutdown()
    {
        using Loop loop = CreateLoop();
        ConnectionListener? leaked = null;
        loop.RunUntilComplete(async () =>
        {
            leaked = await loop.ListenTcpAsync(AnyLoopbackPort);

            // A transport bug, simulated: the loop's shutdown no longer knows of the listener, so nothing closes it.
            var node = (ShutdownNode)leaked.GetType().GetField("_node", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(leaked)!;
            loop.UnregisterShutdown(node);
        });

        var failure = Assert.ThrowsAny<XunitException>(() => AssertClosedCleanly(loop));
        Assert.Contains("still open", failure.Message);
        Assert.NotNull(loop.OpenAtClose);
        UnhandledErrors.Clear(); // the loop reported the leak too; that is what was expected here
        if (loop.PolicyName == "managed")
        {
            leaked!.DisposeAsync().AsTask().Wait(); // free the socket (libuv's close already freed its handle)
        }
    }

    [Fact]
    public void The_leak_check_fails_when_a_callback_exception_went_unnoticed()
    {
        using Loop loop = CreateLoop();
        loop.RunUntilComplete(async () =>
        {
            loop.CallSoon(() => throw new InvalidOperationException("nobody looked at this"));
            await Task.Yield();
        });

        var failure = Assert.ThrowsAny<XunitException>(() => AssertClosedCleanly(loop));
        Assert.Contains("nobody looked at this", failure.Message);
        UnhandledErrors.Clear();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_shutdown_that_closes_the_next_node_does_not_end_the_walk(bool resources)
    {
        var closed = new List<string>();
        Loop loop = CreateLoop();
        loop.RunUntilComplete(() =>
        {
            // Walked from the newest: first, then second (closed by first's shutdown), then last.
            var last = new TestNode("last", resources, closed, null, loop);
            var second = new TestNode("second", resources, closed, null, loop);
            var first = new TestNode("first", resources, closed, second, loop);
            loop.RegisterShutdown(last);
            loop.RegisterShutdown(second);
            loop.RegisterShutdown(first);
            return Task.CompletedTask;
        });
        loop.Dispose();

        Assert.Equal(["first", "second", "last"], closed);
    }

    private sealed class TestNode(string name, bool resource, List<string> closed, TestNode? closesToo, Loop loop) : ShutdownNode
    {
        internal override bool IsResource => resource;

        internal override void OnShutdown()
        {
            closed.Add(name);
            if (closesToo is not null)
            {
                loop.UnregisterShutdown(closesToo);
                closed.Add(closesToo.Name);
            }
        }

        private string Name => name;
    }

    [Fact]
    public void The_leak_check_passes_a_loop_that_closed_everything()
    {
        RunLoop(async loop =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(AnyLoopbackPort);
            Task<Connection> accept = listener.AcceptAsync().AsTask();
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await accept.WaitAsync(TestTimeout);
        });
    }
}

public sealed class ManagedLeakCheckTests : LeakCheckTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvLeakCheckTests : LeakCheckTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
