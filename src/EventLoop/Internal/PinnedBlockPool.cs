using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EventLoop.Internal;

/// <summary>
/// A <see cref="MemoryPool{T}"/> of fixed-size blocks allocated on the pinned object heap, for the pipes of
/// libuv connections: libuv reads straight into them and writes straight from them, and pinning one is free
/// (no GCHandle). Blocks are reused; the pool is safe to rent from and return to from any thread, because an
/// application may consume a pipe off the loop.
/// </summary>
internal sealed class PinnedBlockPool : MemoryPool<byte>
{
    /// <summary>
    /// The block size. 64 KiB, so a big message needs few read calls (uvloop reads into 256 KiB). A block is
    /// taken only when bytes arrive (libuv calls the alloc callback once the socket is readable) and goes back
    /// once the application has consumed it, so idle connections hold none.
    /// </summary>
    public const int BlockSize = 64 * 1024;

    private const int MaxRetained = 256; // at most 16 MiB kept for reuse

    private readonly Stack<Block> _free = new();
    private readonly Lock _lock = new();
    private bool _disposed;

    private int _rented;

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks rented and not yet returned: bytes buffered in pipes right now, in blocks. Tests read it.</summary>
    internal int RentedCount => Volatile.Read(ref _rented);

    /// <summary>Blocks kept for reuse (at most 256). Tests read it.</summary>
    internal int RetainedCount
    {
        get
        {
            lock (_lock)
            {
                return _free.Count;
            }
        }
    }

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > BlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize, $"The pool's blocks are {BlockSize} bytes.");
        }

        lock (_lock)
        {
            if (_free.TryPop(out Block? block))
            {
                block.Rented = true;
                _rented++;
                return block;
            }

            _rented++;
        }

        return new Block(this) { Rented = true };
    }

    private void Return(Block block)
    {
        lock (_lock)
        {
            if (!block.Rented)
            {
                return; // returned twice: keep one copy
            }

            block.Rented = false;
            _rented--;
            if (!_disposed && _free.Count < MaxRetained)
            {
                _free.Push(block);
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        lock (_lock)
        {
            _disposed = true;
            _free.Clear();
        }
    }

    private sealed unsafe class Block(PinnedBlockPool pool) : MemoryManager<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);

        public bool Rented;

        public override Span<byte> GetSpan() => _array;

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _array.Length);
            return new MemoryHandle((byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_array)) + elementIndex);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing) => pool.Return(this);
    }
}
