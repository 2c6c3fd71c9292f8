namespace EventLoop.Tests.Core;

/// <summary>Policy selection is process-wide, not per loop, so these tests are not per policy.</summary>
public sealed class PolicySelectionTests
{
    [Fact]
    public void Naming_libuv_without_its_assembly_says_what_to_reference()
    {
        var error = Assert.Throws<InvalidOperationException>(() => EventLoopPolicy.CreateLibuvPolicy("EventLoop.Libuv.NotThere"));
        Assert.Contains("EventLoop.Libuv", error.Message);
        Assert.Contains("reference", error.Message);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("managed")]
    [InlineData(" Managed ")]
    public void Managed_is_the_default_and_its_name(string? name) =>
        Assert.IsType<ManagedLoopPolicy>(EventLoopPolicy.FromName(name));

    [Fact]
    public void An_unknown_policy_name_lists_the_valid_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => EventLoopPolicy.FromName("tokio"));
        Assert.Contains("'tokio'", error.Message);
        Assert.Contains("managed", error.Message);
        Assert.Contains("libuv", error.Message);
    }
}
