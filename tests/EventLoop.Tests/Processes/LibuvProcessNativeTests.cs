using EventLoop.Libuv.Internal;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Processes;

/// <summary>
/// What only the libuv loop's subprocesses have: their pipes are libuv handles (<c>uv_pipe_t</c> over the parent's
/// socket-pair ends; the child is spawned with <c>posix_spawn</c>, so there is no <c>uv_process_t</c>), counted and
/// closed, and each pipe is one descriptor in this process, closed with its handle.
/// </summary>
[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class LibuvProcessNativeTests : LoopTestBase
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    /// <summary>This process's open sockets (<c>/proc/self/fd</c>); the collection runs alone, so only this test opens any meanwhile.</summary>
    private static int OpenSockets()
    {
        int count = 0;
        foreach (string path in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(path).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true)
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // The directory's own descriptor, closed by the time it is read.
            }
        }

        return count;
    }

    [Fact]
    public void A_child_with_three_pipes_holds_three_pipe_handles_and_three_sockets_and_closes_them_all()
    {
        var loop = (LibuvLoop)CreateLoop();
        int baseline = 0, whileOpen = 0, afterFailure = 0;
        int socketsBefore = 0, socketsWhileOpen = 0, socketsAfter = 0;
        loop.RunUntilComplete(async () =>
        {
            baseline = loop.OpenNativeHandleCount;
            socketsBefore = OpenSockets();
            var options = new LoopProcessOptions { StandardInput = ProcessStdio.Pipe, StandardOutput = ProcessStdio.Pipe, StandardError = ProcessStdio.Pipe };
            await using (LoopProcess process = loop.StartProcess("cat", null, options))
            {
                whileOpen = loop.OpenNativeHandleCount;
                socketsWhileOpen = OpenSockets(); // the parent's three ends; the child's were closed here after the spawn
                await process.StandardInput!.CompleteAsync();
                await process.WaitForExitAsync().WaitAsync(TestTimeout);
            }

            // A spawn posix_spawn refuses (EACCES: a file that is not executable) closes the socket pairs it made.
            string file = Path.GetTempFileName();
            try
            {
                Assert.Equal(13, Assert.Throws<System.ComponentModel.Win32Exception>(() => loop.StartProcess(file, null, options)).NativeErrorCode);
            }
            finally
            {
                File.Delete(file);
            }

            // The close callbacks run in libuv's closing phase, after the check phase where a timer's continuation runs.
            for (int i = 0; i < 3; i++)
            {
                await loop.DelayAsync(TimeSpan.FromMilliseconds(1));
            }

            afterFailure = loop.OpenNativeHandleCount;
            socketsAfter = OpenSockets();
        });

        Assert.Equal(baseline + 3, whileOpen); // three uv_pipe_t, no uv_process_t
        Assert.Equal(baseline, afterFailure);
        Assert.Equal(socketsBefore + 3, socketsWhileOpen);
        Assert.Equal(socketsBefore, socketsAfter);
        AssertClosedCleanly(loop);
    }
}
