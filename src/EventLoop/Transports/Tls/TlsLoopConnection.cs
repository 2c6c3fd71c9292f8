using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using EventLoop.Internal;

namespace EventLoop.Transports.Tls;

/// <summary>
/// The pipes of a TLS connection over another connection (TCP, or a STARTTLS upgrade of one): the shared
/// connection core (<see cref="LoopConnection"/>) with an <see cref="SslStream"/> as its transport.
/// <list type="bullet">
/// <item>A receive pump decrypts into the input pipe (<c>SslStream.ReadAsync</c> straight into the pipe's block)
/// and stops reading while the application's side of the input is full: then SslStream stops reading the inner
/// connection, whose input fills and stops reading the socket. Backpressure goes through both layers.</item>
/// <item>A send pump encrypts what the application flushes, in the application's <c>FlushAsync</c> (the pump
/// resumes inline), and hands each application write's records to the inner connection with one flush; while
/// the inner connection's output is full, the pump waits and the application's flushes wait behind it.</item>
/// <item>Half-close sends close_notify and then the inner half-close (FIN); abort aborts the inner connection;
/// the graceful close sends close_notify, stops the receive pump, then disposes the inner connection.</item>
/// </list>
/// Everything runs on the loop thread: the inner pipes complete there, SslStream continues inline where they do,
/// and both pumps check and hop back if a flush from another thread resumed them elsewhere.
/// </summary>
internal sealed class TlsLoopConnection : LoopConnection
{
    private const int MinimumReadSize = 4096;

    /// <summary>
    /// Plaintext decrypted into the input pipe before it is flushed to the application (uvloop reads 256 KiB at a
    /// time), and never more than the input's pause threshold.
    /// </summary>
    private const long MaxUnflushed = 256 * 1024;

    private readonly Connection _inner;
    private readonly long _maxUnflushed;
    private readonly SslStream _ssl;
    private readonly TlsTransportStream _transport;
    private Task _receiving = Task.CompletedTask;
    private bool _sslDisposed;

    /// <summary>Wraps an authenticated <paramref name="ssl"/> over <paramref name="inner"/>; the connection now owns both.</summary>
    internal TlsLoopConnection(Loop loop, Connection inner, SslStream ssl, TlsTransportStream transport, TcpOptions options)
        : base(loop, options, inner.LocalEndPoint, inner.RemoteEndPoint)
    {
        _inner = inner;
        _maxUnflushed = options.InputPauseThreshold > 0 ? Math.Min(MaxUnflushed, options.InputPauseThreshold) : MaxUnflushed;
        _ssl = ssl;
        _transport = transport;
        NegotiatedApplicationProtocol = ssl.NegotiatedApplicationProtocol;
        RemoteCertificate = ssl.RemoteCertificate;
        LocalCertificate = ssl.LocalCertificate;
        SslProtocol = ssl.SslProtocol;
        NegotiatedCipherSuite = ssl.NegotiatedCipherSuite;
        TargetHostName = ssl.TargetHostName;
        IsServer = ssl.IsServer;
    }

    // What the handshake settled, read once: SslStream's own properties are not for after it is disposed.
    internal SslApplicationProtocol NegotiatedApplicationProtocol { get; }

    internal System.Security.Cryptography.X509Certificates.X509Certificate? RemoteCertificate { get; }

    internal System.Security.Cryptography.X509Certificates.X509Certificate? LocalCertificate { get; }

    internal System.Security.Authentication.SslProtocols SslProtocol { get; }

    internal TlsCipherSuite NegotiatedCipherSuite { get; }

    internal string TargetHostName { get; }

    internal bool IsServer { get; }

    /// <summary>The stream SslStream reads and writes (tests look at what an idle connection waits with).</summary>
    internal TlsTransportStream Transport => _transport;

    /// <summary>Starts both pumps. Loop thread.</summary>
    internal void Start()
    {
        _receiving = ReceiveLoopAsync();
        _writing = SendLoopAsync();
    }

    private async Task ReceiveLoopAsync()
    {
        PipeWriter writer = _input.Writer;
        Exception? error = null;
        try
        {
            // Wait for ciphertext with a zero-byte read, so an idle connection holds no block of the pool (a read
            // into the pipe would hold one for as long as the peer is silent).
            ValueTask<int> waiting = _ssl.ReadAsync(Memory<byte>.Empty);
            while (true)
            {
                await waiting.ConfigureAwait(false);
                await BackOnLoop(); // SslStream continued inline on the loop thread, with no context current
                waiting = default;

                // Then decrypt into the pipe every record already here, up to a bound, and hand them to the
                // application in one flush (a 64 KiB message is four records: one wake-up and one reply, not four).
                // A read completes at once unless only part of a record has arrived; the rest is on its way.
                long unflushed = 0;
                bool ended = false;
                while (true)
                {
                    Memory<byte> memory = writer.GetMemory(MinimumReadSize);
                    int received = await _ssl.ReadAsync(memory).ConfigureAwait(false);
                    await BackOnLoop();
                    if (received == 0)
                    {
                        ended = true; // close_notify, or the inner connection's end of stream
                        break;
                    }

                    writer.Advance(received);
                    unflushed += received;
                    waiting = _ssl.ReadAsync(Memory<byte>.Empty); // more here already?
                    if (!waiting.IsCompleted || unflushed >= _maxUnflushed)
                    {
                        break;
                    }

                    waiting.GetAwaiter().GetResult();
                    waiting = default;
                }

                if (unflushed > 0)
                {
                    // While the application has not consumed enough, this waits, and SslStream reads nothing more.
                    FlushResult flush = await writer.FlushAsync().ConfigureAwait(true);
                    ended |= flush.IsCompleted || flush.IsCanceled; // the application stopped reading, or Abort woke us
                }

                if (ended)
                {
                    if (!waiting.IsCompleted)
                    {
                        _ = ObserveAsync(waiting); // it ends with the connection; nobody reads any more
                    }

                    break;
                }
            }
        }
        catch (Exception ex)
        {
            await BackOnLoop();

            // A TLS failure after the handshake (a bad record, an alert from the peer) is an I/O error of this
            // connection, as a reset is: the pipes carry IOExceptions.
            error = TranslateError(ex is AuthenticationException ? new IOException($"The TLS session failed: {ex.Message}", ex) : ex, "Receiving");
        }

        // Signalled first: completing the pipe runs the application's pending read inline, and it may look at
        // ConnectionClosed.
        SignalClosed();
        await writer.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
    }

    private static async Task ObserveAsync(ValueTask<int> read)
    {
        try
        {
            await read.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The connection is closing; nobody reads any more.
        }
    }

    private async Task SendLoopAsync()
    {
        PipeReader reader = _output.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync().ConfigureAwait(true);
                if (!_loop.IsOnLoopThread)
                {
                    // The application flushed from another thread and the pump resumed inline there: SslStream and
                    // the inner connection live on the loop.
                    await new LoopSwitch(_loop);
                }

                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    if (_aborted)
                    {
                        break;
                    }

                    await WriteSegmentAsync(segment).ConfigureAwait(false);
                }

                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled || _aborted)
                {
                    break;
                }
            }

            if (!_aborted)
            {
                // Everything was sent: close_notify, then the inner half-close (FIN). The peer can still send.
                await _ssl.ShutdownAsync().ConfigureAwait(false);
                await BackOnLoop();
                await _inner.ShutdownSendAsync().ConfigureAwait(true);
            }
        }
        catch (Exception ex)
        {
            await BackOnLoop();
            error = TranslateError(ex, "Sending");
        }

        await reader.CompleteAsync(_aborted ? _abortReason : error).ConfigureAwait(true);
    }

    /// <summary>
    /// Encrypts one segment; the records SslStream writes while it runs synchronously are copied into the inner
    /// output and sent with one flush (a 64 KiB segment is four records, one system call).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSegmentAsync(ReadOnlyMemory<byte> segment)
    {
        _transport.BeginBatch();
        ValueTask write;
        try
        {
            write = _ssl.WriteAsync(segment);
        }
        finally
        {
            // Only the synchronous part is batched: whatever SslStream writes after an await of its own flushes itself.
            _transport.EndBatch();
        }

        try
        {
            await write.ConfigureAwait(false);
            await BackOnLoop();
            await _transport.FlushBatchAsync().ConfigureAwait(false);
        }
        finally
        {
            SslStreamContext.Restore(_loop);
        }

        await BackOnLoop();
    }

    private LoopSwitch BackOnLoop() => SslStreamContext.BackOnLoop(_loop);

    private protected override void OnAbort()
    {
        LeaveShutdownList();

        // The inner connection's pipes end with the reason, which ends SslStream's reads and writes wherever they
        // wait; both pumps are woken too, and complete the pipes with the reason.
        _inner.Abort(_abortReason);
        _input.Writer.CancelPendingFlush();
        _output.Reader.CancelPendingRead();
        _ = DisposeSslWhenIdleAsync();
    }

    private async Task DisposeSslWhenIdleAsync()
    {
        try
        {
            await Task.WhenAll(_receiving, _writing).ConfigureAwait(true);
        }
        catch (Exception)
        {
            // Already surfaced on the pipes.
        }

        DisposeSsl();
    }

    /// <summary>Frees SslStream's native state once neither pump uses it.</summary>
    private void DisposeSsl()
    {
        if (!_sslDisposed)
        {
            _sslDisposed = true;
            _ssl.Dispose(); // leaveInnerStreamOpen: the inner connection is closed apart
        }
    }

    private protected override async ValueTask DisposeCoreAsync()
    {
        await FinishSendingAsync().ConfigureAwait(true); // close_notify and FIN, unless aborted

        _disposed = true;
        await _input.Reader.CompleteAsync().ConfigureAwait(true);
        _transport.StopReading();
        try
        {
            await _receiving.ConfigureAwait(true);
        }
        catch (Exception)
        {
            // Receive errors were already surfaced on the pipe.
        }

        LeaveShutdownList();
        try
        {
            await _inner.DisposeAsync().ConfigureAwait(true);
        }
        finally
        {
            try
            {
                await _writing.ConfigureAwait(true);
            }
            catch (Exception)
            {
                // Already surfaced.
            }

            DisposeSsl();
            SignalClosed();
        }
    }

    public override string ToString() => $"TLS ({(IsServer ? "server" : "client")}, {SslProtocol}) over {_inner}";
}
