using System.IO.Pipelines;
using System.Net;

namespace EventLoop;

/// <summary>
/// A connection on a loop, exposed as an <see cref="IDuplexPipe"/>: read from <see cref="Input"/>, write
/// to <see cref="Output"/>. Reads and flushes complete on the loop thread; a pending read resumes as soon as
/// bytes arrive, inside the transport's receive callback (as asyncio's <c>data_received</c> is called from the
/// read callback), so an answer can go out in the same turn.
/// </summary>
/// <remarks>
/// Completing <see cref="Output"/> (or <see cref="ShutdownSendAsync"/>) sends what is buffered and then
/// half-closes: the peer sees end of stream and can still send. <see cref="DisposeAsync"/> closes gracefully;
/// <see cref="Abort"/> resets the connection at once. Errors reach the pipes as <see cref="IOException"/>s:
/// <see cref="ConnectionResetException"/> when the peer reset the connection, <see cref="ConnectionAbortedException"/>
/// after <see cref="Abort"/>. A connection that is still open when its loop shuts down is closed by the loop.
/// </remarks>
public abstract class Connection : IDuplexPipe, IAsyncDisposable
{
    /// <summary>Bytes received from the peer.</summary>
    public abstract PipeReader Input { get; }

    /// <summary>Bytes to send to the peer.</summary>
    public abstract PipeWriter Output { get; }

    /// <summary>The local address.</summary>
    public abstract EndPoint? LocalEndPoint { get; }

    /// <summary>The peer's address.</summary>
    public abstract EndPoint? RemoteEndPoint { get; }

    /// <summary>
    /// Cancelled on the loop thread when the connection stops receiving: the peer closed its side (end of
    /// stream), the connection failed (reset), or it was aborted or disposed here.
    /// </summary>
    public abstract CancellationToken ConnectionClosed { get; }

    /// <summary>
    /// Sends everything written so far, then shuts down the send side (a TCP FIN). The peer sees end of
    /// stream; <see cref="Input"/> keeps receiving until the peer closes too.
    /// Loop thread only.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    public abstract ValueTask ShutdownSendAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Closes the connection at once (a TCP RST); pending and later reads and flushes fail with
    /// <paramref name="reason"/>, by default a <see cref="ConnectionAbortedException"/>. Safe from any thread.
    /// </summary>
    public abstract void Abort(Exception? reason = null);

    /// <summary>
    /// Closes gracefully: flushes what was written, closes both directions, frees the socket. Safe from any thread:
    /// off the loop thread the close hops to the loop, and the task completes once it has happened there. Every
    /// call returns the same close; after the loop has closed, the loop's shutdown has already closed it.
    /// </summary>
    public abstract ValueTask DisposeAsync();

    /// <summary>
    /// A <see cref="Stream"/> over this connection, for APIs that want one (<c>SslStream</c>,
    /// <c>SocketsHttpHandler.ConnectCallback</c>). Disposing the stream disposes the connection.
    /// </summary>
    public Stream AsStream() => new DuplexPipeStream(this);
}

/// <summary>Accepts connections on a loop; enumerate it with <c>await foreach</c> or call <see cref="AcceptAsync"/>.</summary>
public abstract class ConnectionListener : IAsyncDisposable, IAsyncEnumerable<Connection>
{
    /// <summary>The address the listener is bound to (with the real port when port 0 was asked for).</summary>
    public abstract EndPoint LocalEndPoint { get; }

    /// <summary>
    /// Waits for the next connection. Throws <see cref="OperationCanceledException"/> when cancelled, and
    /// <see cref="ObjectDisposedException"/> once the listener is disposed.
    /// </summary>
    public abstract ValueTask<Connection> AcceptAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Stops listening. Connections already accepted stay open; pending accepts end with
    /// <see cref="ObjectDisposedException"/>. Safe from any thread: off the loop thread it hops to the loop.
    /// </summary>
    public abstract ValueTask DisposeAsync();

    /// <summary>Accepts connections until the listener is disposed or <paramref name="cancellationToken"/> is cancelled.</summary>
    public async IAsyncEnumerator<Connection> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Connection connection;
            try
            {
                connection = await AcceptAsync(cancellationToken).ConfigureAwait(true);
            }
            catch (ObjectDisposedException)
            {
                yield break;
            }

            yield return connection;
        }
    }
}
