namespace EventLoop;

/// <summary>
/// Thrown by <see cref="AsyncQueue{T}.GetAsync"/> once the queue was completed and every item was taken, and by
/// <see cref="AsyncQueue{T}.PutAsync"/> once it was completed: asyncio's <c>QueueShutDown</c>, the
/// <c>ChannelClosedException</c> of System.Threading.Channels. When the queue was completed with an error,
/// <see cref="Exception.InnerException"/> is that error.
/// </summary>
public sealed class QueueCompletedException : InvalidOperationException
{
    /// <summary>Creates the exception with a default message.</summary>
    public QueueCompletedException()
        : base("The queue was completed: no more items will come.")
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    public QueueCompletedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/> and the error the queue was completed with.</summary>
    public QueueCompletedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
