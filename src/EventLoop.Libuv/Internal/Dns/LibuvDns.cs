using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EventLoop.Internal;
using EventLoop.Libuv.Internal.Native;

namespace EventLoop.Libuv.Internal;

/// <summary>
/// One <c>uv_getaddrinfo</c> or <c>uv_getnameinfo</c> request on libuv's thread pool; the callback runs on the loop
/// thread, frees the result (<c>uv_freeaddrinfo</c>, always) and the request. Cancelling (the caller's token, or the
/// loop's shutdown) completes the task at once and asks libuv to drop the lookup (<c>uv_cancel</c>: done if it has
/// not started; one that runs finishes on the pool and its late callback only frees what it holds). Until that
/// callback the request is counted (the leak check) and is pending I/O (shutdown waits for it).
/// </summary>
internal sealed class LibuvDnsRequest<T> : ShutdownNode
{
    internal readonly LibuvLoop Loop;
    internal readonly TaskCompletionSource<T> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    internal readonly string What;
    internal readonly int Port;
    private IntPtr _req;
    private CancellationTokenRegistration _cancellation;

    internal LibuvDnsRequest(LibuvLoop loop, string what, int port)
    {
        Loop = loop;
        What = what;
        Port = port;
    }

    internal override bool IsResource => true;

    internal IntPtr NewRequest(Uv.ReqType type)
    {
        _req = LibuvTcp.NewRequest(Loop, type);
        Uv.SetData(_req, GCHandle.ToIntPtr(GCHandle.Alloc(this)));
        return _req;
    }

    internal Task<T> Started(int status, CancellationToken cancellationToken)
    {
        if (status < 0)
        {
            GCHandle.FromIntPtr(Uv.GetData(_req)).Free();
            LibuvTcp.FreeRequest(Loop, ref _req);
            return Task.FromException<T>(Uv.CreateException(status, What));
        }

        Loop.PendingIo++;
        Loop.RegisterShutdown(this);
        if (cancellationToken.CanBeCanceled)
        {
            _cancellation = cancellationToken.UnsafeRegister(
                static (state, token) =>
                {
                    var request = (LibuvDnsRequest<T>)state!;
                    if (request.Loop.IsOnLoopThread)
                    {
                        request.Cancel(token); // cancelled by loop code: at once, before the lookup can call back
                        return;
                    }

                    try
                    {
                        request.Loop.CallSoonThreadSafe(static s => s.Request.Cancel(s.Token), (Request: request, Token: token));
                    }
                    catch (InvalidOperationException)
                    {
                        // The loop is closing: its shutdown cancels the request.
                    }
                },
                this);
        }

        return Done.Task;
    }

    /// <summary>Completes the task as cancelled and asks libuv to drop the lookup. Loop thread.</summary>
    private void Cancel(CancellationToken token)
    {
        if (Done.Task.IsCompleted)
        {
            return;
        }

        Loop.UnregisterShutdown(this);
        if (_req != IntPtr.Zero)
        {
            Uv.Cancel(Loop.NativeLoop, _req); // EBUSY when it already runs: then it finishes and its callback frees it
        }

        Done.TrySetCanceled(token);
    }

    internal override void OnShutdown() => Cancel(new CancellationToken(canceled: true));

    /// <summary>The request is over (its callback ran): frees it and the handle to this object. Returns false if the task was already cancelled.</summary>
    internal bool Finish()
    {
        GCHandle.FromIntPtr(Uv.GetData(_req)).Free();
        LibuvTcp.FreeRequest(Loop, ref _req);
        Loop.PendingIo--;
        Loop.UnregisterShutdown(this);
        _cancellation.Dispose();
        return !Done.Task.IsCompleted;
    }
}

/// <summary>DNS on libuv: the entry points and the native callbacks of <see cref="LibuvDnsRequest{T}"/>.</summary>
internal static class LibuvDns
{
    private const int AfInet = 2;
    private const int AfInet6 = 10;
    private const int SockStream = 1;
    private const int NiNameRequired = 8; // NI_NAMEREQD: an address with no name is an error, as Dns.GetHostEntry says

    public static unsafe Task<IPEndPoint[]> GetAddrInfoAsync(LibuvLoop loop, string host, int port, AddressFamily family, CancellationToken cancellationToken)
    {
        var request = new LibuvDnsRequest<IPEndPoint[]>(loop, $"Resolving '{host}'", port);
        byte[] node = NullTerminated(host);
        var hints = new Uv.AddrInfo
        {
            Family = family switch { AddressFamily.InterNetwork => AfInet, AddressFamily.InterNetworkV6 => AfInet6, _ => 0 },
            SockType = SockStream, // one entry per address, not one per socket type
        };
        IntPtr req = request.NewRequest(Uv.ReqType.GetAddrInfo);
        int status;
        fixed (byte* name = node)
        {
            status = Uv.GetAddrInfo(loop.NativeLoop, req, &OnAddrInfo, name, null, &hints);
        }

        return request.Started(status, cancellationToken);
    }

    public static unsafe Task<string> GetNameInfoAsync(LibuvLoop loop, IPAddress address, CancellationToken cancellationToken)
    {
        var request = new LibuvDnsRequest<string>(loop, $"Looking up the name of {address}", 0);
        SocketAddress socketAddress = new IPEndPoint(address, 0).Serialize();
        IntPtr req = request.NewRequest(Uv.ReqType.GetNameInfo);
        int status;
        fixed (byte* native = socketAddress.Buffer.Span)
        {
            status = Uv.GetNameInfo(loop.NativeLoop, req, &OnNameInfo, native, NiNameRequired);
        }

        return request.Started(status, cancellationToken);
    }

    private static byte[] NullTerminated(string text)
    {
        byte[] bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    private static unsafe IPEndPoint[] ToEndPoints(Uv.AddrInfo* list, int port)
    {
        var endpoints = new List<IPEndPoint>();
        for (Uv.AddrInfo* info = list; info != null; info = info->Next)
        {
            AddressFamily family = info->Family switch { AfInet => AddressFamily.InterNetwork, AfInet6 => AddressFamily.InterNetworkV6, _ => AddressFamily.Unknown };
            if (family == AddressFamily.Unknown || info->Addr == null)
            {
                continue;
            }

            var address = new SocketAddress(family, (int)info->AddrLen);
            new ReadOnlySpan<byte>(info->Addr, (int)info->AddrLen).CopyTo(address.Buffer.Span);
            var endpoint = (IPEndPoint)new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0).Create(address);
            endpoints.Add(new IPEndPoint(endpoint.Address, port));
        }

        return endpoints.ToArray();
    }

    private static T? FromRequest<T>(IntPtr req) where T : class => GCHandle.FromIntPtr(Uv.GetData(req)).Target as T;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnAddrInfo(IntPtr req, int status, Uv.AddrInfo* result)
    {
        LibuvDnsRequest<IPEndPoint[]>? request = null;
        try
        {
            request = FromRequest<LibuvDnsRequest<IPEndPoint[]>>(req);
            if (request is not null && request.Finish())
            {
                IPEndPoint[] endpoints = status == 0 ? ToEndPoints(result, request.Port) : [];
                if (status < 0)
                {
                    request.Done.TrySetException(Uv.CreateException(status, request.What));
                }
                else if (endpoints.Length == 0)
                {
                    request.Done.TrySetException(new SocketException((int)SocketError.HostNotFound, $"{request.What}: no IP address found."));
                }
                else
                {
                    request.Done.TrySetResult(endpoints);
                }
            }
        }
        catch (Exception ex)
        {
            request?.Done.TrySetException(ex);
            LibuvLoop.ReportFromNative(request?.Loop, "getaddrinfo", ex);
        }
        finally
        {
            Uv.FreeAddrInfo(result); // always, whatever happened above
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnNameInfo(IntPtr req, int status, byte* hostname, byte* service)
    {
        LibuvDnsRequest<string>? request = null;
        try
        {
            request = FromRequest<LibuvDnsRequest<string>>(req);
            if (request is not null && request.Finish())
            {
                if (status < 0)
                {
                    request.Done.TrySetException(Uv.CreateException(status, request.What));
                }
                else
                {
                    request.Done.TrySetResult(Marshal.PtrToStringUTF8((IntPtr)hostname) ?? "");
                }
            }
        }
        catch (Exception ex)
        {
            request?.Done.TrySetException(ex);
            LibuvLoop.ReportFromNative(request?.Loop, "getnameinfo", ex);
        }
    }
}
