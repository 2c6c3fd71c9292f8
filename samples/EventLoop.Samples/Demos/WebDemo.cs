using System.Net;
using System.Security.Cryptography;
using EventLoop.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventLoop.Samples.Demos;

/// <summary>Which transport the web demo's Kestrel uses.</summary>
internal enum WebTransport
{
    /// <summary>EventLoop's transport on a loop group of the chosen policy.</summary>
    EventLoop,

    /// <summary>Kestrel's own Sockets transport (the baseline).</summary>
    Sockets,
}

/// <summary>
/// An unchanged minimal-API app (TechEmpower's plaintext and JSON, a body upload and a download, both checksummed) on
/// Kestrel, over EventLoop's transport (a group of loops of the chosen policy) or Kestrel's own Sockets transport.
/// </summary>
internal static class WebDemo
{
    /// <summary>The payload of /plaintext.</summary>
    public const string PlainText = "Hello, World!";

    /// <summary>Builds the app listening on <paramref name="endpoint"/> (port 0 picks one).</summary>
    public static WebApplication Build(
        IPEndPoint endpoint,
        WebTransport transport,
        Action<EventLoopTransportOptions>? configure = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions>? listen = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(endpoint, listen ?? (_ => { }));
            kestrel.Limits.MaxRequestBodySize = 64 * 1024 * 1024;
        });
        if (transport == WebTransport.EventLoop)
        {
            builder.WebHost.UseEventLoop(configure);
        }

        configureBuilder?.Invoke(builder);
        WebApplication app = builder.Build();
        MapRoutes(app);
        return app;
    }

    /// <summary>The demo's routes.</summary>
    public static void MapRoutes(IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => "EventLoop web demo: GET /plaintext, GET /json, POST /upload (answers length and SHA-256), GET /download/{bytes}");
        app.MapGet("/plaintext", () => Results.Text(PlainText, "text/plain"));
        app.MapGet("/json", () => Results.Json(new Greeting(PlainText), WebDemoJson.Default.Greeting));
        app.MapPost("/upload", async (HttpRequest request) =>
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[64 * 1024];
            long length = 0;
            int read;
            while ((read = await request.Body.ReadAsync(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                length += read;
            }

            return Results.Text($"{length} {Convert.ToHexStringLower(sha.GetHashAndReset())}");
        });
        app.MapGet("/download/{bytes:long}", async (long bytes, HttpResponse response) =>
        {
            response.ContentType = "application/octet-stream";
            response.ContentLength = bytes;
            byte[] chunk = new byte[64 * 1024];
            long sent = 0;
            while (sent < bytes)
            {
                int n = (int)Math.Min(chunk.Length, bytes - sent);
                FillPattern(chunk.AsSpan(0, n), sent);
                await response.Body.WriteAsync(chunk.AsMemory(0, n));
                sent += n;
            }
        });
    }

    /// <summary>The bytes of /download: byte i is (i * 31 + i / 4096) mod 251, so a client can check them.</summary>
    public static void FillPattern(Span<byte> span, long offset)
    {
        for (int i = 0; i < span.Length; i++)
        {
            long at = offset + i;
            span[i] = (byte)(((at * 31) + (at / 4096)) % 251);
        }
    }

    /// <summary>Runs the demo until Ctrl+C or SIGTERM; prints its address as the last line of its start.</summary>
    public static int Run(string policyName, int loops, IPAddress host, int port, WebTransport transport, EventLoopApplicationScheduling scheduling)
    {
        LoopPolicy? policy = transport == WebTransport.EventLoop ? EventLoopPolicy.FromName(policyName) : null;
        WebApplication app = Build(new IPEndPoint(host, port), transport, o =>
        {
            o.Policy = policy;
            o.LoopCount = loops;
            o.ApplicationScheduling = scheduling;
        });
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            string what = transport == WebTransport.EventLoop
                ? $"{policy!.Name} loop x {loops}, application on the {(scheduling == EventLoopApplicationScheduling.Loop ? "loop" : "thread pool")}"
                : "Kestrel Sockets transport";
            Console.WriteLine($"web on {address} ({what})");
        });
        app.Run();
        return 0;
    }
}

/// <summary>The JSON route's body.</summary>
internal sealed record Greeting(string Message);

/// <summary>Source-generated JSON for the demo (the slim builder has no reflection-based serializer).</summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(Greeting))]
internal sealed partial class WebDemoJson : System.Text.Json.Serialization.JsonSerializerContext;
