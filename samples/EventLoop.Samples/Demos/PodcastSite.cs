using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Text;

namespace EventLoop.Samples.Demos;

/// <summary>
/// A local stand-in for the podcast site the talk scraped, served on the loop by the loop's own TCP listener:
/// a tiny HTTP/1.1 responder (GET only, keep-alive, Content-Length) over each connection's pipes. Episode
/// pages live at <c>/N</c> for N &gt;= 1 and carry an <c>&lt;h1&gt;Episode N: ...&lt;/h1&gt;</c>; every other
/// path is a 404. Each page waits <see cref="Latency"/> on a loop timer before it is sent, as a slow site would.
/// With a <see cref="PageSize"/> the pages are real-sized (<see cref="EpisodePage"/>: varied markup, the
/// <c>&lt;h1&gt;</c> after a sizeable head and the navigation); without one (0, the default) each page is the
/// small one the demo always served, about 550 bytes.
/// </summary>
internal sealed class PodcastSite : IAsyncDisposable
{
    /// <summary>The largest page size the site serves (<c>--page-size</c>).</summary>
    public const int MaxPageSize = 4 * 1024 * 1024;

    private const int MaxHeaderBytes = 16 * 1024;

    private static readonly string[] Topics =
    [
        "Demystifying async and await", "Event loops from the ground up", "Coroutines, tasks and futures",
        "Backpressure explained", "Why your thread pool is busy", "Timers, heaps and deadlines",
        "Sockets without the tears", "From callbacks to await", "The fast loop: libuv inside",
        "Scraping the web, politely", "Producers, consumers and queues", "Cancellation done right",
    ];

    private readonly Loop _loop;
    private readonly ConnectionListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<Task> _serving = [];
    private readonly Task _accepting;

    // One page is built, encoded into the connection's pipe and cleared again with no await in between, and the
    // site runs on one loop thread: one builder serves every connection. Its chunks stay small (no 80 KB string).
    private readonly StringBuilder _body = new();

    private PodcastSite(Loop loop, ConnectionListener listener, TimeSpan latency, int pageSize)
    {
        _loop = loop;
        _listener = listener;
        Latency = latency;
        PageSize = pageSize;
        var endpoint = (IPEndPoint)listener.LocalEndPoint;
        BaseUrl = new Uri($"http://{endpoint}");
        _accepting = AcceptLoopAsync();
    }

    /// <summary>The site's address, e.g. <c>http://127.0.0.1:41234</c>; episode N is <c>{BaseUrl}/N</c>.</summary>
    public Uri BaseUrl { get; }

    /// <summary>How long each page takes to be served.</summary>
    public TimeSpan Latency { get; }

    /// <summary>The episode pages' size in bytes, roughly; 0 for the small classic page.</summary>
    public int PageSize { get; }

    /// <summary>Requests answered so far (pages and 404s).</summary>
    public long RequestsServed { get; private set; }

    /// <summary>Starts the site on <paramref name="loop"/>, listening on <paramref name="endpoint"/> (default: 127.0.0.1, a free port).</summary>
    /// <param name="pageSize">The episode pages' size in bytes (roughly; at least the small page's), or 0 for the small classic page.</param>
    public static async Task<PodcastSite> StartAsync(Loop loop, TimeSpan latency, IPEndPoint? endpoint = null, CancellationToken cancellationToken = default, int pageSize = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latency, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(pageSize);
        ConnectionListener listener = await SampleFailure.ListenAsync(loop, endpoint ?? new IPEndPoint(IPAddress.Loopback, 0), new TcpOptions { Backlog = 1024 }, cancellationToken);
        return new PodcastSite(loop, listener, latency, pageSize);
    }

    /// <summary>The title of episode <paramref name="episode"/>, as its page's <c>&lt;h1&gt;</c> says it.</summary>
    public static string Title(int episode) => $"Episode {episode}: {Topics[episode % Topics.Length]}";

    /// <summary>Serves until <paramref name="cancellationToken"/> is cancelled (the <c>site</c> command).</summary>
    public async Task RunUntilCancelledAsync(CancellationToken cancellationToken)
    {
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (cancellationToken.Register(() => stopped.TrySetResult()))
        {
            await stopped.Task;
        }
    }

    /// <summary>Stops listening, closes the open connections and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        _stopping.Cancel();
        await _listener.DisposeAsync();
        await _accepting;
        await Task.WhenAll(_serving.ToArray());
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                Connection connection = await _listener.AcceptAsync(_stopping.Token);
                Task serving = ServeAsync(connection);
                _serving.Add(serving);
                _ = serving.ContinueWith(t => _serving.Remove(t), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, _loop.TaskScheduler);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            // Stopping.
        }
    }

    private async Task ServeAsync(Connection connection)
    {
        await using (connection)
        {
            PipeReader input = connection.Input;
            PipeWriter output = connection.Output;
            try
            {
                while (true)
                {
                    ReadResult read = await input.ReadAsync(_stopping.Token);
                    ReadOnlySequence<byte> buffer = read.Buffer;
                    if (!TryReadRequest(ref buffer, out string? head))
                    {
                        if (read.IsCompleted || buffer.Length > MaxHeaderBytes)
                        {
                            input.AdvanceTo(buffer.End);
                            return; // the client closed (or sent nonsense): done with this connection
                        }

                        input.AdvanceTo(buffer.Start, buffer.End);
                        continue;
                    }

                    input.AdvanceTo(buffer.Start);
                    (int status, int episode, bool keepAlive) = Answer(head, _body);
                    if (status == 200 && Latency > TimeSpan.Zero)
                    {
                        await _loop.DelayAsync(Latency, _stopping.Token);
                    }

                    if (status == 200)
                    {
                        _body.Clear();
                        WriteEpisode(_body, episode, PageSize);
                    }

                    WriteResponse(output, status, _body, keepAlive);
                    _body.Clear();
                    RequestsServed++;
                    FlushResult flush = await output.FlushAsync(_stopping.Token);
                    if (!keepAlive || flush.IsCompleted)
                    {
                        return;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                // The client went away, or the site is stopping: this connection is done.
            }
        }
    }

    /// <summary>Takes one request head (up to the blank line) off the front of <paramref name="buffer"/>.</summary>
    private static bool TryReadRequest(ref ReadOnlySequence<byte> buffer, out string head)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> headBytes, "\r\n\r\n"u8, advancePastDelimiter: true))
        {
            head = "";
            return false;
        }

        head = Encoding.ASCII.GetString(headBytes);
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    /// <summary>Status, episode (for a 200; its page is written later) and keep-alive; an error page's body goes to <paramref name="body"/>.</summary>
    private static (int Status, int Episode, bool KeepAlive) Answer(string head, StringBuilder body)
    {
        body.Clear();
        // Request line "GET /path HTTP/1.1", then "Name: value" lines; only Connection matters here.
        int lineEnd = head.IndexOf("\r\n", StringComparison.Ordinal);
        string[] requestLine = (lineEnd < 0 ? head : head[..lineEnd]).Split(' ');
        bool http11 = requestLine.Length > 2 && requestLine[2] == "HTTP/1.1";
        string? connectionHeader = null;
        foreach (string line in head.Split("\r\n"))
        {
            if (line.StartsWith("Connection:", StringComparison.OrdinalIgnoreCase))
            {
                connectionHeader = line["Connection:".Length..].Trim();
            }
        }

        bool keepAlive = http11
            ? !string.Equals(connectionHeader, "close", StringComparison.OrdinalIgnoreCase)
            : string.Equals(connectionHeader, "keep-alive", StringComparison.OrdinalIgnoreCase);

        if (requestLine.Length < 3 || requestLine[0] != "GET")
        {
            body.Append(Page("Method not allowed", "<h1>405: only GET is served here</h1>"));
            return (405, 0, false);
        }

        string path = requestLine[1];
        int query = path.IndexOf('?', StringComparison.Ordinal);
        if (query >= 0)
        {
            path = path[..query];
        }

        if (path.Length > 1 && int.TryParse(path.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out int episode) && episode >= 1)
        {
            return (200, episode, keepAlive);
        }

        body.Append(Page("Not found", $"<h1>404: no episode at {WebUtility.HtmlEncode(path)}</h1>"));
        return (404, 0, keepAlive);
    }

    /// <summary>Episode <paramref name="episode"/>'s page: the small classic one, or a real-sized one of about <paramref name="pageSize"/> bytes.</summary>
    internal static void WriteEpisode(StringBuilder body, int episode, int pageSize)
    {
        string title = Title(episode);
        if (pageSize > 0)
        {
            EpisodePage.Write(body, episode, title, pageSize);
            return;
        }

        body.Append(Page(title,
            $"<h1>{title}</h1>\n" +
            $"<p class=\"meta\">Talk Python-style stand-in, episode {episode}, recorded on a single-threaded event loop.</p>\n" +
            "<p>In this episode we look at what async and await really do: a loop, a queue of ready callbacks, " +
            "timers kept in a heap, and sockets that tell the loop when they can be read or written.</p>\n" +
            $"<ul><li><a href=\"/{episode - 1}\">previous</a></li><li><a href=\"/{episode + 1}\">next</a></li></ul>"));
    }

    private static string Page(string title, string content) =>
        $"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n{content}\n</body></html>\n";

    private static void WriteResponse(PipeWriter output, int status, StringBuilder body, bool keepAlive)
    {
        string reason = status switch { 200 => "OK", 404 => "Not Found", _ => "Method Not Allowed" };
        // Chunk by chunk: the page never becomes one string. (The pages hold no surrogate pairs, so no chunk
        // boundary splits a character.)
        int length = 0;
        foreach (ReadOnlyMemory<char> chunk in body.GetChunks())
        {
            length += Encoding.UTF8.GetByteCount(chunk.Span);
        }

        string headers = string.Create(CultureInfo.InvariantCulture,
            $"HTTP/1.1 {status} {reason}\r\nServer: EventLoop-podcast-site\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {length}\r\n{(keepAlive ? "" : "Connection: close\r\n")}\r\n");
        Encoding.ASCII.GetBytes(headers, output);
        foreach (ReadOnlyMemory<char> chunk in body.GetChunks())
        {
            Encoding.UTF8.GetBytes(chunk.Span, output);
        }
    }
}
