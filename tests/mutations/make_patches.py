# Generates tests/mutations/*.patch from (name, file, find, replace, filter, why). Run from the repo root.
import subprocess, os, sys, tempfile, shutil
M = [
("ready-queue-grow-order", "src/EventLoop/Internal/ReadyQueue.cs",
 "        Array.Copy(_items, _head, bigger, 0, firstPart);\n        Array.Copy(_items, 0, bigger, firstPart, _count - firstPart);",
 "        Array.Copy(_items, 0, bigger, 0, _count - firstPart);\n        Array.Copy(_items, _head, bigger, _count - firstPart, firstPart);",
 "EngineTests|SchedulingTests", "the ready queue grows with its two halves in the wrong order"),
("timer-heap-no-fifo-tiebreak", "src/EventLoop/Internal/TimerHeap.cs",
 "a.Due < b.Due || (a.Due == b.Due && a.Sequence < b.Sequence)",
 "a.Due < b.Due || (a.Due == b.Due && a.Sequence > b.Sequence)",
 "TimerTests", "timers with equal deadlines fire in reverse order"),
("timer-change-superseded-applied", "src/EventLoop/LoopTimeProvider.cs",
 "            if (generation != Volatile.Read(ref _generation) || loop.IsClosed)\n            {\n                return; // a newer change (or a dispose) supersedes this one",
 "            if (loop.IsClosed)\n            {\n                return; // a newer change (or a dispose) supersedes this one",
 "EngineTests|TimerTests", "a timer change superseded by a later one is still applied"),
("timer-zero-period-repeats", "src/EventLoop/LoopTimeProvider.cs",
 "_period != Timeout.InfiniteTimeSpan && _period != TimeSpan.Zero && !loop.IsShuttingDown",
 "_period != Timeout.InfiniteTimeSpan && !loop.IsShuttingDown",
 "ReliabilityTests", "a TimeProvider timer with period zero fires continuously"),
("sleep-cancel-keeps-timer", "src/EventLoop/Internal/LoopSleep.cs",
 "        _timer.Cancel();\n        _loop.UnregisterShutdown(this);",
 "        _loop.UnregisterShutdown(this);",
 "EngineTests|TimerTests", "a cancelled DelayAsync leaves its timer in the heap"),
("ready-cancel-ignored", "src/EventLoop/Loop.Engine.cs",
 "        bool cancelled = _cancelledReady!.Remove(_ready.Dequeued - 1);",
 "        bool cancelled = _cancelledReady!.Remove(_ready.Dequeued - 1) && false;",
 "SchedulingTests", "cancelling a CallSoon handle does not stop the callback"),
("callback-exception-swallowed", "src/EventLoop/Loop.Engine.cs",
 "            catch (Exception ex)\n            {\n                ReportException(\"Exception in callback\", ex, null);\n            }",
 "            catch (Exception)\n            {\n            }",
 "RunTests|LeakCheckTests", "an exception thrown by a callback is swallowed instead of reported"),
("native-callback-exception-swallowed", "src/EventLoop.Libuv/Internal/LibuvLoop.cs",
 "            if (loop is not null)\n            {\n                loop.ReportException($\"Exception in the libuv {phase} callback\", ex);\n            }",
 "            if (loop is not null)\n            {\n            }",
 "Libuv", "an exception thrown in a libuv native callback is swallowed instead of reported"),
("libuv-graceful-close-skips-uv_close", "src/EventLoop.Libuv/Internal/Tcp/LibuvTcpConnection.cs",
 "        if (!reset || Uv.TcpCloseReset(_handle, &OnHandleClosed) != 0)\n        {\n            Uv.Close(_handle, &OnHandleClosed);\n        }",
 "        if (reset && Uv.TcpCloseReset(_handle, &OnHandleClosed) != 0)\n        {\n            Uv.Close(_handle, &OnHandleClosed);\n        }\n\n        if (!reset)\n        {\n            _loop.PendingIo--;\n            _handleClosed.TrySetResult();\n        }",
 "LibuvTcpTests|LibuvLeakCheckTests|LibuvReliabilityTests", "a graceful libuv close never calls uv_close (the leak check must catch it)"),
("libuv-no-read-resume-after-backpressure", "src/EventLoop.Libuv/Internal/Tcp/LibuvTcpConnection.cs",
 "            CompleteInput(null);\n            return;\n        }\n\n        StartReading();",
 "            CompleteInput(null);\n            return;\n        }",
 "LibuvTcpTests|LibuvStormTests", "libuv never resumes reading after backpressure"),
("libuv-partial-write-resent-from-start", "src/EventLoop.Libuv/Internal/Tcp/LibuvTcpConnection.cs",
 "        int first = 0;\n        while (written > 0)",
 "        int first = 0;\n        written = 0;\n        while (written > 0)",
 "LibuvTcpTests|LibuvStormTests", "the remainder of a partial uv_try_write is re-sent from the buffer start"),
("libuv-reset-after-data-is-eof", "src/EventLoop.Libuv/Internal/Tcp/LibuvTcpConnection.cs",
 "            int pending = Libc.TakePendingSocketError(Uv.Fileno(_handle));",
 "            int pending = 0;",
 "LibuvStormTests|LibuvMemoryTests|LibuvTcpTests", "a peer reset after data reads as a clean end of stream on libuv"),
("dispose-off-loop-no-hop", "src/EventLoop/Transports/LoopConnection.cs",
 "        if (!_loop.IsOnLoopThread)\n        {\n            return LoopHop.RunOnLoopAsync(_loop, this, static c => c.DisposeAsync());\n        }\n\n        _disposing ??=",
 "        _disposing ??=",
 "ReliabilityTests|CrashTests", "DisposeAsync from another thread closes the connection on the calling thread"),
("post-race-not-taken-back", "src/EventLoop/Loop.Engine.cs",
 "        return _state < (int)LoopState.Closing || !TakeBackAfterClose(callback);",
 "        return true;",
 "ReliabilityTests", "a post racing the loop's close is neither run nor refused"),
("executor-result-lost-at-close", "src/EventLoop/Internal/ExecutorJob.cs",
 "        if (!loop.TryPost(this))\n        {\n            Complete(); // the loop closed while we worked: complete here rather than lose the result\n        }",
 "        loop.TryPost(this);",
 "ReliabilityTests", "RunInExecutor work that finishes after the loop closed never completes its task"),
("blocking-check-ignores-libuv-io", "src/EventLoop.Libuv/Internal/LibuvLoop.cs",
 "    private protected override bool HasReadyIo()\n    {",
 "    private protected override bool HasReadyIo() => false;\n\n    private bool HasReadyIoUnused()\n    {",
 "LibuvReliabilityTests", "blocking the libuv loop thread on I/O only it can run hangs instead of throwing"),
("managed-accept-ends-on-emfile", "src/EventLoop/Transports/Sockets/SocketListener.cs",
 "            catch (SocketException ex) when (!_disposed && IsTransient(ex.SocketErrorCode, out bool exhausted))",
 "            catch (SocketException ex) when (!_disposed && IsTransient(ex.SocketErrorCode, out bool exhausted) && !exhausted)",
 "ManagedCrashTests", "one EMFILE ends the managed accept loop for good"),
("managed-connect-dns-unsupported", "src/EventLoop/Transports/Sockets/SocketListener.cs",
 "        TcpConnect.ConnectAsync(endpoint, (Loop: loop, Options: options),",
 "        TcpConnect.ConnectAsync(endpoint is DnsEndPoint ? new IPEndPoint(IPAddress.Any, 0) : endpoint, (Loop: loop, Options: options),",
 "ManagedReliabilityTests", "a DnsEndPoint connect on the managed loop does not resolve the name"),
 ("epoll-edge-end-of-stream-lost", "src/EventLoop/Managed/Epoll/EpollConnection.cs",
 "            _peerDone = true;",
 "            _peerDone = false;",
 "EpollPollerTests|ManagedTcpTests|ManagedStormTests", "the managed poller stops at a short read although the edge also brought the end of stream or a reset"),
("epoll-no-read-after-backpressure", "src/EventLoop/Managed/Epoll/EpollConnection.cs",
 "            CompleteInput(null);\n            return;\n        }\n\n        ReadAvailable();",
 "            CompleteInput(null);\n            return;\n        }",
 "ManagedTcpTests|ManagedStormTests", "the managed poller never reads again after backpressure (edge-triggered: no new edge for bytes already waiting)"),
 ("reset-after-failed-send-reads-as-eof", "src/EventLoop/Transports/LoopConnection.cs",
 "        _resetSeen && !_disposed && !_aborted ? new ConnectionResetException",
 "        _resetSeen && _disposed && !_aborted ? new ConnectionResetException",
 "TcpWriteErrorTests", "after a send met a reset, the read side reports a clean end of stream"),
("shutdown-send-hides-send-failure", "src/EventLoop/Transports/LoopConnection.cs",
 "        if (_sendError is { } error && !_aborted)",
 "        if (_sendError is { } error && _aborted)",
 "TcpWriteErrorTests", "ShutdownSendAsync completes cleanly although what was written could not be sent"),
# Numbered explicitly (a leading number): each branch owns a range, so merges keep every patch's number.
(90, "context-post-to-thread-pool", "src/EventLoop/LoopSynchronizationContext.cs",
 "        _loop.Post(d, state);",
 "        ThreadPool.UnsafeQueueUserWorkItem(s => d(s), state, preferLocal: false);",
 "DbTests", "the loop's SynchronizationContext runs posted continuations on the thread pool (drivers' completions land off the loop)"),
(91, "blocking-check-never-throws", "src/EventLoop/LoopSynchronizationContext.cs",
 "            if (Stopwatch.GetElapsedTime(start) >= limit && _loop.HasPendingWork())",
 "            if (Stopwatch.GetElapsedTime(start) >= limit && _loop.HasPendingWork() && limit < TimeSpan.Zero)",
 "DbTests", "a blocking wait on the loop thread never throws (Npgsql's synchronous pool wait deadlocks)"),
]
root = os.getcwd()
out = os.path.join(root, "tests/mutations")
for f in os.listdir(out):
    if f.endswith(".patch"): os.remove(os.path.join(out, f))
for i, spec in enumerate(M, 1):
    if isinstance(spec[0], int): i, spec = spec[0], spec[1:]
    (name, path, find, repl, filt, why) = spec
    src = open(path).read()
    if src.count(find) != 1: sys.exit(f"{name}: find text matches {src.count(find)} times in {path}")
    tmp = tempfile.mkdtemp()
    a = os.path.join(tmp, "a", path); b = os.path.join(tmp, "b", path)
    os.makedirs(os.path.dirname(a)); os.makedirs(os.path.dirname(b))
    open(a, "w").write(src); open(b, "w").write(src.replace(find, repl))
    diff = subprocess.run(["diff", "-u", "--label", "a/" + path, "--label", "b/" + path, a, b], capture_output=True, text=True).stdout
    shutil.rmtree(tmp)
    header = f"# mutation: {why}\n# tests: {filt}\n"
    open(os.path.join(out, f"{i:02d}-{name}.patch"), "w").write(header + diff)
print(len(M), "patches")
