namespace EventLoop.Tests.Core;

/// <summary>Tests that change process-wide state (the policy and <c>EVENTLOOP_POLICY</c>): never in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalPolicyCollection
{
    public const string Name = "Global event loop policy";
}

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
    public void FromName_knows_managed_and_rejects_unknown_names_naming_the_valid_ones()
    {
        Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.FromName("managed"));
        Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.FromName(" Managed "));
        Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.FromName(null));
        Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.FromName(""));
        var ex = Assert.Throws<ArgumentException>(() => EventLoopPolicy.FromName("tokio"));
        Assert.Contains("tokio", ex.Message);
        Assert.Contains("managed", ex.Message);
        Assert.Contains("libuv", ex.Message);
    }

    [Fact]
    public void The_environment_variable_is_read_when_nothing_was_set()
    {
        WithGlobalState(() =>
        {
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, "managed");
            Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.Current);

            EventLoopPolicy.Set(null);
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, "bogus");
            var ex = Assert.Throws<ArgumentException>(() => EventLoopPolicy.Current);
            Assert.Contains("bogus", ex.Message);
            Assert.Contains(EventLoopPolicy.EnvironmentVariable, ex.Message);

            // An explicit Set wins over the environment.
            var policy = new CountingPolicy();
            EventLoopPolicy.Set(policy);
            Assert.Same(policy, EventLoopPolicy.Current);

            EventLoopPolicy.Set(null);
            Environment.SetEnvironmentVariable(EventLoopPolicy.EnvironmentVariable, null);
            Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.Current);
        });
    }
}
