using EventLoop.Internal;

namespace EventLoop;

/// <summary>
/// A callback scheduled with <see cref="Loop.CallSoon(Action)"/>, <see cref="Loop.CallLater(TimeSpan, Action)"/>,
/// <see cref="Loop.CallAt(TimeSpan, Action)"/> or <see cref="Loop.CallSoonThreadSafe(Action)"/>:
/// asyncio's <c>Handle</c>/<c>TimerHandle</c>. It is a small struct over a pooled item, so scheduling
/// allocates nothing; once the callback has run (or been cancelled) the handle goes stale and
/// <see cref="Cancel"/> does nothing.
/// </summary>
public readonly struct LoopHandle : IEquatable<LoopHandle>
{
    private readonly CallbackItem? _item;
    private readonly int _version;
    private readonly Loop? _loop;
    private readonly bool _isTimer;
    private readonly long _readyPosition; // ready-queue index + 1 for handles without an item; 0 in default handles

    internal LoopHandle(Loop loop, CallbackItem item, int version, bool isTimer)
    {
        _loop = loop;
        _item = item;
        _version = version;
        _isTimer = isTimer;
    }

    internal LoopHandle(Loop loop, long readyIndex)
    {
        _loop = loop;
        _readyPosition = readyIndex + 1;
    }

    /// <summary>True while the callback is scheduled and neither run nor cancelled. Read it on the loop thread.</summary>
    public bool IsPending => _item is not null ? _item.IsPending(_version) : _readyPosition > 0 && _loop!.IsReadyIndexPending(_readyPosition - 1);

    /// <summary>True if <see cref="Cancel"/> stopped this callback and the loop has not yet passed over it.</summary>
    public bool IsCancelled => _item is not null ? _item.IsCancelled(_version) : _readyPosition > 0 && _loop!.IsReadyIndexCancelled(_readyPosition - 1);

    /// <summary>
    /// Cancels the callback if it has not run yet; any number of times. Loop-affine, as asyncio's
    /// <c>Handle.cancel</c>: from another thread, cancel through <see cref="Loop.CallSoonThreadSafe(Action)"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called off the loop thread.</exception>
    /// <returns>True if this call cancelled it; false if it already ran or was cancelled.</returns>
    public bool Cancel()
    {
        if (_item is null)
        {
            return _readyPosition > 0 && _loop!.CancelReadyIndex(_readyPosition - 1);
        }

        _loop!.CheckLoopThreadOrClosed();
        if (!_item.TryCancel(_version))
        {
            return false;
        }

        if (_isTimer)
        {
            _loop!.OnTimerCancelled(_item);
        }

        return true;
    }

    /// <inheritdoc />
    public bool Equals(LoopHandle other) =>
        ReferenceEquals(_loop, other._loop) && ReferenceEquals(_item, other._item) && _version == other._version && _readyPosition == other._readyPosition;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is LoopHandle other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(_item, _version, _readyPosition);

    /// <summary>Compares two handles.</summary>
    public static bool operator ==(LoopHandle left, LoopHandle right) => left.Equals(right);

    /// <summary>Compares two handles.</summary>
    public static bool operator !=(LoopHandle left, LoopHandle right) => !left.Equals(right);
}
