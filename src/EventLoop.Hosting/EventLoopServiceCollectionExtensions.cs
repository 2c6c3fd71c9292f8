using EventLoop.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers EventLoop's loop group and loop workers with a Generic Host.</summary>
public static class EventLoopServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="EventLoop.LoopGroup"/> as a hosted service (<see cref="EventLoopService"/>): it starts with the host and
    /// stops gracefully with it. Options come from the configuration section <c>EventLoop</c> (Policy, LoopCount, Debug,
    /// SlowCallbackThreshold), then from <paramref name="configure"/>. The loops' exception reports and warnings go to the
    /// host's <c>ILogger</c> (category <c>EventLoop</c>).
    /// </summary>
    public static IServiceCollection AddEventLoop(this IServiceCollection services, Action<EventLoopHostOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<EventLoopHostOptions>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<EventLoopHostOptions>, ConfigureFromConfiguration>());
        if (configure is not null)
        {
            services.Configure(configure);
        }

        if (!services.Any(d => d.ServiceType == typeof(EventLoopService)))
        {
            services.AddSingleton<EventLoopService>();
            services.AddSingleton<IHostedService>(provider => provider.GetRequiredService<EventLoopService>());
        }

        return services;
    }

    /// <summary>Registers <typeparamref name="TWorker"/> as a hosted worker on the loop group (after <see cref="AddEventLoop"/>).</summary>
    public static IServiceCollection AddLoopWorker<TWorker>(this IServiceCollection services)
        where TWorker : LoopBackgroundService
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddHostedService<TWorker>();
        return services;
    }

    private sealed class ConfigureFromConfiguration(IConfiguration? configuration = null) : IConfigureOptions<EventLoopHostOptions>
    {
        public void Configure(EventLoopHostOptions options)
        {
            if (configuration is not null)
            {
                options.ReadFrom(configuration.GetSection(EventLoopHostOptions.SectionName));
            }
        }
    }
}
