using System.IO.Pipelines;

namespace EventLoop;

public abstract partial class Loop
{
    private LoopFileSystem? _files;

    /// <summary>Asynchronous file system calls on this loop (open, read and write at offsets, stat, rename, delete, list).</summary>
    public LoopFileSystem Files => _files ??= CreateFileSystem();

    /// <summary>The policy's file system.</summary>
    private protected abstract LoopFileSystem CreateFileSystem();

    /// <summary>
    /// Sends <paramref name="count"/> bytes of <paramref name="file"/> from <paramref name="offset"/> (to its end when
    /// <paramref name="count"/> is null) over <paramref name="connection"/> (asyncio's <c>loop.sendfile</c>): the file is
    /// read straight into the connection's output buffers, and the connection's backpressure paces the reads. Returns
    /// the bytes sent; fewer than asked only when the file ends first. The connection stays open.
    /// </summary>
    /// <exception cref="IOException">The connection failed (reset or closed) while sending.</exception>
    public async Task<long> SendFileAsync(Connection connection, LoopFile file, long offset = 0, long? count = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(file);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (count is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "The count must not be negative (null sends to the end of the file).");
        }

        CheckLoopThread();
        const int ChunkSize = 64 * 1024;
        PipeWriter output = connection.Output;
        long sent = 0;
        long left = count ?? long.MaxValue;
        while (left > 0)
        {
            Memory<byte> memory = output.GetMemory(ChunkSize);
            if (memory.Length > left)
            {
                memory = memory[..(int)left];
            }

            int read = await file.ReadAsync(memory, offset + sent, cancellationToken).ConfigureAwait(true);
            if (read == 0)
            {
                break; // the end of the file
            }

            output.Advance(read);
            sent += read;
            left -= read;
            FlushResult flush = await output.FlushAsync(cancellationToken).ConfigureAwait(true);
            if (flush.IsCompleted)
            {
                throw new IOException($"The connection stopped sending after {sent} bytes of '{file.Path}'.");
            }
        }

        return sent;
    }
}
