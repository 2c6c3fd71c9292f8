using EventLoop.Tests.Core;
using EventLoop.Tests.Primitives;

namespace EventLoop.Tests;

// Every abstract behaviour class runs on the libuv loop too: one subclass each, nothing else.
public sealed class LibuvSchedulingTests : SchedulingTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvAsyncQueueTests : AsyncQueueTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvAsyncLockTests : AsyncLockTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvAsyncEventTests : AsyncEventTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvAsyncSemaphoreTests : AsyncSemaphoreTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvTaskGroupTests : TaskGroupTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvTimerTests : TimerTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvContextTests : ContextTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvRunTests : RunTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvMisuseTests : MisuseTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}

public sealed class LibuvDebugModeTests : DebugModeTests
{
    protected override LoopPolicy CreatePolicy() => Policies.Libuv();
}
