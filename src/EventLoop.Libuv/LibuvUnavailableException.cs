namespace EventLoop.Libuv;

/// <summary>
/// The libuv loop cannot run because the native libuv library could not be used: it was not found, the file named
/// by <c>EVENTLOOP_LIBUV_PATH</c> could not be loaded, the library loaded is not libuv (an export is missing), or its
/// version is too old. The message says what was looked for, where, and how to install libuv; one line, fit to
/// print as it is. See <see cref="LibuvLoopPolicy"/> for the order in which the library is looked for.
/// </summary>
public sealed class LibuvUnavailableException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public LibuvUnavailableException(string message)
        : base(message)
    {
        Tried = [];
    }

    /// <summary>Creates the exception with its message and the error that caused it.</summary>
    public LibuvUnavailableException(string message, Exception? innerException)
        : base(message, innerException)
    {
        Tried = [];
    }

    internal LibuvUnavailableException(string message, IReadOnlyList<string> tried, Exception? innerException = null)
        : base(message, innerException)
    {
        Tried = tried;
    }

    /// <summary>
    /// The library names or paths that were tried, in order (the path in <c>EVENTLOOP_LIBUV_PATH</c> alone when it is
    /// set); empty when not known.
    /// </summary>
    public IReadOnlyList<string> Tried { get; }
}
