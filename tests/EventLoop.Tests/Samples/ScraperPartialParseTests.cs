using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using AngleSharp.Html.Parser;
using EventLoop.Samples.Demos;
using Spectre.Console;

namespace EventLoop.Tests.Samples;

/// <summary>
/// The scraper demo parses each page only as far as its first <c>&lt;/h1&gt;</c> (<see cref="FirstH1Scanner"/>): it
/// must still find the right heading on a real-sized page (after a large head holding an h1 in a comment and one in
/// a script), whatever the reads' boundaries, and still read each body to its end so the connection is reused.
/// </summary>
public abstract class ScraperPartialParseTests : LoopTestBase
{
    private const int BigPage = 80_000;

    private static IAnsiConsole Console(StringWriter text)
    {
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(text),
        });
        console.Profile.Width = 10_000;
        return console;
    }

    private static byte[] PageBytes(int episode, int size)
    {
        var html = new StringBuilder();
        PodcastSite.WriteEpisode(html, episode, size);
        return Encoding.UTF8.GetBytes(html.ToString());
    }

    [Fact]
    public void The_scan_finds_the_h1_of_a_big_page_whatever_the_pieces_it_arrives_in()
    {
        // Every split point of the text around the real heading (the "</h1>" included), and the traps before it.
        string page = Encoding.UTF8.GetString(PageBytes(41, BigPage));
        string title = PodcastSite.Title(41);
        int heading = page.IndexOf("<h1 class=\"episode-title\"", StringComparison.Ordinal);
        Assert.True(heading > BigPage / 8, $"the real <h1> is at {heading}: not after a large head");
        Assert.True(page.IndexOf("<h1", StringComparison.Ordinal) < heading, "the page has no decoy <h1> before the real one");
        var parser = new HtmlParser();
        int end = page.IndexOf("</h1>", heading, StringComparison.Ordinal) + 5;
        for (int split = heading - 3; split <= end + 1; split++)
        {
            var scanner = new FirstH1Scanner();
            bool early = scanner.Feed(page.AsSpan(0, split));
            bool found = early || scanner.Feed(page.AsSpan(split));
            Assert.True(found, $"split at {split}: no </h1> found");
            Assert.Equal(split >= end, early);
            Assert.Equal(title, scanner.Title(parser));
        }

        // Tiny pieces all the way: 1 to 7 characters each.
        var small = new FirstH1Scanner();
        for (int at = 0, step = 1; !small.Found && at < page.Length; at += step, step = (step % 7) + 1)
        {
            small.Feed(page.AsSpan(at, Math.Min(step, page.Length - at)));
        }

        Assert.Equal(title, small.Title(parser));
    }

    [Fact]
    public void The_scan_skips_comments_raw_text_and_quoted_attributes_and_hands_markup_to_AngleSharp()
    {
        var parser = new HtmlParser();
        string page = "<!DOCTYPE html><html><head><title>x <h1>no</h1></title><!-- <h1>no</h1> --><style>a::after { content: '<h1>no</h1>' }</style>" +
                      "<script>var s = \"<h1>no</h1>\";</SCRIPT></head><body><div data-x=\"<h1>no</h1>\" title='a > b'>" +
                      "<H1 class=big>Caf&eacute; <span>&amp;</span> <b>loops</b></h1 ><h1>second</h1>";
        var scanner = new FirstH1Scanner();
        Assert.True(scanner.Feed(page));
        Assert.Equal("Café & loops", scanner.Title(parser));

        var none = new FirstH1Scanner();
        Assert.False(none.Feed("<html><body><p>no heading</p><!-- <h1>hidden</h1> --></body></html>"));
        Assert.Null(none.Title(parser));
    }

    [Fact]
    public void The_demo_finds_every_title_on_big_pages_of_the_local_site_and_reads_each_body_to_its_end()
    {
        var text = new StringWriter();
        var options = new ScraperOptions("", First: 30, Count: 6, Concurrency: 3, PageSize: BigPage);
        ScraperDemo.Result result = RunLoop(loop => ScraperDemo.RunWithLocalSiteAsync(loop, Console(text), options, TimeSpan.Zero, sync: false));
        Assert.Equal(Enumerable.Range(30, 6).Select(PodcastSite.Title), result.Pages.Select(p => p.Title));
        Assert.Equal(Enumerable.Range(30, 6).Select(n => (long)PageBytes(n, BigPage).Length), result.Pages.Select(p => p.BodyBytes));
        Assert.Contains(text.ToString().Split('\n'), l => l.TrimEnd('\r').EndsWith($"   30  {PodcastSite.Title(30)}", StringComparison.Ordinal));
    }

    [Fact]
    public void A_server_writing_in_small_pieces_with_the_end_tag_split_still_gives_every_title_on_one_reused_connection()
    {
        var text = new StringWriter();
        var (result, server) = RunLoop(async loop =>
        {
            await using ChunkedSite chunked = await ChunkedSite.StartAsync(loop);
            ScraperDemo.Result run = await ScraperDemo.RunAsync(loop, Console(text), new ScraperOptions(chunked.BaseUrl, First: 11, Count: 4, Concurrency: 1));
            return (run, chunked);
        });

        Assert.Equal(Enumerable.Range(11, 4).Select(PodcastSite.Title), result.Pages.Select(p => p.Title));
        Assert.Equal(Enumerable.Range(11, 4).Select(n => (long)PageBytes(n, BigPage).Length), result.Pages.Select(p => p.BodyBytes));
        Assert.Equal(4, server.Requests);
        Assert.Equal(1, server.Connections); // every body read to its end: the connection went back to the pool each time
    }

    /// <summary>
    /// A site that sends each big page in pieces: up to the middle of the real "&lt;/h1&gt;" ("&lt;/h" | "1&gt;"), a
    /// pause on a loop timer so the client reads that much first, then the rest 1,000 bytes at a time, each flushed.
    /// </summary>
    private sealed class ChunkedSite : IAsyncDisposable
    {
        private readonly Loop _loop;
        private readonly ConnectionListener _listener;
        private readonly List<Task> _serving = [];
        private readonly Task _accepting;

        private ChunkedSite(Loop loop, ConnectionListener listener)
        {
            _loop = loop;
            _listener = listener;
            BaseUrl = $"http://{(IPEndPoint)_listener.LocalEndPoint}";
            _accepting = AcceptAsync();
        }

        public string BaseUrl { get; }

        public static async Task<ChunkedSite> StartAsync(Loop loop) => new(loop, await loop.ListenTcpAsync(TestPipes.AnyLoopbackPort));

        public int Connections { get; private set; }

        public int Requests { get; private set; }

        public async ValueTask DisposeAsync()
        {
            await _listener.DisposeAsync();
            await _accepting;
            await Task.WhenAll(_serving);
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    Connection connection = await _listener.AcceptAsync();
                    Connections++;
                    _serving.Add(ServeAsync(connection));
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        private async Task ServeAsync(Connection connection)
        {
            await using (connection)
            {
                PipeReader input = connection.Input;
                PipeWriter output = connection.Output;
                while (true)
                {
                    ReadResult read = await input.ReadAsync();
                    ReadOnlySequence<byte> buffer = read.Buffer;
                    var reader = new SequenceReader<byte>(buffer);
                    if (!reader.TryReadTo(out ReadOnlySequence<byte> head, "\r\n\r\n"u8))
                    {
                        input.AdvanceTo(buffer.Start, buffer.End);
                        if (read.IsCompleted)
                        {
                            return; // the client closed its connection
                        }

                        continue;
                    }

                    string path = Encoding.ASCII.GetString(head).Split(' ')[1];
                    input.AdvanceTo(reader.Position);
                    int episode = int.Parse(path.AsSpan(1));
                    Requests++;
                    byte[] body = PageBytes(episode, BigPage);
                    byte[] title = Encoding.UTF8.GetBytes(PodcastSite.Title(episode) + "</h1>");
                    int split = body.AsSpan().IndexOf(title) + title.Length - 3; // "...</h" | "1>..."
                    output.Write(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {body.Length}\r\n\r\n"));
                    output.Write(body.AsSpan(0, split));
                    await output.FlushAsync();
                    await _loop.DelayAsync(TimeSpan.FromMilliseconds(20));
                    for (int at = split; at < body.Length; at += 1000)
                    {
                        output.Write(body.AsSpan(at, Math.Min(1000, body.Length - at)));
                        await output.FlushAsync();
                    }
                }
            }
        }
    }
}

public sealed class ManagedScraperPartialParseTests : ScraperPartialParseTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvScraperPartialParseTests : ScraperPartialParseTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
