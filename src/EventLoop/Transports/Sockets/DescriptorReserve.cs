using Microsoft.Win32.SafeHandles;

namespace EventLoop.Transports.Sockets;

/// <summary>
/// A few descriptors a listener holds back (open on <c>/dev/null</c>) and gives up when accepting runs out of
/// descriptors, so the process has some again for itself: the .NET runtime needs them to load code and to
/// start threads, and aborts ("Out of memory.") when it cannot get one. The listener accepts again only once it
/// can take the reserve back, which keeps that headroom. libuv keeps one such descriptor for the same reason.
/// </summary>
internal sealed class DescriptorReserve : IDisposable
{
    private const int Size = 8;
    private readonly SafeFileHandle?[] _handles = new SafeFileHandle?[Size];

    /// <summary>Opens the reserve; false (holding nothing) when descriptors are short, or off Unix, where this does not apply.</summary>
    public bool TryAcquire()
    {
        if (OperatingSystem.IsWindows())
        {
            return true;
        }

        for (int i = 0; i < _handles.Length; i++)
        {
            if (_handles[i] is not null)
            {
                continue;
            }

            try
            {
                _handles[i] = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Release(); // all or nothing: a partial reserve would only take descriptors from the process
                return false;
            }
        }

        return true;
    }

    /// <summary>Gives the descriptors back to the process.</summary>
    public void Release()
    {
        for (int i = 0; i < _handles.Length; i++)
        {
            _handles[i]?.Dispose();
            _handles[i] = null;
        }
    }

    public void Dispose() => Release();
}
