using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;
using EventLoop.Transports;

namespace EventLoop.Libuv.Internal;

/// <summary>Small helpers shared by the libuv TCP types: addresses, requests, options.</summary>
internal static unsafe class LibuvTcp
{
    /// <summary>Room for any socket address (sockaddr_storage is 128 bytes).</summary>
    private const int MaxAddressSize = 128;

    /// <summary>The local or peer address of a TCP handle, or null if it has none (not connected).</summary>
    public static IPEndPoint? GetEndPoint(IntPtr handle, AddressFamily family, bool peer)
    {
        byte* buffer = stackalloc byte[MaxAddressSize];
        int length = MaxAddressSize;
        int status = peer ? Uv.TcpGetPeerName(handle, buffer, &length) : Uv.TcpGetSockName(handle, buffer, &length);
        if (status < 0 || length <= 0)
        {
            return null;
        }

        var address = new SocketAddress(family, length);
        new ReadOnlySpan<byte>(buffer, length).CopyTo(address.Buffer.Span);
        try
        {
            return (IPEndPoint)new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0).Create(address);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>A zeroed request of <paramref name="type"/>, counted on <paramref name="loop"/> until <see cref="FreeRequest"/>.</summary>
    public static IntPtr NewRequest(LibuvLoop loop, Uv.ReqType type)
    {
        IntPtr req = (IntPtr)NativeMemory.AllocZeroed(Uv.ReqSize(type));
        loop.OpenRequests++;
        return req;
    }

    /// <summary>Frees a request libuv is done with (its callback ran, or it never started) and zeroes the field.</summary>
    public static void FreeRequest(LibuvLoop loop, ref IntPtr req)
    {
        if (req != IntPtr.Zero)
        {
            NativeMemory.Free((void*)req);
            req = IntPtr.Zero;
            loop.OpenRequests--;
        }
    }

    /// <summary>A new, initialised TCP handle on <paramref name="loop"/>; close it with <c>uv_close</c>.</summary>
    public static IntPtr NewTcpHandle(LibuvLoop loop)
    {
        IntPtr handle = loop.NewHandle(Uv.HandleType.Tcp);
        int status = Uv.TcpInit(loop.NativeLoop, handle);
        loop.Adopt(handle);
        if (status < 0)
        {
            LibuvLoop.FreeHandle(handle); // never initialised: nothing for libuv to close
            Uv.ThrowError(status, "uv_tcp_init");
        }

        return handle;
    }

    /// <summary>
    /// A new TCP handle for a listener with <see cref="TcpOptions.ReusePort"/>: its socket is created at once
    /// (<c>uv_tcp_init_ex</c>) so that <c>SO_REUSEPORT</c> can be set on it before the bind. Close it with <c>uv_close</c>.
    /// </summary>
    public static IntPtr NewReusePortTcpHandle(LibuvLoop loop, AddressFamily family)
    {
        IntPtr handle = loop.NewHandle(Uv.HandleType.Tcp);
        int status = Uv.TcpInitEx(loop.NativeLoop, handle, family == AddressFamily.InterNetworkV6 ? Libc.AfInet6 : Libc.AfInet);
        loop.Adopt(handle);
        if (status < 0)
        {
            LibuvLoop.FreeHandle(handle); // libuv took it back out of the loop's handle queue: nothing to close
            Uv.ThrowError(status, "uv_tcp_init_ex");
        }

        status = Libc.SetReusePort(Uv.Fileno(handle));
        if (status < 0)
        {
            CloseUnowned(handle);
            Uv.ThrowError(status, "setsockopt(SO_REUSEPORT)");
        }

        return handle;
    }

    /// <summary>Closes a handle nobody owns yet (failed listen or connect); its memory is freed in the callback.</summary>
    public static void CloseUnowned(IntPtr handle)
    {
        if (!Uv.IsClosing(handle))
        {
            Uv.Close(handle, &LibuvLoop.OnClosed);
        }
    }

    /// <summary>Applies the socket options; returns a libuv status and, on failure, the option that failed.</summary>
    public static int ApplyOptions(IntPtr handle, TcpOptions options, out string option)
    {
        option = nameof(TcpOptions.NoDelay);
        int status = Uv.TcpNoDelay(handle, options.NoDelay);
        if (status == 0 && options.KeepAlive)
        {
            option = nameof(TcpOptions.KeepAliveDelay);
            status = Uv.TcpKeepAlive(handle, true, options.KeepAliveSeconds);
        }

        return status;
    }

    public static IPEndPoint RequireIPEndPoint(EndPoint endpoint, string parameterName) =>
        endpoint as IPEndPoint ?? throw new ArgumentException(
            $"Listening needs an IPEndPoint (an IP address and a port); got {endpoint.GetType().Name} '{endpoint}'.", parameterName);
}
