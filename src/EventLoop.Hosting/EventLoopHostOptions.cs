using Microsoft.Extensions.Configuration;

namespace EventLoop.Hosting;

/// <summary>
/// Options of the hosted loop group (<see cref="Microsoft.Extensions.DependencyInjection.EventLoopServiceCollectionExtensions.AddEventLoop"/>), read from the
/// configuration section <c>EventLoop</c> (<c>appsettings.json</c>, or environment variables such as
/// <c>EventLoop__Policy=libuv</c> and <c>EventLoop__LoopCount=4</c>) and then from the code's configure callback.
/// </summary>
public sealed class EventLoopHostOptions
{
    /// <summary>The configuration section the options are read from: <c>EventLoop</c>.</summary>
    public const string SectionName = "EventLoop";

    /// <summary>The policy by name, <c>managed</c> or <c>libuv</c> (configuration key <c>Policy</c>); used when <see cref="Policy"/> is null. Null for <see cref="EventLoopPolicy.Current"/>.</summary>
    public string? PolicyName { get; set; }

    /// <summary>The policy object; wins over <see cref="PolicyName"/>.</summary>
    public LoopPolicy? Policy { get; set; }

    /// <summary>How many loops, each on its own thread (configuration key <c>LoopCount</c>). Default 1.</summary>
    public int LoopCount { get; set; } = 1;

    /// <summary>The loops' debug mode (configuration key <c>Debug</c>): slow callbacks are logged, and reports name their callback.</summary>
    public bool? Debug { get; set; }

    /// <summary>The slow-callback threshold in debug mode (configuration key <c>SlowCallbackThreshold</c>, a TimeSpan such as <c>00:00:00.050</c>).</summary>
    public TimeSpan? SlowCallbackThreshold { get; set; }

    /// <summary>How long the host's stop lets the group stop gracefully before it gives up waiting. Default 5 s (the host's own shutdown timeout also applies).</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The policy the options name.</summary>
    /// <exception cref="InvalidOperationException">An unknown name, or <c>libuv</c> without EventLoop.Libuv.</exception>
    public LoopPolicy ResolvePolicy() => Policy ?? (PolicyName is null ? EventLoopPolicy.Current : EventLoopPolicy.FromName(PolicyName));

    /// <summary>Reads the keys of <paramref name="section"/> (Policy, LoopCount, Debug, SlowCallbackThreshold) into these options.</summary>
    /// <exception cref="InvalidOperationException">A value cannot be read; the message names the key.</exception>
    public void ReadFrom(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        if (section["Policy"] is { Length: > 0 } policy)
        {
            PolicyName = policy;
        }

        if (section["LoopCount"] is { Length: > 0 } count)
        {
            LoopCount = int.TryParse(count, System.Globalization.CultureInfo.InvariantCulture, out int parsed) && parsed >= 1
                ? parsed
                : throw new InvalidOperationException($"Configuration {SectionName}:LoopCount must be a whole number of at least 1, not '{count}'.");
        }

        if (section["Debug"] is { Length: > 0 } debug)
        {
            Debug = bool.TryParse(debug, out bool parsed)
                ? parsed
                : throw new InvalidOperationException($"Configuration {SectionName}:Debug must be true or false, not '{debug}'.");
        }

        if (section["SlowCallbackThreshold"] is { Length: > 0 } threshold)
        {
            SlowCallbackThreshold = TimeSpan.TryParse(threshold, System.Globalization.CultureInfo.InvariantCulture, out TimeSpan parsed)
                ? parsed
                : throw new InvalidOperationException($"Configuration {SectionName}:SlowCallbackThreshold must be a TimeSpan (such as 00:00:00.050), not '{threshold}'.");
        }
    }
}
