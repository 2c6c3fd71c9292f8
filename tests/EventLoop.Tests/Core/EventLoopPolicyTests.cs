using EventLoop.Libuv;
using EventLoop.Libuv.Internal;

namespace EventLoop.Tests.Core;

/// <summary>Tests that change process-wide state (the policy and <c>EVENTLOOP_POLICY</c>): never in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalPolicyCollection
{
    public const string Name = "Global event loop policy";
}

/// <summary>
/// Picking a policy: <see cref="EventLoopPolicy.FromName"/>, <see cref="EventLoopPolicy.Set"/> and the
/// <c>EVENTLOOP_POLICY</c> variable. Policy selection is process-wide, not per loop, so these tests are not per policy;
/// they check that each way of naming a loop really gives that loop.
/// </summary>
[Collection(GlobalPolicyCollection.Name)]
public sealed class EventLoopPolicyTests
{
    private sealed class CountingPolicy : LoopPolicy
    {
        public int Created;

        public override string Name => "managed";

        public override Loop CreateLoop(LoopOptions? options = null)
        {
            Created++;
            return new ManagedLoopPolicy().CreateLoop(options);
        }
    }

    /// <summary>Runs <paramref name="test"/> and puts the policy and the environment variable back.</summary>
    private static void WithGlobalState(Action test)
    {
        string? saved = Environment.GetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable);
        try
        {
            EventLoopPolicy.Set(null);
            test();
        }
        finally
        {
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, saved);
            EventLoopPolicy.Set(null);
        }
    }

    /// <summary>What <see cref="Loop.Run{T}(Func{Task{T}})"/>, with no policy given, runs on.</summary>
    private static (string Name, Type Type) DefaultLoop() =>
        Loop.Run(() => Task.FromResult((Loop.Current.PolicyName, Loop.Current.GetType())));

    [Fact]
    public void Set_picks_the_policy_Loop_Run_uses()
    {
        WithGlobalState(() =>
        {
            var policy = new CountingPolicy();
            EventLoopPolicy.Set(policy);
            Assert.Same(policy, EventLoopPolicy.Current);
            Loop.Run(async () => await Task.Yield());
            Assert.Equal(1, Loop.Run(() => Task.FromResult(1)));
            Assert.Equal(2, policy.Created);
        });
    }

    [Fact]
    public void Set_with_the_libuv_policy_makes_Loop_Run_use_a_libuv_loop()
    {
        WithGlobalState(() =>
        {
            EventLoopPolicy.Set(new LibuvLoopPolicy());
            Assert.Equal(("libuv", typeof(LibuvLoop)), DefaultLoop());
        });
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("managed")]
    [InlineData(" Managed ")]
    public void Managed_is_the_default_and_its_name(string? name)
    {
        LoopPolicy policy = EventLoopPolicy.FromName(name);
        Assert.IsType<ManagedLoopPolicy>(policy);
        Assert.Equal("managed", policy.Name);
    }

    [Theory]
    [InlineData("libuv")]
    [InlineData(" LibUV ")]
    [InlineData("uv")]
    public void FromName_libuv_gives_the_libuv_policy_whose_loops_are_libuv_loops(string name)
    {
        LoopPolicy policy = EventLoopPolicy.FromName(name);
        Assert.IsType<LibuvLoopPolicy>(policy);
        Assert.Equal("libuv", policy.Name);
        Assert.Equal("libuv", Loop.Run(() => Task.FromResult(Loop.Current.PolicyName), policy));
        using Loop loop = policy.CreateLoop();
        Assert.IsType<LibuvLoop>(loop);
    }

    [Fact]
    public void An_unknown_policy_name_lists_the_valid_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => EventLoopPolicy.FromName("tokio"));
        Assert.Equal("Unknown event loop policy 'tokio'. The policies are 'managed' and 'libuv'.", error.Message);
        // The library's message speaks of the library: not of the samples' --loop option, nor of a parameter name.
        Assert.DoesNotContain("--loop", error.Message);
        Assert.DoesNotContain("(Parameter", error.Message);
    }

    [Fact]
    public void Naming_libuv_without_its_assembly_says_what_to_reference()
    {
        var error = Assert.Throws<InvalidOperationException>(() => EventLoopPolicy.CreateLibuvPolicy("EventLoop.Libuv.NotThere"));
        Assert.Contains("EventLoop.Libuv", error.Message);
        Assert.Contains("reference", error.Message);
    }

    [Fact]
    public void The_environment_variable_is_read_when_nothing_was_set()
    {
        WithGlobalState(() =>
        {
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, "managed");
            Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.Current);
            Assert.Equal(("managed", typeof(EventLoop.Managed.ManagedLoop)), DefaultLoop());

            EventLoopPolicy.Set(null);
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, "libuv");
            Assert.IsType<LibuvLoopPolicy>(EventLoopPolicy.Current);
            Assert.Equal(("libuv", typeof(LibuvLoop)), DefaultLoop());

            EventLoopPolicy.Set(null);
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, "bogus");
            var ex = Assert.Throws<InvalidOperationException>(() => EventLoopPolicy.Current);
            Assert.Equal(
                "The environment variable EVENTLOOP_POLICY is set to 'bogus', which is not an event loop policy. " +
                "Set it to 'managed' or 'libuv', or unset it for the default (managed).", ex.Message);
            Assert.Same(ex.GetType(), Assert.ThrowsAny<Exception>(() => Loop.Run(() => Task.CompletedTask)).GetType());

            // Nothing was cached: the variable fixed, the next call works.
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, "managed");
            Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.Current);
            EventLoopPolicy.Set(null);

            // An explicit Set wins over the environment.
            var policy = new CountingPolicy();
            EventLoopPolicy.Set(policy);
            Assert.Same(policy, EventLoopPolicy.Current);

            EventLoopPolicy.Set(null);
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, null);
            Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.Current);
            Assert.Equal(("managed", typeof(EventLoop.Managed.ManagedLoop)), DefaultLoop());
        });
    }
}

/// <summary>
/// <c>EVENTLOOP_POLICY</c> as an app meets it: set in the environment of a new process, read by the library the
/// first time the process asks for a loop. The child is this test assembly's own entry point (<see cref="TestProgram"/>).
/// Nothing process-wide changes here, so these run in parallel with the rest.
/// </summary>
public sealed class EventLoopPolicyEnvironmentTests
{
    [Theory]
    [InlineData("libuv", "libuv LibuvLoop EventLoop.Libuv.LibuvLoopPolicy")]
    [InlineData(null, "managed ManagedLoop EventLoop.ManagedLoopPolicy")]
    public async Task A_process_started_with_EVENTLOOP_POLICY_runs_Loop_Run_on_that_loop(string? variable, string expected)
    {
        ChildProcess.Result child = await ChildProcess.RunAsync(
            ChildProcess.TestProgramPath, [TestProgram.DefaultLoopCommand],
            new Dictionary<string, string?> { [EventLoopPolicy.EnvironmentVariable] = variable });
        Assert.True(child.ExitCode == 0, child.ToString());
        Assert.Equal(expected, child.Output.Trim());
    }

    [Fact]
    public async Task A_bogus_EVENTLOOP_POLICY_fails_the_first_Loop_Run_with_one_exception_naming_the_variable_and_the_valid_values()
    {
        ChildProcess.Result child = await ChildProcess.RunAsync(
            ChildProcess.TestProgramPath, [TestProgram.DefaultLoopCommand],
            new Dictionary<string, string?> { [EventLoopPolicy.EnvironmentVariable] = "bogus" });
        Assert.True(child.ExitCode == TestProgram.ExceptionExitCode, child.ToString());
        Assert.Empty(child.Output);
        Assert.Equal(
            "System.InvalidOperationException: The environment variable EVENTLOOP_POLICY is set to 'bogus', which is not an " +
            "event loop policy. Set it to 'managed' or 'libuv', or unset it for the default (managed).",
            Assert.Single(child.ErrorLines));
    }
}
