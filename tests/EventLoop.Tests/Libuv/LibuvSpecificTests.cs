using EventLoop.Libuv;
using EventLoop.Libuv.Internal;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Tests.Libuv;

/// <summary>What only the libuv policy has: the native library, native handles, the close protocol.</summary>
public sealed class LibuvSpecificTests : LoopTestBase
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    [Fact]
    public void TCP_on_the_libuv_loop_travels_through_libuv_tcp_handles_and_closes_them()
    {
        var loop = (LibuvLoop)CreateLoop();
        int baseline = loop.OpenNativeHandleCount;
        int whileOpen = 0;
        string reply = "";
        loop.RunUntilComplete(async () =>
        {
            await using ConnectionListener listener = await loop.ListenTcpAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            await using Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
            await using Connection server = await listener.AcceptAsync();
            Assert.IsType<LibuvTcpConnection>(client);
            Assert.IsType<LibuvTcpConnection>(server);
            Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
            whileOpen = loop.OpenNativeHandleCount;
            await client.Output.WriteAsync("ping"u8.ToArray());
            System.IO.Pipelines.ReadResult read = await server.Input.ReadAtLeastAsync(4);
            reply = System.Text.Encoding.ASCII.GetString(System.Buffers.BuffersExtensions.ToArray(read.Buffer));
            server.Input.AdvanceTo(read.Buffer.End);
        });
        Assert.Equal("ping", reply);
        Assert.Equal(baseline + 3, whileOpen); // listener, client, server: three uv_tcp_t
        Assert.Empty(loop.LeakedHandles);
        Assert.Equal(0, loop.OpenNativeHandleCount);
    }

    [Fact]
    public void The_installed_libuv_is_version_1_and_new_enough()
    {
        string version = LibuvLoopPolicy.LibuvVersion;
        Assert.StartsWith("1.", version);
        Assert.True(int.Parse(version.Split('.')[1]) >= 34, version);
    }

    [Fact]
    public void A_handle_left_open_is_named_by_the_leak_check_and_still_closed()
    {
        var errors = new List<LoopExceptionContext>();
        LoopOptions options = CreateOptions();
        options.ExceptionHandler = errors.Add;
        var loop = (LibuvLoop)CreateLoop(options);
        loop.RunUntilComplete(() =>
        {
            IntPtr timer = loop.NewHandle(Uv.HandleType.Timer);
            Uv.TimerInit(loop.NativeLoop, timer);
            loop.Adopt(timer); // opened and never closed: a leak
            return Task.CompletedTask;
        });
        Assert.Equal(["timer"], loop.LeakedHandles);
        Assert.Contains(errors, e => e.Message.Contains("timer") && e.Message.Contains("still open"));
        Assert.Equal(0, loop.OpenNativeHandleCount);
    }

    [Fact]
    public void Thousands_of_loops_and_their_handles_open_and_close_cleanly()
    {
        for (int i = 0; i < 1000; i++)
        {
            Loop loop = CreateLoop();
            Assert.Equal(5, loop.OpenNativeHandleCount);
            if (i % 2 == 0)
            {
                loop.RunUntilComplete(() => Task.CompletedTask);
            }

            loop.Dispose();
            Assert.Equal(0, loop.OpenNativeHandleCount);
        }
    }

    [Fact]
    public void A_loop_that_was_never_run_nor_disposed_is_freed_by_the_finalizer()
    {
        WeakReference weak = CreateAndDrop();
        for (int i = 0; i < 5 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.False(weak.IsAlive);

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        WeakReference CreateAndDrop() => new(CreateLoop());
    }

    [Fact]
    public void A_callback_that_throws_inside_uv_run_reaches_the_handler_and_the_loop_goes_on()
    {
        var errors = new List<LoopExceptionContext>();
        LoopOptions options = CreateOptions();
        options.ExceptionHandler = errors.Add;
        int result = RunLoop(async loop =>
        {
            for (int i = 0; i < 100; i++)
            {
                loop.CallSoon(() => throw new InvalidOperationException("boom"));
            }

            await loop.DelayAsync(TimeSpan.FromMilliseconds(2)); // through the libuv timer and poll
            return 1;
        }, options);
        Assert.Equal(1, result);
        Assert.Equal(100, errors.Count);
    }
}
