using System.Net;
using System.Net.Sockets;

namespace EventLoop.Samples;

/// <summary>
/// A failure a user can act on (a port in use, an address this machine does not have): the runner prints its
/// message as one line on stderr, with no stack trace, and exits non-zero.
/// </summary>
internal sealed class SampleFailure(string message, Exception? innerException = null) : Exception(message, innerException)
{
    /// <summary>
    /// <see cref="Loop.ListenTcpAsync(IPEndPoint, TcpOptions?, CancellationToken)"/>, with a listen that fails turned
    /// into a <see cref="SampleFailure"/> that names the address (both loops' errors, worded alike).
    /// </summary>
    public static async Task<ConnectionListener> ListenAsync(Loop loop, IPEndPoint endpoint, TcpOptions? options, CancellationToken cancellationToken)
    {
        try
        {
            return await loop.ListenTcpAsync(endpoint, options, cancellationToken);
        }
        catch (SocketException ex)
        {
            throw ListenFailed(endpoint, ex);
        }
    }

    /// <summary>The failure for a listen on <paramref name="endpoint"/> that failed with <paramref name="error"/>.</summary>
    public static SampleFailure ListenFailed(IPEndPoint endpoint, SocketException error)
    {
        string why = error.SocketErrorCode switch
        {
            SocketError.AddressAlreadyInUse => "the address is already in use (is another server running on that port?)",
            SocketError.AddressNotAvailable => "this machine has no such address (use one of its own, e.g. 127.0.0.1 or 0.0.0.0)",
            SocketError.AccessDenied => "permission denied (ports below 1024 need privileges)",
            _ => error.Message,
        };
        return new SampleFailure($"cannot listen on {endpoint}: {why}", error);
    }
}
