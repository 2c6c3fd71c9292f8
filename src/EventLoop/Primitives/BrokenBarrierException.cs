namespace EventLoop;

/// <summary>
/// Thrown by <see cref="AsyncBarrier.SignalAndWaitAsync"/> when the barrier is broken (<see cref="AsyncBarrier.Abort"/>)
/// or reset while the task waited (<see cref="AsyncBarrier.Reset"/>): asyncio's <c>BrokenBarrierError</c>.
/// </summary>
public sealed class BrokenBarrierException : InvalidOperationException
{
    /// <summary>Creates the exception with a default message.</summary>
    public BrokenBarrierException()
        : base("The barrier is broken.")
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    public BrokenBarrierException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/> and an inner exception.</summary>
    public BrokenBarrierException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
