using System.Net;
using System.Net.Sockets;

namespace EventLoop;

// What a server does on each loop (accept, run handlers, abort at stop), and the hand-off acceptor.
public sealed partial class LoopGroupServer
{
    /// <summary>
    /// The server on one loop: its listener (one per loop with SO_REUSEPORT), its accept loop, and the connections it
    /// serves. Everything but the entry points (which hop with <see cref="LoopThread.RunAsync(Action, CancellationToken)"/>)
    /// runs on the loop thread, so the set of connections needs no lock.
    /// </summary>
    private sealed class LoopServing(LoopThread thread, Func<Connection, Task> handler)
    {
        private readonly HashSet<Served> _active = [];
        private ConnectionListener? _listener;
        private Task _acceptLoop = Task.CompletedTask;
        private bool _stopped;

        public LoopThread Thread => thread;

        /// <summary>Opens this loop's listener and starts accepting on it; returns the address it is bound to.</summary>
        public Task<EndPoint> ListenAsync(IPEndPoint endpoint, TcpOptions options) => thread.RunAsync(async () =>
        {
            ConnectionListener listener = await thread.Loop.ListenTcpAsync(endpoint, options);
            _listener = listener;
            _acceptLoop = AcceptLoopAsync(listener);
            return listener.LocalEndPoint;
        });

        private async Task AcceptLoopAsync(ConnectionListener listener)
        {
            while (true)
            {
                Connection connection;
                try
                {
                    connection = await listener.AcceptAsync();
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException)
                {
                    return; // the server stopped, or the loop shuts down
                }
                catch (Exception ex)
                {
                    thread.Loop.ReportException($"Accepting on {listener.LocalEndPoint} failed; this loop of the server accepts no more connections.", ex, listener);
                    return;
                }

                Serve(connection);
            }
        }

        /// <summary>Posts a socket the hand-off acceptor took to this loop, which serves it. Any thread.</summary>
        public void HandOff(Socket socket, TcpOptions options)
        {
            try
            {
                thread.Loop.CallSoonThreadSafe(static s => s.Serving.Adopt(s.Socket, s.Options), (Serving: this, Socket: socket, Options: options));
            }
            catch (InvalidOperationException)
            {
                socket.Dispose(); // the loop is closing: nobody will serve this connection
            }
        }

        private void Adopt(Socket socket, TcpOptions options)
        {
            if (_stopped || thread.Loop.IsShuttingDown)
            {
                socket.Dispose();
                return;
            }

            Connection connection;
            try
            {
                connection = thread.Loop.AdoptAcceptedTcpSocket(socket, options);
            }
            catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
            {
                return; // the peer went away before the connection was set up; the loop closed the socket
            }

            Serve(connection);
        }

        private void Serve(Connection connection)
        {
            if (_stopped)
            {
                connection.Abort(new ConnectionAbortedException("The server stopped before this connection was served."));
                return;
            }

            var served = new Served(connection);
            _active.Add(served);
            served.Handler = RunHandlerAsync(served);
        }

        /// <summary>The connection's whole life, on this loop: the handler, then a graceful dispose.</summary>
        private async Task RunHandlerAsync(Served served)
        {
            Connection connection = served.Connection;
            try
            {
                await handler(connection); // captures the loop's context: what follows runs on this loop
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                // A reset, the abort at stop, a cancellation: the connection's end, not a fault of the server.
            }
            catch (Exception ex)
            {
                thread.Loop.ReportException(
                    $"A connection handler of the server threw; its connection ({connection.RemoteEndPoint}) is closed and the server goes on.", ex, handler);
            }
            finally
            {
                try
                {
                    await connection.DisposeAsync();
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                    // Closing a connection that already failed.
                }

                _active.Remove(served);
            }
        }

        /// <summary>Closes the listener and waits for the accept loop to end. Once it has, no handler starts here.</summary>
        public async Task StopAcceptingAsync()
        {
            Task acceptLoop;
            try
            {
                acceptLoop = await thread.RunAsync(async () =>
                {
                    _stopped = true;
                    if (_listener is { } listener)
                    {
                        await listener.DisposeAsync();
                    }

                    return _acceptLoop;
                }).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException)
            {
                return; // the loop thread has stopped: its shutdown closed the listener and every connection
            }

            await acceptLoop.ConfigureAwait(false); // it reports its own failures and never faults
        }

        /// <summary>The handlers still running on this loop (none if the loop has stopped).</summary>
        public async Task<Task[]> RunningHandlersAsync()
        {
            try
            {
                return await thread.RunAsync(() => _active.Select(served => served.Handler).ToArray()).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException)
            {
                return [];
            }
        }

        /// <summary>Aborts every connection still served here; each handler's reads and writes then fail.</summary>
        public async Task AbortAllAsync(string reason)
        {
            try
            {
                await thread.RunAsync(() =>
                {
                    // A copy: an abort can end a handler inline, which removes its connection from the set.
                    foreach (Served served in _active.ToArray())
                    {
                        served.Connection.Abort(new ConnectionAbortedException(reason));
                    }
                }).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException)
            {
                // The loop has stopped: its shutdown closed every connection.
            }
        }
    }

    private sealed class Served(Connection connection)
    {
        public Connection Connection { get; } = connection;

        public Task Handler { get; set; } = Task.CompletedTask;
    }

    /// <summary>
    /// The alternative to one listener per loop: one listening socket, accepting on the thread pool, hands each accepted
    /// socket to the next loop in turn, which adopts it (the socket transport wraps it; libuv opens a duplicate of its
    /// descriptor as its own stream).
    /// </summary>
    private sealed class HandOffAcceptor
    {
        private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(200);

        private readonly Socket _socket;
        private readonly LoopServing[] _serving;
        private readonly TcpOptions _options;
        private Task _acceptLoop = Task.CompletedTask;
        private volatile bool _stopped;

        private HandOffAcceptor(Socket socket, LoopServing[] serving, TcpOptions options)
        {
            _socket = socket;
            _serving = serving;
            _options = options;
            LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        }

        public IPEndPoint LocalEndPoint { get; }

        public static HandOffAcceptor Listen(LoopServing[] serving, IPEndPoint endpoint, TcpOptions options)
        {
            var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (endpoint.Address.Equals(IPAddress.IPv6Any))
                {
                    socket.DualMode = true;
                }

                socket.Bind(endpoint);
                socket.Listen(options.Backlog);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new SocketException((int)ex.SocketErrorCode, $"Listening on {endpoint} failed: {ex.SocketErrorCode} ({ex.Message})");
            }

            var acceptor = new HandOffAcceptor(socket, serving, options);
            acceptor._acceptLoop = Task.Run(acceptor.AcceptLoopAsync);
            return acceptor;
        }

        private async Task AcceptLoopAsync()
        {
            int turn = 0;
            TimeSpan backoff = TimeSpan.FromMilliseconds(5);
            bool reported = false;
            while (true)
            {
                Socket accepted;
                try
                {
                    accepted = await _socket.AcceptAsync().ConfigureAwait(false);
                }
                catch (Exception) when (_stopped)
                {
                    return;
                }
                catch (SocketException ex)
                {
                    // As the loops' listeners do: report the first error of an episode, back off while out of descriptors.
                    if (!reported)
                    {
                        reported = true;
                        _serving[0].Thread.Loop.ReportException(
                            $"Accepting on {LocalEndPoint} failed ({ex.SocketErrorCode}); the server keeps accepting.", ex, this);
                    }

                    if (ex.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
                    {
                        await Task.Delay(backoff).ConfigureAwait(false);
                        backoff = backoff * 2 > MaxBackoff ? MaxBackoff : backoff * 2;
                    }

                    continue;
                }
                catch (Exception ex)
                {
                    _serving[0].Thread.Loop.ReportException($"Accepting on {LocalEndPoint} failed; the server accepts no more connections.", ex, this);
                    return;
                }

                reported = false;
                backoff = TimeSpan.FromMilliseconds(5);
                _serving[turn].HandOff(accepted, _options);
                turn = turn + 1 == _serving.Length ? 0 : turn + 1;
            }
        }

        public async Task StopAsync()
        {
            _stopped = true;
            _socket.Dispose();
            await _acceptLoop.ConfigureAwait(false);
        }
    }
}
