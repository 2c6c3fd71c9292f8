using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EventLoop.AspNetCore;
using EventLoop.Samples.Demos;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventLoop.Tests.AspNetCore;

/// <summary>
/// The web demo's unchanged minimal-API app on Kestrel over the loop transport, served over real HTTP: routes, large bodies
/// both ways, many keep-alive clients, pipelining, half-close, HTTPS, clients that vanish mid-request, a graceful stop
/// with requests in flight. Every test ends by stopping the host and checking every loop of the transport's group closed
/// cleanly. One subclass per policy and per <see cref="EventLoopApplicationScheduling"/>.
/// </summary>
public abstract class KestrelTransportTests : LoopTestBase
{
    private static readonly TimeSpan Timeout = TestPipes.TestTimeout;

    protected abstract EventLoopApplicationScheduling Scheduling { get; }

    // Kestrel reports a client that vanished mid-request to the app, not to the loop; nothing reaches the loops' handler.
    private async Task<WebApplication> StartAsync(
        Action<WebApplication>? routes = null, Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions>? listen = null, int loops = 2,
        Action<WebApplicationBuilder>? builder = null)
    {
        WebApplication app = WebDemo.Build(new IPEndPoint(IPAddress.Loopback, 0), WebTransport.EventLoop, o =>
        {
            o.Policy = CreatePolicy();
            o.LoopCount = loops;
            o.ApplicationScheduling = Scheduling;
            o.LoopOptions = CreateOptions();
        }, builder, listen);
        app.MapGet("/where", (HttpContext context) =>
        {
            IEventLoopConnectionFeature? feature = context.Features.Get<IEventLoopConnectionFeature>();
            return $"{feature?.Loop.PolicyName} {feature?.Loop.IsOnLoopThread} {context.Connection.Id}";
        });
        routes?.Invoke(app);
        await app.StartAsync().WaitAsync(Timeout);
        return app;
    }

    private static Uri Address(WebApplication app) => new(app.Urls.Single());

    /// <summary>Stops the host (gracefully), disposes it, and runs the leak check on every loop of the transport.</summary>
    private async Task StopAndCheckAsync(WebApplication app)
    {
        LoopGroup group = app.Services.GetRequiredService<EventLoopTransportFactory>().Group!;
        await app.StopAsync().WaitAsync(Timeout);
        await app.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in group.Loops)
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }
    }

    private static HttpClient Client(WebApplication app, int connections = 10) => new(new SocketsHttpHandler { MaxConnectionsPerServer = connections })
    {
        BaseAddress = Address(app),
        Timeout = Timeout,
    };

    [Fact]
    public async Task Text_and_json_routes_are_served_on_the_loop_transport()
    {
        WebApplication app = await StartAsync();
        using (HttpClient client = Client(app))
        {
            HttpResponseMessage text = await client.GetAsync("/plaintext");
            Assert.Equal(HttpStatusCode.OK, text.StatusCode);
            Assert.Equal("text/plain", text.Content.Headers.ContentType!.MediaType);
            Assert.Equal(WebDemo.PlainText, await text.Content.ReadAsStringAsync());

            Greeting? json = await client.GetFromJsonAsync<Greeting>("/json", new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web));
            Assert.Equal(WebDemo.PlainText, json!.Message);

            // Served by the loop transport (its connection feature is there), on a loop of the chosen policy.
            string[] where = (await client.GetStringAsync("/where")).Split(' ');
            Assert.Equal(CreatePolicy().Name, where[0]);
            Assert.StartsWith("EL", where[2], StringComparison.Ordinal);
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task A_read_that_waits_for_bytes_resumes_where_the_scheduling_option_says()
    {
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        WebApplication app = await StartAsync(loops: 1, routes: a => a.MapPost("/resume", async (HttpContext context) =>
        {
            byte[] buffer = new byte[16];

            // The first read takes the bytes that came with the headers, wherever the request started (Kestrel starts a
            // connection's first request on the thread pool), and starts the body: a first read may await Kestrel's own
            // set-up before it reaches the transport's pipe, so under load the rest could already be there by then.
            int first = await context.Request.Body.ReadAsync(buffer);
            Loop loop = context.Features.Get<IEventLoopConnectionFeature>()!.Loop;
            Task<int> read = context.Request.Body.ReadAsync(buffer.AsMemory(first)).AsTask(); // the rest is not sent yet: this read waits in the pipe

            // Where the read is completed, seen by a continuation registered before the rest is sent (an await after the
            // signal could find the read already completed, under load, and go on synchronously on this thread).
            Task<bool> completedOnLoop = read.ContinueWith(_ => loop.IsOnLoopThread, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            waiting.TrySetResult();
            int n = await read; // completed by the transport when the bytes arrive
            return $"{first + n} {await completedOnLoop}";
        }));
        await using (RawHttp raw = await RawHttp.ConnectAsync(Address(app)))
        {
            await raw.SendAsync("POST /resume HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhe");
            await waiting.Task.WaitAsync(Timeout);
            await raw.SendAsync("llo");
            var response = await raw.ReadResponseAsync().WaitAsync(Timeout);
            bool onLoop = Scheduling == EventLoopApplicationScheduling.Loop;
            Assert.Equal($"5 {onLoop}", response.Body); // on the loop thread only when the option says so
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task Ten_MiB_upload_and_download_arrive_intact()
    {
        const int Size = 10 * 1024 * 1024;
        WebApplication app = await StartAsync();
        using (HttpClient client = Client(app))
        {
            byte[] upload = TestPipes.RandomPayload(Size, seed: 13);
            HttpResponseMessage posted = await client.PostAsync("/upload", new ByteArrayContent(upload));
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
            Assert.Equal($"{Size} {Convert.ToHexStringLower(SHA256.HashData(upload))}", await posted.Content.ReadAsStringAsync());

            byte[] download = await client.GetByteArrayAsync($"/download/{Size}");
            byte[] expected = new byte[Size];
            WebDemo.FillPattern(expected, 0);
            Assert.Equal(Size, download.Length);
            Assert.Equal(SHA256.HashData(expected), SHA256.HashData(download));
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task Five_hundred_concurrent_keep_alive_clients_each_reuse_their_connection()
    {
        const int Clients = 500;
        WebApplication app = await StartAsync();
        Uri address = Address(app);
        var connectionIds = new ConcurrentDictionary<string, int>();
        var clients = new RawHttp[Clients];
        try
        {
            // All connected and each served once before any sends its second request: 500 connections open at once.
            await Task.WhenAll(Enumerable.Range(0, Clients).Select(async i =>
            {
                clients[i] = await RawHttp.ConnectAsync(address);
                await clients[i].SendAsync(RawHttp.Get("/where"));
                var first = await clients[i].ReadResponseAsync();
                Assert.Equal(200, first.Status);
                connectionIds[first.Body.Split(' ')[2]] = i;
            })).WaitAsync(Timeout);
            Assert.Equal(Clients, connectionIds.Count);

            await Task.WhenAll(Enumerable.Range(0, Clients).Select(async i =>
            {
                for (int round = 0; round < 3; round++)
                {
                    await clients[i].SendAsync(RawHttp.Get("/where"));
                    var again = await clients[i].ReadResponseAsync();
                    Assert.Equal(200, again.Status);
                    Assert.Equal(i, connectionIds[again.Body.Split(' ')[2]]); // the same connection: kept alive
                }
            })).WaitAsync(Timeout);
        }
        finally
        {
            foreach (RawHttp? client in clients)
            {
                if (client is not null)
                {
                    await client.DisposeAsync();
                }
            }
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task Pipelined_requests_on_one_connection_are_answered_in_order()
    {
        WebApplication app = await StartAsync(routes: a => a.MapGet("/n/{n:int}", (int n) => $"answer {n}"));
        await using (RawHttp raw = await RawHttp.ConnectAsync(Address(app)))
        {
            await raw.SendAsync(string.Concat(Enumerable.Range(0, 50).Select(n => RawHttp.Get($"/n/{n}")))); // one write
            for (int n = 0; n < 50; n++)
            {
                var response = await raw.ReadResponseAsync().WaitAsync(Timeout);
                Assert.Equal(200, response.Status);
                Assert.Equal($"answer {n}", response.Body);
            }
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task A_client_that_half_closes_is_closed_cleanly_as_on_kestrels_sockets_transport()
    {
        WebApplication app = await StartAsync();
        for (int i = 0; i < 5; i++)
        {
            await using RawHttp raw = await RawHttp.ConnectAsync(Address(app));
            await raw.SendAsync(RawHttp.Get("/plaintext"));
            raw.Socket.Shutdown(SocketShutdown.Send); // FIN: Kestrel takes the end of its input for the client's close

            // Kestrel aborts the request of a client that closed (it may have answered first); the transport then closes
            // with a FIN, as Kestrel's Sockets transport does, not a reset.
            byte[] received = await ReceiveToEndAsync(raw.Socket).WaitAsync(Timeout);
            string text = Encoding.ASCII.GetString(received);
            Assert.True(text.Length == 0 || (text.StartsWith("HTTP/1.1 200", StringComparison.Ordinal) && text.EndsWith(WebDemo.PlainText, StringComparison.Ordinal)), text);
        }

        using (HttpClient client = Client(app))
        {
            Assert.Equal(WebDemo.PlainText, await client.GetStringAsync("/plaintext"));
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task The_server_half_closes_after_its_last_response_and_the_client_may_still_send()
    {
        WebApplication app = await StartAsync();
        await using (RawHttp raw = await RawHttp.ConnectAsync(Address(app)))
        {
            await raw.SendAsync("GET /plaintext HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            var response = await raw.ReadResponseAsync().WaitAsync(Timeout);
            Assert.Equal(200, response.Status);
            Assert.Equal(WebDemo.PlainText, response.Body);
            Assert.Equal(0, await raw.Socket.ReceiveAsync(new byte[1]).WaitAsync(Timeout)); // FIN after the response, no reset
        }

        await StopAndCheckAsync(app);
    }

    private static async Task<byte[]> ReceiveToEndAsync(Socket socket)
    {
        var all = new MemoryStream();
        byte[] buffer = new byte[4096];
        int n;
        while ((n = await socket.ReceiveAsync(buffer)) > 0) // a reset throws: the test fails
        {
            all.Write(buffer, 0, n);
        }

        return all.ToArray();
    }

    [Fact]
    public async Task Https_through_kestrels_own_tls_works_on_the_loop_transport()
    {
        using X509Certificate2 certificate = CreateTestCertificate();
        WebApplication app = await StartAsync(listen: listen => listen.UseHttps(certificate));
        Uri address = Address(app);
        Assert.Equal("https", address.Scheme);
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetCertHashString() == certificate.GetCertHashString(),
            },
        };
        using (var client = new HttpClient(handler) { BaseAddress = address, Timeout = Timeout })
        {
            Assert.Equal(WebDemo.PlainText, await client.GetStringAsync("/plaintext"));
            byte[] upload = TestPipes.RandomPayload(1024 * 1024, seed: 7);
            HttpResponseMessage posted = await client.PostAsync("/upload", new ByteArrayContent(upload));
            Assert.Equal($"{upload.Length} {Convert.ToHexStringLower(SHA256.HashData(upload))}", await posted.Content.ReadAsStringAsync());
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task A_client_that_resets_mid_request_aborts_that_request_and_the_server_goes_on()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        WebApplication app = await StartAsync(routes: a => a.MapPost("/slow-upload", async (HttpContext context) =>
        {
            byte[] buffer = new byte[16 * 1024];
            try
            {
                started.TrySetResult();
                while (await context.Request.Body.ReadAsync(buffer) > 0)
                {
                }

                ended.TrySetResult("completed");
            }
            catch (Exception ex)
            {
                // The read fails with the reset; RequestAborted fires too (from the thread pool, as on the Sockets transport).
                try
                {
                    await Task.Delay(System.Threading.Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    ended.TrySetResult($"aborted {ex.GetType().Name}");
                }

                throw;
            }
        }));
        Uri address = Address(app);

        RawHttp raw = await RawHttp.ConnectAsync(address);
        await raw.SendAsync("POST /slow-upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000\r\n\r\n");
        await raw.Socket.SendAsync(new byte[100_000]);
        await started.Task.WaitAsync(Timeout);
        raw.Socket.LingerState = new LingerOption(true, 0); // close with a reset
        await raw.DisposeAsync();

        string outcome = await ended.Task.WaitAsync(Timeout);
        Assert.Equal("aborted ConnectionResetException", outcome);

        using (HttpClient client = Client(app))
        {
            Assert.Equal(WebDemo.PlainText, await client.GetStringAsync("/plaintext")); // the server goes on
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task The_app_aborting_a_connection_closes_it_and_the_server_goes_on()
    {
        WebApplication app = await StartAsync(routes: a => a.MapGet("/abort", (HttpContext context) => context.Abort()));
        await using (RawHttp raw = await RawHttp.ConnectAsync(Address(app)))
        {
            await raw.SendAsync(RawHttp.Get("/abort"));

            // Closed without an answer, with a FIN as Kestrel's Sockets transport does (it shuts the socket down): the
            // request was read whole, nothing is stuck, so there is no reason for a reset.
            Assert.Empty(await ReceiveToEndAsync(raw.Socket).WaitAsync(Timeout));
        }

        using (HttpClient client = Client(app))
        {
            Assert.Equal(WebDemo.PlainText, await client.GetStringAsync("/plaintext"));
        }

        await StopAndCheckAsync(app);
    }

    [Fact]
    public async Task A_graceful_stop_lets_requests_in_flight_finish()
    {
        const int InFlight = 8;
        int entered = 0;
        var allIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        WebApplication app = await StartAsync(routes: a => a.MapGet("/slow", async () =>
        {
            if (Interlocked.Increment(ref entered) == InFlight)
            {
                allIn.TrySetResult();
            }

            await release.Task;
            return "done";
        }));
        LoopGroup group = app.Services.GetRequiredService<EventLoopTransportFactory>().Group!;
        using HttpClient client = Client(app, connections: InFlight);
        Task<string>[] requests = Enumerable.Range(0, InFlight).Select(_ => client.GetStringAsync("/slow")).ToArray();
        await allIn.Task.WaitAsync(Timeout);

        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());
        Task stop = app.StopAsync();
        await stopping.Task.WaitAsync(Timeout);
        Assert.False(stop.IsCompleted, "the stop did not wait for the requests in flight");
        release.SetResult();

        string[] answers = await Task.WhenAll(requests).WaitAsync(Timeout);
        Assert.All(answers, answer => Assert.Equal("done", answer));
        await stop.WaitAsync(Timeout);
        await app.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in group.Loops)
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }
    }

    /// <summary>A WebApplication with the Generic Host's group (<c>AddEventLoop</c>) and the transport: one group, the host's.</summary>
    private async Task<(WebApplication App, Hosting.HostingTests.CapturingLoggerProvider Logs)> StartOnHostedGroupAsync(
        Action<WebApplication> routes, bool useHostedGroup, int? transportLoopCount = null)
    {
        var logs = new Hosting.HostingTests.CapturingLoggerProvider();
        WebApplication app = WebDemo.Build(new IPEndPoint(IPAddress.Loopback, 0), WebTransport.EventLoop, o =>
        {
            o.ApplicationScheduling = Scheduling;
            o.UseHostedGroup = useHostedGroup;
            o.LoopCount = transportLoopCount;
            if (!useHostedGroup)
            {
                o.Policy = CreatePolicy();
                o.LoopCount = 1;
                o.LoopOptions = CreateOptions();
            }
        }, builder =>
        {
            builder.Logging.AddProvider(logs);
            builder.Services.AddEventLoop(o =>
            {
                o.Policy = CreatePolicy();
                o.LoopCount = 2;
            });
        });
        routes(app);
        await app.StartAsync().WaitAsync(Timeout);
        return (app, logs);
    }

    [Fact]
    public async Task With_AddEventLoop_kestrel_serves_on_the_hosts_loops_and_the_host_stops_them_after_its_requests()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var served = new ConcurrentQueue<(string Connection, Loop Loop, bool OnLoopThread)>();
        (WebApplication app, Hosting.HostingTests.CapturingLoggerProvider logs) = await StartOnHostedGroupAsync(a =>
        {
            a.MapGet("/loop", (HttpContext context) =>
            {
                Loop loop = context.Features.Get<IEventLoopConnectionFeature>()!.Loop;
                served.Enqueue((context.Connection.Id, loop, loop.IsOnLoopThread));
                return "ok";
            });
            a.MapGet("/slow", async () =>
            {
                entered.TrySetResult();
                await release.Task;
                return "done";
            });
        }, useHostedGroup: true);

        LoopGroup hosted = app.Services.GetRequiredService<EventLoop.Hosting.EventLoopService>().Group;
        var transport = app.Services.GetRequiredService<EventLoopTransportFactory>();
        Assert.True(transport.UsesHostedGroup);
        Assert.Same(hosted, transport.Group); // one group: the host's, not a second one
        using (HttpClient client = Client(app, connections: 4))
        {
            // 4 callers, 4 requests each one after the other: at most 4 connections, each reused.
            await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
            {
                for (int i = 0; i < 4; i++)
                {
                    await client.GetStringAsync("/loop");
                }
            })).WaitAsync(Timeout);
        }

        Assert.Equal(16, served.Count);
        Assert.All(served, s => Assert.Contains(hosted.Loops, thread => ReferenceEquals(thread.Loop, s.Loop))); // every connection lives on a host loop

        // The handler runs on that loop's thread when the option says so. Kestrel starts a connection's first request on the
        // thread pool, and goes on to the next request on the same thread when its bytes are already there as it finishes
        // the last (a busy machine, a quick client): a request runs on the loop when Kestrel waited for it. So with the
        // loop scheduling some request after the first on a connection ran on the loop (12 at least reused a connection),
        // and with the thread-pool scheduling none ever does.
        var later = served.GroupBy(s => s.Connection).SelectMany(requests => requests.Skip(1)).ToList();
        Assert.True(later.Count >= 12, $"{later.Count} requests reused a connection");
        if (Scheduling == EventLoopApplicationScheduling.Loop)
        {
            Assert.Contains(later, s => s.OnLoopThread);
        }
        else
        {
            Assert.All(served, s => Assert.False(s.OnLoopThread));
        }

        // The host stops Kestrel (which lets the request in flight finish) before it stops the loops its connection is on.
        using HttpClient slowClient = Client(app, connections: 1);
        Task<string> slow = slowClient.GetStringAsync("/slow");
        await entered.Task.WaitAsync(Timeout);
        Task stop = app.StopAsync();
        Assert.False(hosted.Loops.Any(thread => thread.Completion.IsCompleted), "the host stopped its loops before Kestrel had finished");
        release.SetResult();
        Assert.Equal("done", await slow.WaitAsync(Timeout));
        await stop.WaitAsync(Timeout);
        await app.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in hosted.Loops)
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }

        Assert.DoesNotContain(logs.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning && e.Category.StartsWith("EventLoop", StringComparison.Ordinal));
    }

    [Fact]
    public async Task On_the_hosts_group_the_transports_own_loop_count_is_ignored_with_a_warning()
    {
        (WebApplication app, Hosting.HostingTests.CapturingLoggerProvider logs) = await StartOnHostedGroupAsync(_ => { }, useHostedGroup: true, transportLoopCount: 3);
        LoopGroup hosted = app.Services.GetRequiredService<EventLoop.Hosting.EventLoopService>().Group;
        Assert.Same(hosted, app.Services.GetRequiredService<EventLoopTransportFactory>().Group);
        Assert.Equal(2, hosted.Loops.Count); // AddEventLoop's count, not the transport's 3
        Assert.Contains(logs.Entries, e => e.Category == "EventLoop.AspNetCore" && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning
            && e.Message.Contains("ignored", StringComparison.Ordinal) && e.Message.Contains("UseHostedGroup", StringComparison.Ordinal));
        await app.StopAsync().WaitAsync(Timeout);
        await app.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in hosted.Loops)
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }
    }

    [Fact]
    public async Task With_UseHostedGroup_false_the_transport_runs_a_group_of_its_own_beside_the_hosts()
    {
        var served = new ConcurrentQueue<Loop>();
        (WebApplication app, _) = await StartOnHostedGroupAsync(
            a => a.MapGet("/loop", (HttpContext context) =>
            {
                served.Enqueue(context.Features.Get<IEventLoopConnectionFeature>()!.Loop);
                return "ok";
            }),
            useHostedGroup: false);

        LoopGroup hosted = app.Services.GetRequiredService<EventLoop.Hosting.EventLoopService>().Group;
        var transport = app.Services.GetRequiredService<EventLoopTransportFactory>();
        Assert.False(transport.UsesHostedGroup);
        using (HttpClient client = Client(app))
        {
            Assert.Equal("ok", await client.GetStringAsync("/loop").WaitAsync(Timeout));
        }

        LoopGroup own = transport.Group!;
        Assert.NotSame(hosted, own);
        Assert.Single(own.Loops); // the transport's options apply to its own group
        Assert.Same(own.Loops[0].Loop, Assert.Single(served));
        await app.StopAsync().WaitAsync(Timeout);
        await app.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in hosted.Loops.Concat(own.Loops))
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }
    }

    [Fact]
    public async Task With_the_hosts_group_registered_after_the_web_host_the_bind_fails_naming_the_order()
    {
        // The older generic host starts its hosted services in registration order: here Kestrel's before the loop group's.
        using IHost host = Host.CreateDefaultBuilder()
            .ConfigureLogging(logging => logging.ClearProviders())
            .ConfigureWebHostDefaults(web => web
                .UseEventLoop(o => o.ApplicationScheduling = Scheduling)
                .UseKestrel(k => k.Listen(IPAddress.Loopback, 0))
                .Configure(app => app.Run(context => context.Response.WriteAsync("unreachable"))))
            .ConfigureServices(services => services.AddEventLoop(o => o.Policy = CreatePolicy()))
            .Build();
        Exception failure = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync().WaitAsync(Timeout));
        Exception cause = failure;
        while (cause is not InvalidOperationException && cause.InnerException is not null)
        {
            cause = cause.InnerException;
        }

        Assert.IsType<InvalidOperationException>(cause);
        Assert.Contains("not running yet", cause.Message, StringComparison.Ordinal);
        Assert.Contains("AddEventLoop", cause.Message, StringComparison.Ordinal);
        await host.StopAsync().WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_stop_closes_idle_keep_alive_connections_whose_clients_stay_silent()
    {
        // No shutdown timeout: Kestrel never aborts, so the stop completes only if closing an idle connection ends it on
        // the transport's side too, without the client closing first.
        WebApplication app = await StartAsync(builder: b => b.Services.Configure<HostOptions>(o => o.ShutdownTimeout = System.Threading.Timeout.InfiniteTimeSpan));
        LoopGroup group = app.Services.GetRequiredService<EventLoopTransportFactory>().Group!;
        await using RawHttp raw = await RawHttp.ConnectAsync(Address(app));
        await raw.SendAsync(RawHttp.Get("/plaintext"));
        Assert.Equal(WebDemo.PlainText, (await raw.ReadResponseAsync().WaitAsync(Timeout)).Body);

        await app.StopAsync().WaitAsync(Timeout); // the client keeps its socket open throughout
        Assert.Equal(0, await raw.Socket.ReceiveAsync(new byte[1]).WaitAsync(Timeout)); // closed by the server with a FIN
        await app.DisposeAsync().AsTask().WaitAsync(Timeout);
        foreach (LoopThread thread in group.Loops)
        {
            await thread.Completion.WaitAsync(Timeout);
            AssertClosedCleanly(thread.Loop);
        }
    }

    /// <summary>A self-signed certificate for 127.0.0.1, with its private key usable by SslStream on every platform.</summary>
    private static X509Certificate2 CreateTestCertificate()
    {
        using RSA key = RSA.Create(2048);
        var request = new CertificateRequest("CN=EventLoop test", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using X509Certificate2 created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), password: null);
    }
}

public sealed class ManagedKestrelTransportTests : KestrelTransportTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();

    protected override EventLoopApplicationScheduling Scheduling => EventLoopApplicationScheduling.ThreadPool;
}

public sealed class LibuvKestrelTransportTests : KestrelTransportTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    protected override EventLoopApplicationScheduling Scheduling => EventLoopApplicationScheduling.ThreadPool;
}

public sealed class ManagedKestrelTransportOnLoopTests : KestrelTransportTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Managed();

    protected override EventLoopApplicationScheduling Scheduling => EventLoopApplicationScheduling.Loop;
}

public sealed class LibuvKestrelTransportOnLoopTests : KestrelTransportTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();

    protected override EventLoopApplicationScheduling Scheduling => EventLoopApplicationScheduling.Loop;
}
