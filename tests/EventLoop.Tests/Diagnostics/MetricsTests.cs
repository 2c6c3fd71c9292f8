using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using EventLoop.Diagnostics;

namespace EventLoop.Tests.Diagnostics;

/// <summary>
/// The <c>EventLoop</c> meter: a <see cref="MeterListener"/> sees every instrument move for the loop under test (other
/// tests' loops run meanwhile; measurements are told apart by the <c>eventloop.loop</c> tag).
/// </summary>
public abstract class MetricsTests : LoopTestBase
{
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly int _loopId;

        public Recorder(int loopId)
        {
            _loopId = loopId;
            _ = LoopMetrics.Meter; // the instruments exist before the listener starts
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == LoopMetrics.MeterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
            _listener.Start();
        }

        public ConcurrentDictionary<string, ConcurrentQueue<double>> Seen { get; } = new();

        private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "eventloop.loop" && tag.Value is int id && id == _loopId)
                {
                    Seen.GetOrAdd(instrument.Name, _ => new()).Enqueue(value);
                }
            }
        }

        /// <summary>Takes a reading of every observable instrument and returns this loop's values by name.</summary>
        public Dictionary<string, double> Read()
        {
            Seen.Clear();
            _listener.RecordObservableInstruments();
            return Seen.ToDictionary(pair => pair.Key, pair => pair.Value.Last());
        }

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public void A_meter_listener_sees_every_instrument_move()
    {
        LoopOptions options = CreateOptions();
        options.SlowCallbackThreshold = TimeSpan.FromMilliseconds(5);
        RunLoop(async loop =>
        {
            using var recorder = new Recorder(loop.MetricsId);
            Dictionary<string, double> before = recorder.Read();
            Assert.Equal(0, before["eventloop.connections.open"]);
            Assert.Equal(0, before["eventloop.bytes.read"]);
            Assert.Equal(0, before["eventloop.callbacks.slow"]);

            // Ready-queue depth: read while ten callbacks wait.
            var depthSeen = new TaskCompletionSource<double>();
            loop.CallSoon(() =>
            {
                for (int i = 0; i < 10; i++)
                {
                    loop.CallSoon(static () => { });
                }

                depthSeen.SetResult(recorder.Read()["eventloop.ready_queue.depth"]);
            });
            Assert.True(await depthSeen.Task >= 10);

            // Timer lag: a timer fires, its lateness is recorded.
            await loop.DelayAsync(TimeSpan.FromMilliseconds(2));
            Assert.True(recorder.Seen.TryGetValue("eventloop.timer.lag", out var lags) && lags.All(lag => lag >= 0), "no timer lag recorded");

            // A slow callback (the work itself is the blocking: that is what the metric counts).
            var slowRan = new TaskCompletionSource();
            loop.CallSoon(() =>
            {
                var spin = Stopwatch.StartNew();
                while (spin.ElapsedMilliseconds < 30)
                {
                }

                slowRan.SetResult();
            });
            await slowRan.Task;
            await Task.Yield(); // the batch that ran it has counted it

            // Connections and bytes: two ends on this loop, 1,000 bytes each way.
            await using (ConnectionListener listener = await loop.ListenTcpAsync(TestPipes.AnyLoopbackPort))
            {
                Connection client = await loop.ConnectTcpAsync(listener.LocalEndPoint);
                Connection server = await listener.AcceptAsync();
                Assert.Equal(2, recorder.Read()["eventloop.connections.open"]);
                await client.Output.WriteAsync(new byte[1000]);
                await TestPipes.ReadExactlyAsync(server.Input, 1000).WaitAsync(TestPipes.TestTimeout);
                await server.Output.WriteAsync(new byte[1000]);
                await TestPipes.ReadExactlyAsync(client.Input, 1000).WaitAsync(TestPipes.TestTimeout);
                await client.DisposeAsync();
                await server.DisposeAsync();
            }

            Dictionary<string, double> after = recorder.Read();
            Assert.True(after["eventloop.callbacks"] > before["eventloop.callbacks"] + 10, "callbacks did not move");
            Assert.Equal(2000, after["eventloop.bytes.read"]);
            Assert.Equal(2000, after["eventloop.bytes.written"]);
            Assert.Equal(0, after["eventloop.connections.open"]);
            Assert.True(after["eventloop.callbacks.slow"] >= 1, "the slow callback was not counted");
        }, options);
    }

    [Fact]
    public void Nothing_is_measured_for_a_loop_that_is_not_running()
    {
        using Loop loop = CreateLoop();
        using var recorder = new Recorder(loop.MetricsId);
        Assert.Empty(recorder.Read());
    }
}

public sealed class ManagedMetricsTests : MetricsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class ManagedSocketsMetricsTests : MetricsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.ManagedSockets();
}

public sealed class LibuvMetricsTests : MetricsTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
