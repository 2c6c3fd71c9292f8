using System.Net;
using System.Net.Sockets;

namespace EventLoop.Tests.Samples;

/// <summary>
/// The samples runner as a user meets it, in a child process: bad input, a port in use, an address this machine does
/// not have, a libuv that cannot be loaded are each one line on stderr and a non-zero exit code (2 for bad input, 1
/// for a failure), never a stack trace nor a hang; piped output is not wrapped. Run with <c>--loop</c> set to the
/// policy under test (the child's loop, not one in this process).
/// </summary>
public abstract class SamplesCliTests : LoopTestBase
{
    private string LoopName => CreatePolicy().Name;

    private Task<ChildProcess.Result> Samples(params string[] args) => SamplesWith(null, args);

    private Task<ChildProcess.Result> SamplesWith(IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        ChildProcess.RunAsync(ChildProcess.SamplesPath, [.. args, "--loop", LoopName], environment);

    /// <summary>One line on stderr starting <c>error: </c>, no stack trace, the exit code given; returns the line.</summary>
    private static string AssertOneErrorLine(ChildProcess.Result child, int exitCode)
    {
        Assert.True(child.ExitCode == exitCode, child.ToString());
        Assert.True(child.ErrorLines.Length == 1, child.ToString());
        Assert.DoesNotContain("   at ", child.Errors);
        Assert.StartsWith("error: ", child.ErrorLines[0]);
        return child.ErrorLines[0];
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("1e15")]
    [InlineData("0")]
    [InlineData("-1")]
    public async Task Producer_consumer_refuses_a_time_scale_that_is_not_a_finite_number_in_range_before_running(string scale)
    {
        foreach (string[] args in new[] { new[] { "producer-consumer", "--time-scale", scale }, ["producer-consumer", "--sync", "--time-scale", scale] })
        {
            ChildProcess.Result child = await Samples(args);
            string line = AssertOneErrorLine(child, 2);
            Assert.StartsWith("error: --time-scale must be a number greater than 0 and at most 100, not ", line);
            Assert.Empty(child.Output); // refused before anything ran
        }
    }

    [Fact]
    public async Task A_port_in_use_is_one_line_naming_the_address()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        int port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        foreach (string[] demo in new[] { new[] { "echo-server" }, ["echo-server", "--loops", "2"], ["site"] })
        {
            ChildProcess.Result child = await Samples([.. demo, "--port", port.ToString()]);
            Assert.Equal($"error: cannot listen on 127.0.0.1:{port}: the address is already in use (is another server running on that port?)",
                AssertOneErrorLine(child, 1));
        }
    }

    [Fact]
    public async Task A_host_address_this_machine_does_not_have_is_one_line_naming_it()
    {
        // 192.0.2.1 is TEST-NET-1 (RFC 5737): documentation only, never a local address.
        ChildProcess.Result child = await Samples("echo-server", "--host", "192.0.2.1", "--port", "0");
        Assert.Equal("error: cannot listen on 192.0.2.1:0: this machine has no such address (use one of its own, e.g. 127.0.0.1 or 0.0.0.0)",
            AssertOneErrorLine(child, 1));

        ChildProcess.Result notAnAddress = await Samples("echo-server", "--host", "localhost.example", "--port", "0");
        Assert.Equal("error: --host must be an IP address, not 'localhost.example'", AssertOneErrorLine(notAnAddress, 2));
    }

    [Theory]
    [InlineData("--count", "2000000000", "error: --count must be between 0 and 100000, not 2000000000")]
    [InlineData("--count", "-1", "error: --count must be between 0 and 100000, not -1")]
    [InlineData("--concurrency", "0", "error: --concurrency must be between 1 and 1000, not 0")]
    [InlineData("--latency-ms", "-5", "error: --latency-ms must be between 0 and 60000, not -5")]
    [InlineData("--first", "2147483647", "error: --first 2147483647 plus --count and --warmup go past the largest page number (2147483647)")]
    public async Task Scraper_refuses_numbers_out_of_range_before_fetching_anything(string option, string value, string expected)
    {
        ChildProcess.Result child = await Samples("scraper", option, value);
        Assert.Equal(expected, AssertOneErrorLine(child, 2));
        Assert.Empty(child.Output);
    }

    [Theory]
    [InlineData("ftp://example.invalid", "error: --base-url must be an http or https URL, not 'ftp://example.invalid' (scheme 'ftp')")]
    [InlineData("not a url", "error: --base-url must be an absolute http or https URL, not 'not a url'")]
    public async Task Scraper_checks_a_bad_base_url_once_up_front(string url, string expected)
    {
        foreach (string[] args in new[] { new[] { "scraper", "--base-url", url }, ["scraper", "--sync", "--base-url", url] })
        {
            ChildProcess.Result child = await Samples(args);
            Assert.Equal(expected, AssertOneErrorLine(child, 2));
            Assert.Empty(child.Output);
        }
    }

    [Fact]
    public async Task Scraper_exits_0_when_every_page_was_fetched_and_1_when_any_page_failed()
    {
        ChildProcess.Result good = await Samples("scraper", "--first", "1", "--count", "3", "--latency-ms", "0");
        Assert.True(good.ExitCode == 0, good.ToString());
        Assert.Matches(@"^Fetched 3 pages in \d+\.\d\d sec", good.OutputLines[^1]);

        ChildProcess.Result some = await Samples("scraper", "--first", "0", "--count", "2", "--latency-ms", "0"); // page 0 is a 404
        Assert.True(some.ExitCode == 1, some.ToString());
        Assert.Matches(@"^Fetched 1 pages in ", some.OutputLines[^1]);

        ChildProcess.Result none = await Samples("scraper", "--first", "-3", "--count", "2", "--latency-ms", "0");
        Assert.True(none.ExitCode == 1, none.ToString());
        Assert.Contains("2 of 2 pages failed", none.Output);
        Assert.Matches(@"^Fetched 0 pages in ", none.OutputLines[^1]);
    }

    [Fact]
    public async Task Scraper_with_https_against_a_plain_http_port_fails_on_the_connect_timeout_not_the_request_timeout()
    {
        // A plain TCP server that accepts and never answers: a TLS client hello gets no reply, as from an HTTP server
        // waiting for a request line. The page fails on the connect timeout (which covers the handshake), saying so.
        using var plain = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        plain.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        plain.Listen();
        int port = ((IPEndPoint)plain.LocalEndPoint!).Port;
        foreach (string[] mode in new[] { Array.Empty<string>(), ["--sync"] })
        {
            ChildProcess.Result child = await Samples(["scraper", .. mode, "--base-url", $"https://127.0.0.1:{port}", "--first", "1", "--count", "1"]);
            Assert.True(child.ExitCode == 1, child.ToString());
            Assert.Contains($"ERROR https://127.0.0.1:{port}/1: no connection within 5 s (the TLS handshake got no answer: is that port plain HTTP?)", child.Output);
        }
    }

    [Fact]
    public async Task Piped_output_is_not_wrapped_at_80_columns()
    {
        ChildProcess.Result child = await Samples("generator");
        Assert.True(child.ExitCode == 0, child.ToString());
        string sequence = "0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765";
        Assert.Contains(child.OutputLines, l => l.Length > 80 && l.TrimEnd().EndsWith(sequence));
    }

    [Fact]
    public async Task A_libuv_that_cannot_be_loaded_is_one_line_before_anything_runs_when_the_libuv_loop_is_asked_for()
    {
        var environment = new Dictionary<string, string?> { ["EVENTLOOP_LIBUV_PATH"] = "/nonexistent" };
        ChildProcess.Result child = await SamplesWith(environment, "generator");
        if (LoopName == "libuv")
        {
            string line = AssertOneErrorLine(child, 1);
            Assert.StartsWith("error: EVENTLOOP_LIBUV_PATH is set to '/nonexistent', but libuv could not be loaded from there", line);
            Assert.Contains("apt-get install libuv1", line);
            Assert.Empty(child.Output);
        }
        else
        {
            Assert.True(child.ExitCode == 0, child.ToString()); // the managed loop does not need libuv
            Assert.Empty(child.Errors);
        }
    }
}

public sealed class ManagedSamplesCliTests : SamplesCliTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();
}

public sealed class LibuvSamplesCliTests : SamplesCliTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

/// <summary>What the runner does before any loop is chosen: the tour, the root help, an unknown loop name.</summary>
public sealed class SamplesRunnerTests
{
    [Fact]
    public async Task The_tour_checks_libuv_before_running_anything_and_stops_with_one_line()
    {
        ChildProcess.Result child = await ChildProcess.RunAsync(ChildProcess.SamplesPath, [],
            new Dictionary<string, string?> { ["EVENTLOOP_LIBUV_PATH"] = "/nonexistent" });
        Assert.True(child.ExitCode == 1, child.ToString());
        Assert.Empty(child.Output); // not the managed half first
        Assert.StartsWith("error: EVENTLOOP_LIBUV_PATH is set to '/nonexistent'", Assert.Single(child.ErrorLines));
    }

    [Fact]
    public async Task The_root_help_claims_no_managed_default_for_the_tour()
    {
        ChildProcess.Result child = await ChildProcess.RunAsync(ChildProcess.SamplesPath, ["--help"]);
        Assert.True(child.ExitCode == 0, child.ToString());
        string loopLine = Assert.Single(child.OutputLines, l => l.TrimStart().StartsWith("--loop", StringComparison.Ordinal));
        Assert.DoesNotContain("[default:", loopLine);
        Assert.Contains("the tour: both loops", child.Output);
    }

    [Theory]
    [InlineData(new[] { "scraper", "--count", "abc" }, "error: Cannot parse argument 'abc' for option '--count' as expected type 'System.Int32'. (see --help)")]
    [InlineData(new[] { "no-such-demo" }, "error: Unrecognized command or argument 'no-such-demo'. (see --help)")]
    public async Task A_parse_error_is_one_line_on_stderr_with_exit_code_2_and_no_help_dump(string[] args, string expected)
    {
        ChildProcess.Result child = await ChildProcess.RunAsync(ChildProcess.SamplesPath, args);
        Assert.True(child.ExitCode == 2, child.ToString());
        Assert.Equal(expected, Assert.Single(child.ErrorLines));
        Assert.Empty(child.Output);
    }

    [Fact]
    public async Task An_unknown_loop_is_one_line_naming_the_option()
    {
        ChildProcess.Result child = await ChildProcess.RunAsync(ChildProcess.SamplesPath, ["generator", "--loop", "tokio"]);
        Assert.True(child.ExitCode == 2, child.ToString());
        Assert.Equal("error: unknown loop 'tokio': --loop (or EVENTLOOP_POLICY) must be managed or libuv", Assert.Single(child.ErrorLines));
        Assert.Empty(child.Output);
    }
}
