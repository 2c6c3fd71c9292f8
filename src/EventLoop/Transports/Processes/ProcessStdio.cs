namespace EventLoop;

/// <summary>What a child process's standard input, output or error is (asyncio's <c>stdin=</c>, <c>stdout=</c>, <c>stderr=</c>).</summary>
public enum ProcessStdio
{
    /// <summary>The child shares this process's descriptor (asyncio's <c>None</c>, the default).</summary>
    Inherit = 0,

    /// <summary>
    /// A loop pipe (asyncio's <c>PIPE</c>): <see cref="LoopProcess.StandardInput"/> is a <see cref="System.IO.Pipelines.PipeWriter"/>,
    /// <see cref="LoopProcess.StandardOutput"/> and <see cref="LoopProcess.StandardError"/> are
    /// <see cref="System.IO.Pipelines.PipeReader"/>s, read and written on the loop thread.
    /// </summary>
    Pipe = 1,

    /// <summary>The child reads an empty input or its output is thrown away: <c>/dev/null</c> (asyncio's <c>DEVNULL</c>).</summary>
    Discard = 2,
}
