using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// An open file on a loop (<see cref="LoopFileSystem.OpenAsync"/>): positional reads and writes that run off the loop
/// thread and complete on it, several at once if wanted (no shared position to race on). <see cref="AsStream"/>
/// gives a sequential <see cref="Stream"/> over it. Dispose it to close the file: the close waits for the reads and
/// writes in flight. A file still open when its loop shuts down is closed by the loop.
/// </summary>
public abstract class LoopFile : IAsyncDisposable
{
    private readonly FileAccess _access;
    private readonly ResourceNode _node;
    private Task? _closing;
    private int _inFlight;
    private TaskCompletionSource? _drained;

    private protected LoopFile(Loop loop, string path, FileAccess access)
    {
        Loop = loop;
        Path = path;
        _access = access;
        _node = new ResourceNode(this);
        loop.RegisterShutdown(_node);
    }

    private protected Loop Loop { get; }

    internal Loop OwnerLoop => Loop;

    /// <summary>The path the file was opened with.</summary>
    public string Path { get; }

    /// <summary>True once <see cref="DisposeAsync"/> was called (or the loop closed the file).</summary>
    public bool IsClosed => _closing is not null;

    /// <summary>
    /// Reads up to <paramref name="buffer"/>'s length from <paramref name="offset"/>; returns the bytes read, 0 at the
    /// end of the file. The buffer must stay untouched until the read completes.
    /// </summary>
    /// <exception cref="NotSupportedException">The file was opened write-only.</exception>
    /// <exception cref="ObjectDisposedException">The file is closed.</exception>
    public ValueTask<int> ReadAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken = default)
    {
        CheckUsable(offset, FileAccess.Read);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        return buffer.IsEmpty ? new ValueTask<int>(0) : Track(ReadCoreAsync(buffer, offset, cancellationToken));
    }

    /// <summary>Counts an operation in flight until it completes, so the close waits for it (a descriptor is never closed under a read).</summary>
    private async ValueTask<T> Track<T>(ValueTask<T> operation)
    {
        if (operation.IsCompleted)
        {
            return operation.Result;
        }

        _inFlight++;
        try
        {
            return await operation.ConfigureAwait(true);
        }
        finally
        {
            if (--_inFlight == 0)
            {
                _drained?.TrySetResult();
            }
        }
    }

    /// <summary>Writes all of <paramref name="buffer"/> at <paramref name="offset"/> (extending the file if needed).</summary>
    /// <exception cref="NotSupportedException">The file was opened read-only.</exception>
    /// <exception cref="ObjectDisposedException">The file is closed.</exception>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, long offset, CancellationToken cancellationToken = default)
    {
        CheckUsable(offset, FileAccess.Write);
        cancellationToken.ThrowIfCancellationRequested();
        while (!buffer.IsEmpty)
        {
            int written = await Track(WriteCoreAsync(buffer, offset, cancellationToken)).ConfigureAwait(true);
            buffer = buffer[written..];
            offset += written;
        }
    }

    /// <summary>The file's current length (<c>fstat</c>).</summary>
    public Task<long> GetLengthAsync(CancellationToken cancellationToken = default)
    {
        CheckUsable(0, 0);
        return cancellationToken.IsCancellationRequested
            ? Task.FromCanceled<long>(cancellationToken)
            : Track(new ValueTask<long>(GetLengthCoreAsync(cancellationToken))).AsTask();
    }

    /// <summary>
    /// A <see cref="Stream"/> that reads and writes sequentially from <paramref name="position"/> (not seekable; the
    /// synchronous methods throw: they would block the loop). Disposing the stream does not close the file.
    /// </summary>
    public Stream AsStream(long position = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        return new LoopFileStream(this, position, _access);
    }

    /// <summary>Closes the file once the reads and writes in flight have finished. Safe from any thread; every call returns the same close.</summary>
    public ValueTask DisposeAsync()
    {
        if (!Loop.IsOnLoopThread)
        {
            return LoopHop.RunOnLoopAsync(Loop, this, static f => f.DisposeAsync());
        }

        if (_closing is null)
        {
            Loop.UnregisterShutdown(_node);
            _closing = CloseAfterOperationsAsync();
        }

        return new ValueTask(_closing);
    }

    private async Task CloseAfterOperationsAsync()
    {
        if (_inFlight > 0)
        {
            _drained = new TaskCompletionSource();
            await _drained.Task.ConfigureAwait(true);
        }

        await CloseCoreAsync().ConfigureAwait(true);
    }

    private void CheckUsable(long offset, FileAccess needed)
    {
        Loop.CheckLoopThread();
        ObjectDisposedException.ThrowIf(_closing is not null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (needed != 0 && (_access & needed) == 0)
        {
            throw new NotSupportedException($"The file '{Path}' was opened {(_access == FileAccess.Read ? "read-only" : "write-only")}: it cannot be {(needed == FileAccess.Read ? "read" : "written")}.");
        }
    }

    /// <summary>Reads once; the buffer is not empty. Loop thread.</summary>
    private protected abstract ValueTask<int> ReadCoreAsync(Memory<byte> buffer, long offset, CancellationToken cancellationToken);

    /// <summary>Writes once (possibly part of the buffer); returns the bytes written. Loop thread.</summary>
    private protected abstract ValueTask<int> WriteCoreAsync(ReadOnlyMemory<byte> buffer, long offset, CancellationToken cancellationToken);

    private protected abstract Task<long> GetLengthCoreAsync(CancellationToken cancellationToken);

    /// <summary>Closes once the operations in flight are done. Called once, on the loop thread.</summary>
    private protected abstract Task CloseCoreAsync();

    /// <inheritdoc />
    public override string ToString() => $"file '{Path}' on the {Loop.PolicyName} loop" + (IsClosed ? " (closed)" : "");

    private sealed class ResourceNode(LoopFile owner) : ShutdownNode
    {
        internal override bool IsResource => true;

        internal override void OnShutdown() => _ = owner.DisposeAsync(); // after what is in flight
    }
}
