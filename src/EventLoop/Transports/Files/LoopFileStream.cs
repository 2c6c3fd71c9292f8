using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A sequential <see cref="Stream"/> over a <see cref="LoopFile"/> (see <see cref="LoopFile.AsStream"/>). Async only.
/// Callers that leave the loop (<c>Stream.CopyToAsync</c> awaits with <c>ConfigureAwait(false)</c>) are taken back to it.
/// </summary>
internal sealed class LoopFileStream(LoopFile file, long position, FileAccess access) : Stream
{
    private long _position = position;

    public override bool CanRead => (access & FileAccess.Read) != 0;

    public override bool CanWrite => (access & FileAccess.Write) != 0;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException("A LoopFile stream is sequential: use LoopFile.GetLengthAsync.");

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException("A LoopFile stream is sequential: open another with LoopFile.AsStream(position).");
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await new LoopSwitch(file.OwnerLoop);
        int read = await file.ReadAsync(buffer, _position, cancellationToken).ConfigureAwait(true);
        _position += read;
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await new LoopSwitch(file.OwnerLoop);
        await file.WriteAsync(buffer, _position, cancellationToken).ConfigureAwait(true);
        _position += buffer.Length;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask; // every write went to the file

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw Blocking();

    public override void Write(byte[] buffer, int offset, int count) => throw Blocking();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("A LoopFile stream is sequential: open another with LoopFile.AsStream(position).");

    public override void SetLength(long value) => throw new NotSupportedException("A LoopFile stream cannot change the file's length.");

    private static NotSupportedException Blocking() =>
        new("A LoopFile stream is asynchronous only: a synchronous read or write would block the loop. Use ReadAsync/WriteAsync.");
}
