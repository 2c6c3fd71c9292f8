namespace EventLoop.AspNetCore;

/// <summary>
/// A connection feature of the EventLoop transport (<c>HttpContext.Features.Get&lt;IEventLoopConnectionFeature&gt;()</c>):
/// the loop the connection lives on, for code that wants to schedule work on it (through its thread-safe members).
/// </summary>
public interface IEventLoopConnectionFeature
{
    /// <summary>The loop whose thread reads and writes this connection's socket.</summary>
    Loop Loop { get; }

    /// <summary>Where Kestrel and the application run for this connection.</summary>
    EventLoopApplicationScheduling ApplicationScheduling { get; }
}
