using System.IO.Pipelines;
using System.Net;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using static EventLoop.Tests.TestPipes;

namespace EventLoop.Tests.Tcp;

/// <summary>
/// A managed loop and a libuv loop talking to each other, each on its own thread: one listens (on a thread of its
/// own), the other connects (on the test's thread), and both send random bytes at once, each checked by its
/// checksum at the other end. Covers both policies by itself, so it is not per policy; both loops get the leak check.
/// </summary>
public sealed class ManagedAndLibuvLoopTests : LoopTestBase
{
    private const int Size = 4 * 1024 * 1024;

    /// <summary>The loop on the test's thread (the connecting side) is whichever policy a test names; this is unused.</summary>
    protected override LoopPolicy CreatePolicy() => throw new InvalidOperationException("each test names its two policies");

    [Fact]
    public void A_libuv_client_and_a_managed_server_exchange_bytes_both_ways() =>
        Exchange(listening: Policies.Managed(), connecting: Policies.Libuv());

    [Fact]
    public void A_managed_client_and_a_libuv_server_exchange_bytes_both_ways() =>
        Exchange(listening: Policies.Libuv(), connecting: Policies.Managed());

    private void Exchange(LoopPolicy listening, LoopPolicy connecting)
    {
        byte[] fromServer = RandomPayload(Size, seed: 51);
        byte[] fromClient = RandomPayload(Size, seed: 52);
        var endpoint = new TaskCompletionSource<EndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);

        // The listening loop, on a thread of its own.
        using Loop serverLoop = listening.CreateLoop(CreateOptions());
        (long Length, byte[] Hash) serverReceived = default;
        Exception? serverError = null;
        var serverThread = new Thread(() =>
        {
            try
            {
                serverLoop.RunUntilComplete(async () =>
                {
                    await using ConnectionListener listener = await serverLoop.ListenTcpAsync(AnyLoopbackPort);
                    endpoint.SetResult(listener.LocalEndPoint);
                    await using Connection server = await listener.AcceptAsync().AsTask().WaitAsync(TestTimeout);
                    Assert.Equal(listening.Name, serverLoop.PolicyName);
                    serverReceived = await SendAndReceiveAsync(server, fromServer).WaitAsync(TestTimeout);
                });
            }
            catch (Exception ex)
            {
                serverError = ex;
                endpoint.TrySetException(ex);
            }
        })
        { IsBackground = true, Name = $"{listening.Name} loop (server)" };
        serverThread.Start();

        // The connecting loop, on this thread.
        using Loop clientLoop = connecting.CreateLoop(CreateOptions());
        (long Length, byte[] Hash) clientReceived = clientLoop.RunUntilComplete(async () =>
        {
            EndPoint serverEndPoint = await endpoint.Task.WaitAsync(TestTimeout);
            await using Connection client = await clientLoop.ConnectTcpAsync(serverEndPoint).AsTask().WaitAsync(TestTimeout);
            return await SendAndReceiveAsync(client, fromClient).WaitAsync(TestTimeout);
        });

        Assert.True(serverThread.Join(TestTimeout), "the server's loop did not finish");
        if (serverError is not null)
        {
            ExceptionDispatchInfo.Capture(serverError).Throw();
        }

        Assert.Equal(Size, clientReceived.Length);
        Assert.Equal(SHA256.HashData(fromServer), clientReceived.Hash);
        Assert.Equal(Size, serverReceived.Length);
        Assert.Equal(SHA256.HashData(fromClient), serverReceived.Hash);
        Assert.Equal(listening.Name, serverLoop.PolicyName);
        Assert.Equal(connecting.Name, clientLoop.PolicyName);
        AssertClosedCleanly(serverLoop);
        AssertClosedCleanly(clientLoop);
    }

    /// <summary>Sends <paramref name="payload"/> then half-closes, while reading the peer's bytes to their end.</summary>
    private static async Task<(long Length, byte[] Hash)> SendAndReceiveAsync(Connection connection, byte[] payload)
    {
        Task<(long, byte[])> receiving = ReceiveToEndAsync(connection.Input);
        for (int offset = 0; offset < payload.Length; offset += 64 * 1024)
        {
            FlushResult flush = await connection.Output.WriteAsync(payload.AsMemory(offset, Math.Min(64 * 1024, payload.Length - offset)));
            Assert.False(flush.IsCompleted);
        }

        await connection.ShutdownSendAsync();
        return await receiving;
    }

    private static async Task<(long, byte[])> ReceiveToEndAsync(PipeReader input)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        while (true)
        {
            ReadResult result = await input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                hash.AppendData(segment.Span);
            }

            total += result.Buffer.Length;
            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return (total, hash.GetHashAndReset());
            }
        }
    }
}
