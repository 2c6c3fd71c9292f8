namespace EventLoop.Tests.Processes;

/// <summary>
/// The test classes that spawn children from the test process run alone, not beside other classes: between its fork
/// and its exec a child holds a copy of every descriptor of the test process (close-on-exec closes them only at the
/// exec), so a listener another test closes meanwhile still accepts, and that test's "nobody listens any more"
/// (ConnectionRefused) sees a connection. libuv 1.44 forks a full copy, which widens the window; a thousand children
/// make it likely.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SubprocessCollection
{
    public const string Name = "Subprocesses";
}
