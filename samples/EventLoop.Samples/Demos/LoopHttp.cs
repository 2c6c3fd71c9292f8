using System.Net;
using System.Net.Sockets;

namespace EventLoop.Samples.Demos;

/// <summary>
/// An <see cref="HttpClient"/> whose connections are the loop's own TCP connections: the handler's
/// <see cref="SocketsHttpHandler.ConnectCallback"/> opens them with <see cref="Loop.ConnectTcpAsync"/>, so
/// on the libuv loop the HTTP bytes travel through the loop's transport.
/// </summary>
internal static class LoopHttp
{
    /// <summary>Creates a client for <paramref name="loop"/>; dispose it on the loop before the loop ends.</summary>
    /// <param name="loop">The loop whose connections carry the requests.</param>
    /// <param name="timeout">The whole request's timeout (default 30 s).</param>
    /// <param name="connectTimeout">How long opening a connection may take, TLS handshake included (default: as long as the request).</param>
    public static HttpClient CreateClient(Loop loop, TimeSpan? timeout = null, TimeSpan? connectTimeout = null)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = (context, cancellationToken) => ConnectAsync(loop, context.DnsEndPoint, cancellationToken),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = connectTimeout ?? Timeout.InfiniteTimeSpan,
        };
        return new HttpClient(handler) { Timeout = timeout ?? TimeSpan.FromSeconds(30) };
    }

    private static ValueTask<Stream> ConnectAsync(Loop loop, DnsEndPoint endpoint, CancellationToken cancellationToken)
    {
        if (loop.IsOnLoopThread)
        {
            return ConnectOnLoopAsync(loop, endpoint, cancellationToken);
        }

        // The handler may open connections from a pool thread: the loop's TCP API is loop-affine, so hop there.
        return new ValueTask<Stream>(Task.Factory.StartNew(
            () => ConnectOnLoopAsync(loop, endpoint, cancellationToken).AsTask(),
            cancellationToken, TaskCreationOptions.None, loop.TaskScheduler).Unwrap());
    }

    private static async ValueTask<Stream> ConnectOnLoopAsync(Loop loop, DnsEndPoint endpoint, CancellationToken cancellationToken)
    {
        IPAddress[] addresses = IPAddress.TryParse(endpoint.Host, out IPAddress? literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(endpoint.Host, cancellationToken);
        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound);
        }

        SocketException? last = null;
        foreach (IPAddress address in addresses)
        {
            try
            {
                Connection connection = await loop.ConnectTcpAsync(new IPEndPoint(address, endpoint.Port), cancellationToken: cancellationToken);
                return new LoopAffineStream(loop, connection.AsStream());
            }
            catch (SocketException ex)
            {
                last = ex; // try the host's next address
            }
        }

        throw last!;
    }

    /// <summary>
    /// Keeps every operation on the connection's loop thread: the handler calls the stream from wherever its
    /// own continuations run (a pool thread disposing an idle connection, for one), and the loop's connections
    /// are loop-affine. On the loop thread, calls go straight through.
    /// </summary>
    private sealed class LoopAffineStream(Loop loop, Stream inner) : Stream
    {
        private int _disposed;

        public override bool CanRead => inner.CanRead;
        public override bool CanWrite => inner.CanWrite;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            loop.IsOnLoopThread
                ? inner.ReadAsync(buffer, cancellationToken)
                : new ValueTask<int>(OnLoop(() => inner.ReadAsync(buffer, cancellationToken).AsTask(), cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            loop.IsOnLoopThread
                ? inner.WriteAsync(buffer, cancellationToken)
                : new ValueTask(OnLoop(() => inner.WriteAsync(buffer, cancellationToken).AsTask(), cancellationToken));

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task FlushAsync(CancellationToken cancellationToken) =>
            loop.IsOnLoopThread ? inner.FlushAsync(cancellationToken) : OnLoop(() => inner.FlushAsync(cancellationToken), cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return default;
            }

            return loop.IsOnLoopThread ? inner.DisposeAsync() : new ValueTask(CloseOnLoop());
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                if (loop.IsOnLoopThread)
                {
                    inner.Dispose();
                }
                else
                {
                    _ = CloseOnLoop();
                }
            }
        }

        private Task CloseOnLoop()
        {
            try
            {
                return OnLoop(() => inner.DisposeAsync().AsTask(), CancellationToken.None);
            }
            catch (Exception ex) when (ex is InvalidOperationException or TaskSchedulerException)
            {
                return Task.CompletedTask; // the loop already closed, and closed the connection with it
            }
        }

        private Task<T> OnLoop<T>(Func<Task<T>> operation, CancellationToken cancellationToken) =>
            Task.Factory.StartNew(operation, cancellationToken, TaskCreationOptions.None, loop.TaskScheduler).Unwrap();

        private Task OnLoop(Func<Task> operation, CancellationToken cancellationToken) =>
            Task.Factory.StartNew(operation, cancellationToken, TaskCreationOptions.None, loop.TaskScheduler).Unwrap();
    }
}
