using EventLoop.AspNetCore;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Selects the EventLoop transport for Kestrel.</summary>
public static class EventLoopWebHostBuilderExtensions
{
    /// <summary>
    /// Serves Kestrel's TCP endpoints on a group of EventLoop loops instead of its Sockets transport:
    /// <c>builder.WebHost.UseEventLoop(o =&gt; { o.Policy = new LibuvLoopPolicy(); o.LoopCount = 2; });</c>
    /// Endpoints that are not IP addresses (Unix sockets, named pipes) stay on the other transports. When the app also calls
    /// <c>services.AddEventLoop()</c>, Kestrel runs on that hosted group (one set of loops, started and stopped with the host)
    /// unless <see cref="EventLoopTransportOptions.UseHostedGroup"/> is false; see <see cref="EventLoopTransportFactory"/>.
    /// </summary>
    /// <param name="builder">The web host builder (<c>WebApplicationBuilder.WebHost</c>).</param>
    /// <param name="configure">Sets the transport's options; null for the defaults.</param>
    public static IWebHostBuilder UseEventLoop(this IWebHostBuilder builder, Action<EventLoopTransportOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices(services =>
        {
            services.AddOptions<EventLoopTransportOptions>();
            if (configure is not null)
            {
                services.Configure(configure);
            }

            // Kestrel asks the factories registered last first, so ours comes before the Sockets transport.
            services.RemoveAll<EventLoopTransportFactory>();
            services.AddSingleton<EventLoopTransportFactory>();
            services.AddSingleton<IConnectionListenerFactory>(provider => provider.GetRequiredService<EventLoopTransportFactory>());
        });
    }
}
