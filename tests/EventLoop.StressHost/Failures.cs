using EventLoop;

namespace EventLoop.StressHost;

/// <summary>What a scenario found wrong; thread-safe.</summary>
internal sealed class Failures
{
    private readonly List<string> _items = new();

    public int Count
    {
        get
        {
            lock (_items)
            {
                return _items.Count;
            }
        }
    }

    public void Add(string failure)
    {
        lock (_items)
        {
            if (_items.Count < 50)
            {
                _items.Add(failure);
            }
        }
    }

    public string[] Snapshot()
    {
        lock (_items)
        {
            return _items.ToArray();
        }
    }

    /// <summary>The leak check of the test suite, for a loop a scenario ran.</summary>
    public void CheckClosedCleanly(Loop loop, string where)
    {
        if (!loop.IsClosed)
        {
            Add($"{where}: the loop did not close");
        }

        if (loop.OpenAtClose is { } open)
        {
            Add($"{where}: resources still open at close: {open}");
        }

        if (loop.OpenNativeHandleCount != 0 || loop.OpenNativeRequestCount != 0)
        {
            Add($"{where}: {loop.OpenNativeHandleCount} native handle(s) and {loop.OpenNativeRequestCount} request(s) left after close");
        }
    }

    /// <summary>Loop options whose exception handler records every report as a failure.</summary>
    public LoopOptions StrictOptions(string where) => new()
    {
        ExceptionHandler = context => Add($"{where}: the loop reported {context}"),
    };
}
