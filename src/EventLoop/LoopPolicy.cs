using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using EventLoop.Managed;

namespace EventLoop;

/// <summary>
/// Creates loops of one kind. The two policies are <see cref="ManagedLoopPolicy"/> (pure .NET, the
/// default) and <c>EventLoop.Libuv.LibuvLoopPolicy</c> (the libuv "fast loop").
/// </summary>
public abstract class LoopPolicy
{
    /// <summary>The policy's short name, as <c>EVENTLOOP_POLICY</c> spells it: <c>managed</c> or <c>libuv</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Creates a new loop, not yet running. Run it with <see cref="Loop.RunUntilComplete(Func{Task})"/>.</summary>
    public abstract Loop CreateLoop(LoopOptions? options = null);

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>
/// The pure .NET loop: no native dependency. The default policy. On Linux it polls its sockets itself with epoll
/// (through libc); elsewhere, or with the environment variable <c>EVENTLOOP_MANAGED_IO=sockets</c>, it uses
/// <see cref="System.Net.Sockets.Socket"/>'s asynchronous operations, whose completions post back to the loop.
/// </summary>
public sealed class ManagedLoopPolicy : LoopPolicy
{
    private readonly bool? _useEpoll;

    /// <summary>The managed policy, with its own poller where the platform has one.</summary>
    public ManagedLoopPolicy()
    {
    }

    /// <summary>The managed policy with its I/O chosen explicitly (tests run the socket transport on Linux too).</summary>
    internal ManagedLoopPolicy(bool useEpoll) => _useEpoll = useEpoll;

    /// <inheritdoc />
    public override string Name => "managed";

    /// <inheritdoc />
    public override Loop CreateLoop(LoopOptions? options = null) => new ManagedLoop(options ?? new LoopOptions(), _useEpoll);
}

/// <summary>
/// The process-wide choice of loop policy, as asyncio's <c>set_event_loop_policy</c>. Prefer passing a
/// policy to <see cref="Loop.Run(Func{Task}, LoopPolicy, LoopOptions?)"/> explicitly; this is for apps that want one
/// line at startup.
/// </summary>
public static class EventLoopPolicy
{
    /// <summary>The environment variable that picks a policy when none was set: <c>managed</c> or <c>libuv</c>.</summary>
    public const string EnvironmentVariable = "EVENTLOOP_POLICY";

    private static LoopPolicy? s_current;

    /// <summary>
    /// The policy <see cref="Loop.Run(Func{Task})"/> uses: the one given to <see cref="Set"/>, else the one
    /// named by <c>EVENTLOOP_POLICY</c>, else <see cref="ManagedLoopPolicy"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// Nothing was set and <c>EVENTLOOP_POLICY</c> names no policy (it must be <c>managed</c> or <c>libuv</c>, or be
    /// unset): the first <see cref="Loop.Run(Func{Task})"/> without a policy throws this, naming the variable, its
    /// value and the valid values, rather than guess a loop. Nothing is cached, so fixing the variable (or calling
    /// <see cref="Set"/>) takes effect at the next call.
    /// </exception>
    public static LoopPolicy Current
    {
        get
        {
            LoopPolicy? current = Volatile.Read(ref s_current);
            if (current is not null)
            {
                return current;
            }

            string? name = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (!TryFromName(name, out LoopPolicy? fromEnvironment))
            {
                throw new InvalidOperationException(
                    $"The environment variable {EnvironmentVariable} is set to '{name}', which is not an event loop policy. " +
                    $"Set it to 'managed' or 'libuv', or unset it for the default (managed).");
            }

            return Interlocked.CompareExchange(ref s_current, fromEnvironment, null) ?? fromEnvironment;
        }
    }

    /// <summary>Sets the process-wide policy. Null goes back to the environment variable or the default.</summary>
    public static void Set(LoopPolicy? policy) => Volatile.Write(ref s_current, policy);

    /// <summary>
    /// The policy called <paramref name="name"/>: <c>managed</c> (or null/empty) or <c>libuv</c> (also <c>uv</c>);
    /// case and surrounding spaces do not matter.
    /// </summary>
    /// <exception cref="ArgumentException">The name is not a known policy; the message lists the valid names.</exception>
    /// <exception cref="InvalidOperationException"><c>libuv</c> was named but the EventLoop.Libuv assembly is not there.</exception>
    public static LoopPolicy FromName(string? name)
    {
        if (!TryFromName(name, out LoopPolicy? policy))
        {
            // The message alone (no parameter name), so it reads as one sentence wherever the name came from.
            throw new ArgumentException($"Unknown event loop policy '{name}'. The policies are 'managed' and 'libuv'.");
        }

        return policy;
    }

    private static bool TryFromName(string? name, [NotNullWhen(true)] out LoopPolicy? policy)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case null or "" or "managed":
                policy = new ManagedLoopPolicy();
                return true;
            case "libuv" or "uv":
                policy = CreateLibuvPolicy("EventLoop.Libuv");
                return true;
            default:
                policy = null;
                return false;
        }
    }

    /// <summary>Loads the libuv policy by name, so the core does not reference the native binding. Tests pass a missing name.</summary>
    internal static LoopPolicy CreateLibuvPolicy(string assemblyName)
    {
        Type? type = null;
        Exception? loadError = null;
        try
        {
            type = Assembly.Load(assemblyName).GetType("EventLoop.Libuv.LibuvLoopPolicy", throwOnError: false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
        {
            loadError = ex;
        }

        if (type is null)
        {
            throw new InvalidOperationException(
                "The 'libuv' loop policy lives in the EventLoop.Libuv assembly, which this app does not reference. " +
                "Add a reference to EventLoop.Libuv (dotnet add reference src/EventLoop.Libuv, or the EventLoop.Libuv package) " +
                "and create it with new LibuvLoopPolicy().",
                loadError);
        }

        return (LoopPolicy)Activator.CreateInstance(type)!;
    }
}
