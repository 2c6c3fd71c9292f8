using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EventLoop.Internal;

/// <summary>
/// A <see cref="MemoryPool{T}"/> of fixed-size blocks allocated on the pinned object heap, for the pipes of
/// libuv connections: libuv reads straight into them and writes straight from them, and pinning one is free
/// (no GCHandle). Blocks are reused; the pool is safe to rent from and return to from any thread, because an
/// application may consume a pipe off the loop. Two sizes: <see cref="BlockSize"/> for what a pipe asks by
/// default, and <see cref="LargeBlockSize"/> for a request larger than that (a libuv connection reading large
/// messages asks for one, so a 100 KiB message is one read, as uvloop's 256 KiB buffer makes it).
/// </summary>
internal sealed class PinnedBlockPool : MemoryPool<byte>
{
    /// <summary>
    /// The block size. 64 KiB, so a big message needs few read calls (uvloop reads into 256 KiB). A block is
    /// taken only when bytes arrive (libuv calls the alloc callback once the socket is readable) and goes back
    /// once the application has consumed it, so idle connections hold none.
    /// </summary>
    public const int BlockSize = 64 * 1024;

    /// <summary>
    /// The large block size, for a request larger than <see cref="BlockSize"/> (the pool's
    /// <see cref="MaxBufferSize"/>, so a pipe asked for up to this much takes it from here, pinned).
    /// </summary>
    public const int LargeBlockSize = 128 * 1024;

    private const int MaxRetained = 256; // at most 16 MiB kept for reuse
    private const int MaxRetainedLarge = 32; // and 4 MiB of large blocks

    private readonly Stack<Block> _free = new();
    private readonly Stack<Block> _freeLarge = new();
    private readonly Lock _lock = new();
    private bool _disposed;

    private int _rented;
    private long _rentedBytes;

    public override int MaxBufferSize => LargeBlockSize;

    /// <summary>Blocks rented and not yet returned: bytes buffered in pipes right now, in blocks. Tests read it.</summary>
    internal int RentedCount => Volatile.Read(ref _rented);

    /// <summary>Bytes in blocks rented and not yet returned (blocks of both sizes). Tests read it.</summary>
    internal long RentedBytes => Volatile.Read(ref _rentedBytes);

    /// <summary>Bytes in blocks kept for reuse (at most 16 MiB of small and 4 MiB of large blocks). Tests read it.</summary>
    internal long RetainedBytes
    {
        get
        {
            lock (_lock)
            {
                return ((long)_free.Count * BlockSize) + ((long)_freeLarge.Count * LargeBlockSize);
            }
        }
    }

    /// <summary>Blocks kept for reuse (at most 256 small and 32 large). Tests read it.</summary>
    internal int RetainedCount
    {
        get
        {
            lock (_lock)
            {
                return _free.Count + _freeLarge.Count;
            }
        }
    }

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > LargeBlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize, $"The pool's largest blocks are {LargeBlockSize} bytes.");
        }

        bool large = minBufferSize > BlockSize;
        lock (_lock)
        {
            _rented++;
            _rentedBytes += large ? LargeBlockSize : BlockSize;
            if ((large ? _freeLarge : _free).TryPop(out Block? block))
            {
                block.Rented = true;
                return block;
            }
        }

        return new Block(this, large ? LargeBlockSize : BlockSize) { Rented = true };
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
            _rentedBytes -= block.Length;
            Stack<Block> free = block.Length == BlockSize ? _free : _freeLarge;
            if (!_disposed && free.Count < (block.Length == BlockSize ? MaxRetained : MaxRetainedLarge))
            {
                free.Push(block);
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        lock (_lock)
        {
            _disposed = true;
            _free.Clear();
            _freeLarge.Clear();
        }
    }

    private sealed unsafe class Block(PinnedBlockPool pool, int length) : MemoryManager<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(length, pinned: true);

        public bool Rented;

        public int Length => _array.Length;

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
