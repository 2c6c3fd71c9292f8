using System.Runtime.InteropServices;
using EventLoop.Libuv.Internal;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Tests.Processes;

/// <summary>What only the libuv loop's subprocesses have: the structs libuv reads, native handles counted and closed.</summary>
[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class LibuvProcessNativeTests : LoopTestBase
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    [Fact]
    public void The_spawn_structs_match_libuv_1_x_on_64_bit_Linux()
    {
        // uv.h of libuv 1.44 (x86-64): uv_process_options_t is 64 bytes with these offsets; uv_stdio_container_t 16,
        // its union at 8. Checked against the header with offsetof, and stable across libuv 1.x.
        Assert.Equal(64, System.Runtime.CompilerServices.Unsafe.SizeOf<Uv.ProcessOptions>());
        Assert.Equal(16, System.Runtime.CompilerServices.Unsafe.SizeOf<Uv.StdioContainer>());
        Assert.Equal(8, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.File)));
        Assert.Equal(16, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Args)));
        Assert.Equal(24, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Env)));
        Assert.Equal(32, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Cwd)));
        Assert.Equal(40, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Flags)));
        Assert.Equal(44, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.StdioCount)));
        Assert.Equal(48, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Stdio)));
        Assert.Equal(56, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Uid)));
        Assert.Equal(60, (int)Marshal.OffsetOf<Uv.ProcessOptions>(nameof(Uv.ProcessOptions.Gid)));
        Assert.True(Uv.HandleSize(Uv.HandleType.Process) >= 112, "uv_process_t is smaller than its public fields"); // 136 in 1.44
    }

    [Fact]
    public void A_child_with_three_pipes_holds_four_handles_and_closes_them_all()
    {
        var loop = (LibuvLoop)CreateLoop();
        int baseline = 0, whileOpen = 0, afterFailure = 0;
        loop.RunUntilComplete(async () =>
        {
            baseline = loop.OpenNativeHandleCount;
            var options = new LoopProcessOptions { StandardInput = ProcessStdio.Pipe, StandardOutput = ProcessStdio.Pipe, StandardError = ProcessStdio.Pipe };
            await using (LoopProcess process = loop.StartProcess("cat", null, options))
            {
                whileOpen = loop.OpenNativeHandleCount;
                await process.StandardInput!.CompleteAsync();
                await process.WaitForExitAsync().WaitAsync(TestPipes.TestTimeout);
            }

            // A spawn libuv refuses (EACCES: a file that is not executable) closes the handles it made.
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
        });

        Assert.Equal(baseline + 4, whileOpen); // uv_process_t and three uv_pipe_t
        Assert.Equal(baseline, afterFailure);
        AssertClosedCleanly(loop);
    }
}
