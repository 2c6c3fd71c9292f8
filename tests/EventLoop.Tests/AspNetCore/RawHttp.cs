using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EventLoop.Tests.AspNetCore;

/// <summary>A plain-socket HTTP/1.1 client for what HttpClient does not do: pipelining, half-close, a reset mid-request.</summary>
internal sealed class RawHttp : IAsyncDisposable
{
    private readonly Socket _socket;
    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RawHttp(Socket socket) => _socket = socket;

    public Socket Socket => _socket;

    public static async Task<RawHttp> ConnectAsync(Uri address)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(address.Host), address.Port));
        return new RawHttp(socket);
    }

    public static string Get(string path) => $"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n";

    public async Task SendAsync(string text) => await _socket.SendAsync(Encoding.ASCII.GetBytes(text));

    /// <summary>Reads one response (headers, then a Content-Length body); throws at end of stream.</summary>
    public async Task<(int Status, Dictionary<string, string> Headers, string Body)> ReadResponseAsync()
    {
        int headerEnd;
        while ((headerEnd = IndexOf("\r\n\r\n"u8)) < 0)
        {
            await FillAsync();
        }

        string head = Encoding.ASCII.GetString(_buffer, _start, headerEnd - _start);
        _start = headerEnd + 4;
        string[] lines = head.Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon]] = line[(colon + 1)..].Trim();
        }

        if (headers.TryGetValue("Transfer-Encoding", out string? encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var body = new StringBuilder();
            while (true)
            {
                int lineEnd;
                while ((lineEnd = IndexOf("\r\n"u8)) < 0)
                {
                    await FillAsync();
                }

                int size = int.Parse(Encoding.ASCII.GetString(_buffer, _start, lineEnd - _start).Split(';')[0], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
                _start = lineEnd + 2;
                while (_end - _start < size + 2)
                {
                    await FillAsync();
                }

                body.Append(Encoding.UTF8.GetString(_buffer, _start, size));
                _start += size + 2; // the chunk and its CRLF (the last chunk, size 0, has no trailers here)
                if (size == 0)
                {
                    return (status, headers, body.ToString());
                }
            }
        }

        int length = headers.TryGetValue("Content-Length", out string? value) ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : 0;
        while (_end - _start < length)
        {
            await FillAsync();
        }

        string text = Encoding.UTF8.GetString(_buffer, _start, length);
        _start += length;
        return (status, headers, text);
    }

    /// <summary>True when the server closed the connection (end of stream or reset) with nothing more buffered.</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        if (_end > _start)
        {
            return false;
        }

        try
        {
            return await _socket.ReceiveAsync(new byte[1]) == 0;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private int IndexOf(ReadOnlySpan<byte> pattern)
    {
        int at = _buffer.AsSpan(_start, _end - _start).IndexOf(pattern);
        return at < 0 ? -1 : _start + at;
    }

    private async Task FillAsync()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end));
        if (n == 0)
        {
            throw new EndOfStreamException("The server closed the connection before a whole response arrived.");
        }

        _end += n;
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return default;
    }
}
