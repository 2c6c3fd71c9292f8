using System.IO.Pipelines;
using System.Reflection;
using EventLoop.Transports;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Libuv;

/// <summary>
/// Exceptions thrown inside libuv's read and alloc callbacks: never into native code; they reach the loop's exception
/// handler, end (read: abort) only the connection they belong to, and the loop goes on. libuv-only: these are
/// libuv's callbacks (the managed loop's receive pump is an async method, whose failures end its pipe instead).
/// No seam in the library is needed: a continuation on the input pipe runs inline inside the read callback, and the
/// alloc callback's <c>GetMemory</c> throws once the input pipe's writer was completed behind the transport's back.
/// </summary>
public sealed class LibuvCallbackExceptionTests : LoopTestBase
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    private sealed class ThrownInCallback(string message) : Exception(message);

    private static Task WhenCancelled(CancellationToken token)
    {
        var completion = new TaskCompletionSource();
        token.Register(static s => ((TaskCompletionSource)s!).TrySetResult(), completion);
        return completion.Task;
    }

    /// <summary>The loop still serves another connection end to end.</summary>
    private static async Task AssertTheLoopGoesOnAsync(Loop loop)
    {
        var (listener, client, server) = await ConnectPairAsync(loop);
        await using (listener)
        await using (client)
        await using (server)
        {
            await client.Output.WriteAsync("still here"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
            Assert.Equal("still here"u8.ToArray(), await ReadExactlyAsync(server.Input, 10).WaitAsync(TestTimeout));
        }
    }

    private LoopExceptionContext SingleError()
    {
        lock (UnhandledErrors)
        {
            return Assert.Single(UnhandledErrors);
        }
    }

    [Fact]
    public void An_exception_in_the_read_callback_reaches_the_handler_and_aborts_only_that_connection()
    {
        ExpectErrors = true;
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                // The input pipe resumes its reader inline, inside libuv's read callback: a continuation registered
                // without a context runs there, and this one throws.
                var thrown = new ThrownInCallback("thrown inside the read callback");
                bool ranOnLoop = false;
                ValueTask<ReadResult> pending = server.Input.ReadAsync();
                pending.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(() =>
                {
                    ranOnLoop = loop.IsOnLoopThread;
                    throw thrown;
                });

                await client.Output.WriteAsync("ping"u8.ToArray()).AsTask().WaitAsync(TestTimeout);

                // The connection is aborted (RST): the peer sees the reset.
                await Assert.ThrowsAsync<ConnectionResetException>(() => ReadToEndAsync(client.Input).WaitAsync(TestTimeout));
                Assert.True(ranOnLoop);
                LoopExceptionContext error = SingleError();
                Assert.Contains("libuv TCP read callback", error.Message);
                Assert.Same(thrown, error.Exception);

                // This side's read ends with an IOException that carries the callback's exception (an abort: the
                // bytes that came with it are dropped), and so do later reads.
                var aborted = Assert.Throws<IOException>(() => pending.GetAwaiter().GetResult());
                Assert.Same(thrown, aborted.InnerException);
                Assert.Same(aborted, await Assert.ThrowsAsync<IOException>(() => server.Input.ReadAsync().AsTask().WaitAsync(TestTimeout)));
                Assert.True(server.ConnectionClosed.IsCancellationRequested);
            }

            await AssertTheLoopGoesOnAsync(loop);
        });
    }

    [Fact]
    public void An_exception_in_the_alloc_callback_reaches_the_handler_and_ends_only_that_connections_input()
    {
        ExpectErrors = true;
        RunLoop(async loop =>
        {
            var (listener, client, server) = await ConnectPairAsync(loop);
            await using (listener)
            await using (client)
            await using (server)
            {
                // Complete the input pipe's writer behind the transport's back (no application can): libuv's next
                // alloc callback asks it for memory, and GetMemory throws.
                var input = (Pipe)typeof(LoopConnection).GetField("_input", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(server)!;
                input.Writer.Complete();

                await client.Output.WriteAsync("ping"u8.ToArray()).AsTask().WaitAsync(TestTimeout);

                // The alloc callback gave libuv no buffer, so libuv reports UV_ENOBUFS to the read callback, which
                // ends the input: receiving stops (no retry loop of failing allocs).
                await WhenCancelled(server.ConnectionClosed).WaitAsync(TestTimeout);
                LoopExceptionContext error = SingleError();
                Assert.Contains("libuv TCP alloc callback", error.Message);
                Assert.IsType<InvalidOperationException>(error.Exception);
                ReadResult end = await server.Input.ReadAsync().AsTask().WaitAsync(TestTimeout);
                Assert.True(end.IsCompleted);
                server.Input.AdvanceTo(end.Buffer.End);

                // The send side is untouched: the server can still answer.
                await server.Output.WriteAsync("pong"u8.ToArray()).AsTask().WaitAsync(TestTimeout);
                Assert.Equal("pong"u8.ToArray(), await ReadExactlyAsync(client.Input, 4).WaitAsync(TestTimeout));
            }

            await AssertTheLoopGoesOnAsync(loop);
        });
    }
}
