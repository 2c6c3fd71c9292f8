using System.Buffers;
using System.ComponentModel;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Processes;

/// <summary>
/// Subprocesses (uvloop's test_process): exit codes and terminating signals, arguments passed intact, environment and
/// working directory, the standard streams as loop pipes, inherited or discarded, the error paths (a missing program, a
/// bad directory, off the loop thread, a closed loop), a 64 MiB echo through <c>cat</c>, a child that floods a pipe
/// nobody reads, one that outlives its pipes, a thousand children, cancellation, dispose and the loop's shutdown with
/// a child running, and .NET's own <see cref="System.Diagnostics.Process"/> still working beside the loop's children.
/// </summary>
public abstract class ProcessTests : LoopTestBase
{
    private static LoopProcessOptions Pipes(bool stdin = false, bool stdout = true, bool stderr = false) => new()
    {
        StandardInput = stdin ? ProcessStdio.Pipe : ProcessStdio.Discard,
        StandardOutput = stdout ? ProcessStdio.Pipe : ProcessStdio.Discard,
        StandardError = stderr ? ProcessStdio.Pipe : ProcessStdio.Inherit,
    };

    private static async Task<string> ReadAllTextAsync(PipeReader reader) =>
        Encoding.UTF8.GetString(await ReadToEndAsync(reader).WaitAsync(TestTimeout));

    [Fact]
    public void Exit_code_is_reported()
    {
        RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartProcess("/bin/sh", ["-c", "exit 3"]);
            Assert.True(process.Id > 0);
            ProcessExitStatus status = await process.WaitForExitAsync().WaitAsync(TestTimeout);
            Assert.Equal(3, status.ExitCode);
            Assert.Null(status.TerminatingSignal);
            Assert.Equal(3, status.ReturnCode);
            Assert.False(status.Succeeded);
            Assert.True(process.HasExited);
        });
    }

    [Theory]
    [InlineData(9)]
    [InlineData(15)]
    public void A_child_killed_by_a_signal_reports_the_signal(int signal)
    {
        RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartProcess("sleep", ["30"]);
            process.SendSignal(signal);
            ProcessExitStatus status = await process.WaitForExitAsync().WaitAsync(TestTimeout);
            Assert.Equal(signal, status.TerminatingSignal);
            Assert.Equal(128 + signal, status.ExitCode);
            Assert.Equal(-signal, status.ReturnCode);
        });
    }

    [Fact]
    public void Kill_kills_and_is_a_no_op_after_the_exit()
    {
        RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartProcess("sleep", ["30"]);
            process.Kill();
            Assert.Equal(9, (await process.WaitForExitAsync().WaitAsync(TestTimeout)).TerminatingSignal);
            process.Kill();
            process.SendSignal(15);
            Assert.Throws<ArgumentOutOfRangeException>(() => process.SendSignal(0));
        });
    }

    [Fact]
    public void Arguments_with_spaces_quotes_and_empty_ones_arrive_intact()
    {
        string[] arguments = ["a b", "c\"d", "'e'", "", "$HOME", "ü\\n", "  "];
        string text = RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartProcess("printf", ["[%s]", .. arguments], Pipes());
            string output = await ReadAllTextAsync(process.StandardOutput!);
            Assert.Equal(0, (await process.WaitForExitAsync().WaitAsync(TestTimeout)).ExitCode);
            return output;
        });

        Assert.Equal(string.Concat(arguments.Select(a => $"[{a}]")), text);
    }

    [Fact]
    public void Environment_overrides_removals_and_working_directory_reach_the_child()
    {
        string directory = Directory.CreateTempSubdirectory("evl-proc-").FullName;
        try
        {
            var options = Pipes();
            options.WorkingDirectory = directory;
            options.Environment["EVL_TEST_VALUE"] = "x y=z";
            options.Environment["HOME"] = null;
            string text = RunLoop(async loop =>
            {
                await using LoopProcess process = loop.StartShellProcess("printf '%s|%s|%s|%s' \"$EVL_TEST_VALUE\" \"${HOME-unset}\" \"$(pwd)\" \"${PATH:+path}\"", options);
                string output = await ReadAllTextAsync(process.StandardOutput!);
                await process.WaitForExitAsync().WaitAsync(TestTimeout);
                return output;
            });

            Assert.Equal($"x y=z|unset|{directory}|path", text);

            var bare = Pipes();
            bare.InheritEnvironment = false;
            bare.Environment["ONLY"] = "1";
            string env = RunLoop(async loop =>
            {
                await using LoopProcess process = loop.StartProcess("/usr/bin/env", null, bare);
                string output = await ReadAllTextAsync(process.StandardOutput!);
                await process.WaitForExitAsync().WaitAsync(TestTimeout);
                return output;
            });

            Assert.Equal("ONLY=1\n", env);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Stdout_and_stderr_are_separate_pipes_and_discard_is_dev_null()
    {
        RunLoop(async loop =>
        {
            var options = new LoopProcessOptions { StandardOutput = ProcessStdio.Discard, StandardError = ProcessStdio.Pipe, StandardInput = ProcessStdio.Discard };
            await using LoopProcess process = loop.StartShellProcess("echo out; echo err >&2; cat; echo done >&2", options);
            Assert.Null(process.StandardOutput);
            Assert.Null(process.StandardInput);
            Assert.Equal("err\ndone\n", await ReadAllTextAsync(process.StandardError!));
            Assert.True((await process.WaitForExitAsync().WaitAsync(TestTimeout)).Succeeded);
        });
    }

    [Fact]
    public void A_missing_program_throws_Win32Exception_naming_it()
    {
        RunLoop(loop =>
        {
            var ex = Assert.Throws<Win32Exception>(() => loop.StartProcess("evl-no-such-program-42"));
            Assert.Equal(2, ex.NativeErrorCode);
            Assert.Contains("evl-no-such-program-42", ex.Message);
            var path = Assert.Throws<Win32Exception>(() => loop.StartProcess("/nonexistent/evl-prog"));
            Assert.Equal(2, path.NativeErrorCode);
            Assert.Contains("/nonexistent/evl-prog", path.Message);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void A_bad_working_directory_or_a_file_that_is_not_executable_throws_Win32Exception()
    {
        string file = Path.GetTempFileName(); // mode 0600: not executable
        try
        {
            RunLoop(loop =>
            {
                var ex = Assert.Throws<Win32Exception>(() => loop.StartProcess("/bin/true", null, new LoopProcessOptions { WorkingDirectory = "/nonexistent/evl-dir" }));
                Assert.Equal(2, ex.NativeErrorCode);
                Assert.Contains("/nonexistent/evl-dir", ex.Message);
                var denied = Assert.Throws<Win32Exception>(() => loop.StartProcess(file));
                Assert.Equal(13, denied.NativeErrorCode);
                Assert.Contains(file, denied.Message);
                Assert.Throws<ArgumentException>(() => loop.StartProcess(""));
                Assert.Throws<ArgumentException>(() => loop.StartProcess("/bin/echo", ["a\0b"]));
                return Task.CompletedTask;
            });
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_spawn_refused_beside_a_running_child_leaves_that_childs_exit_seen()
    {
        string file = Path.GetTempFileName(); // mode 0600: posix_spawn refuses it (EACCES) after the loop listened for SIGCHLD
        try
        {
            RunLoop(async loop =>
            {
                await using LoopProcess cat = loop.StartProcess("cat", null, Pipes(stdin: true, stdout: true));
                Assert.Equal(13, Assert.Throws<Win32Exception>(() => loop.StartProcess(file, null, Pipes(stdin: true, stdout: true, stderr: true))).NativeErrorCode);
                await cat.StandardInput!.CompleteAsync(); // cat exits: its SIGCHLD must still reach this loop
                Assert.Equal(0, (await cat.WaitForExitAsync().WaitAsync(TestTimeout)).ExitCode);
                Assert.Empty(await ReadToEndAsync(cat.StandardOutput!).WaitAsync(TestTimeout));
            });
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Off_the_loop_thread_and_on_a_closed_loop_StartProcess_throws()
    {
        Loop? closed = null;
        RunLoop(async loop =>
        {
            closed = loop;
            var off = await Task.Run(() => Assert.Throws<InvalidOperationException>(() => loop.StartProcess("/bin/true"))).WaitAsync(TestTimeout);
            Assert.Contains("thread", off.Message);
        });

        Assert.Throws<InvalidOperationException>(() => closed!.StartProcess("/bin/true"));
    }

    [Fact]
    public void Sixty_four_MiB_echo_through_cat_arrives_intact()
    {
        const int Size = 64 * 1024 * 1024;
        RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartProcess("cat", null, Pipes(stdin: true));
            byte[] chunk = RandomPayload(256 * 1024, seed: 12);
            using var sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            Task writer = WriteAsync();
            long total = 0;
            PipeReader output = process.StandardOutput!;
            while (true)
            {
                ReadResult result = await output.ReadAsync().AsTask().WaitAsync(TestTimeout);
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    received.AppendData(segment.Span);
                }

                total += result.Buffer.Length;
                output.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }

            await writer.WaitAsync(TestTimeout);
            Assert.Equal(Size, total);
            Assert.Equal(sent.GetHashAndReset(), received.GetHashAndReset());
            Assert.True((await process.WaitForExitAsync().WaitAsync(TestTimeout)).Succeeded);

            async Task WriteAsync()
            {
                for (int written = 0; written < Size; written += chunk.Length)
                {
                    chunk[0] = (byte)(written >> 18); // every chunk differs
                    sent.AppendData(chunk);
                    await process.StandardInput!.WriteAsync(chunk);
                }

                await process.StandardInput!.CompleteAsync();
            }
        });
    }

    [Fact]
    public void A_child_flooding_stdout_while_nobody_reads_waits_then_everything_is_read()
    {
        const int Size = 16 * 1024 * 1024;
        RunLoop(async loop =>
        {
            var options = Pipes();
            options.PipePauseThreshold = 64 * 1024;
            await using LoopProcess process = loop.StartProcess("head", ["-c", Size.ToString(System.Globalization.CultureInfo.InvariantCulture), "/dev/zero"], options);

            // Nobody reads for a while: the loop stops reading at the threshold and the child blocks in write (it
            // cannot have written 16 MiB into a 64 KiB pipe plus the socket buffers), while the loop goes on.
            for (int i = 0; i < 20; i++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), loop.TimeProvider);
            }

            Assert.False(process.HasExited);
            long total = 0;
            while (true)
            {
                ReadResult result = await process.StandardOutput!.ReadAsync().AsTask().WaitAsync(TestTimeout);
                total += result.Buffer.Length;
                Assert.True(result.Buffer.Length <= Size);
                process.StandardOutput.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }

            Assert.Equal(Size, total);
            Assert.True((await process.WaitForExitAsync().WaitAsync(TestTimeout)).Succeeded);
        });
    }

    [Fact]
    public void A_child_that_closes_its_output_and_keeps_running_ends_the_pipe_not_the_wait()
    {
        RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartShellProcess("echo bye; exec >&-; exec sleep 30", Pipes());
            Assert.Equal("bye\n", await ReadAllTextAsync(process.StandardOutput!));
            Assert.False(process.HasExited);
            process.SendSignal(15);
            Assert.Equal(15, (await process.WaitForExitAsync().WaitAsync(TestTimeout)).TerminatingSignal);
        });
    }

    [Fact]
    public void A_thousand_children_fifty_at_a_time_all_exit_with_their_codes()
    {
        RunLoop(async loop =>
        {
            for (int batch = 0; batch < 20; batch++)
            {
                var running = new List<(LoopProcess Process, int Expected)>();
                for (int i = 0; i < 50; i++)
                {
                    int expected = ((batch * 50) + i) % 256;
                    running.Add((loop.StartProcess("/bin/sh", ["-c", $"exit {expected}"]), expected));
                }

                foreach ((LoopProcess process, int expected) in running)
                {
                    Assert.Equal(expected, (await process.WaitForExitAsync().WaitAsync(TestTimeout)).ExitCode);
                    await process.DisposeAsync();
                }
            }
        });
    }

    [Fact]
    public void WaitForExitAsync_is_cancellable_and_the_child_keeps_running()
    {
        RunLoop(async loop =>
        {
            await using LoopProcess process = loop.StartProcess("sleep", ["30"]);
            using var cts = new CancellationTokenSource();
            Task<ProcessExitStatus> wait = process.WaitForExitAsync(cts.Token);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(TestTimeout));
            Assert.False(process.HasExited);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => process.WaitForExitAsync(cts.Token));
        });
    }

    [Fact]
    public void Dispose_with_a_child_running_kills_and_reaps_it_and_closes_its_pipes()
    {
        int pid = 0;
        RunLoop(async loop =>
        {
            LoopProcess process = loop.StartProcess("cat", null, Pipes(stdin: true, stdout: true, stderr: true));
            pid = process.Id;
            await process.StandardInput!.WriteAsync(new byte[] { 1, 2, 3 });
            Assert.Equal(new byte[] { 1, 2, 3 }, await ReadExactlyAsync(process.StandardOutput!, 3).WaitAsync(TestTimeout));
            await process.DisposeAsync().AsTask().WaitAsync(TestTimeout);
            Assert.True(process.HasExited);
            Assert.Equal(9, (await process.WaitForExitAsync()).TerminatingSignal);
            await process.DisposeAsync(); // again: the same close
            process.Kill();               // a no-op
        });

        Assert.False(Directory.Exists($"/proc/{pid}"), "the child was not reaped");
    }

    [Fact]
    public void The_loop_shutdown_kills_and_reaps_children_left_running()
    {
        var pids = new List<int>();
        RunLoop(loop =>
        {
            for (int i = 0; i < 3; i++)
            {
                LoopProcess process = loop.StartProcess("sleep", ["30"], Pipes(stdin: true, stdout: true));
                pids.Add(process.Id);
            }

            return Task.CompletedTask;
        });

        Assert.All(pids, pid => Assert.False(Directory.Exists($"/proc/{pid}"), $"child {pid} was not reaped"));
    }

    [Fact]
    public void Dispose_from_another_thread_hops_to_the_loop()
    {
        RunLoop(async loop =>
        {
            LoopProcess process = loop.StartProcess("sleep", ["30"], Pipes());
            await Task.Run(async () =>
            {
                process.SendSignal(15);
                await process.DisposeAsync();
            }).WaitAsync(TestTimeout);
            Assert.True(process.HasExited);
            Assert.NotNull((await process.WaitForExitAsync()).TerminatingSignal);
        });
    }

    [Fact]
    public async Task DotNet_Process_still_sees_its_children_exit_beside_the_loops_children()
    {
        RunLoop(async loop =>
        {
            await using LoopProcess child = loop.StartProcess("/bin/true");
            await child.WaitForExitAsync().WaitAsync(TestTimeout);
            using var during = System.Diagnostics.Process.Start("/bin/true")!;
            await during.WaitForExitAsync().WaitAsync(TestTimeout);
        });

        // After the loop closed too.
        using var after = System.Diagnostics.Process.Start("/bin/true")!;
        await after.WaitForExitAsync().WaitAsync(TestTimeout);
        Assert.Equal(0, after.ExitCode);
    }
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class ManagedProcessTests : ProcessTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class ManagedSocketsProcessTests : ProcessTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}

[Collection(EventLoop.Tests.Processes.SubprocessCollection.Name)]
public sealed class LibuvProcessTests : ProcessTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
