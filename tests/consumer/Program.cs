using System.Net;
using System.Text;
using EventLoop;
using EventLoop.Libuv;

// The consumer app: one TCP echo round trip and a loop timer on the policy named on the command line.
LoopPolicy policy = args switch
{
    ["managed"] => new ManagedLoopPolicy(),
    ["libuv"] => new LibuvLoopPolicy(),
    _ => throw new ArgumentException("usage: ConsumerApp managed|libuv"),
};

string reply = Loop.Run(async () =>
{
    Loop loop = Loop.Current;
    await Task.Delay(TimeSpan.FromMilliseconds(5), loop.TimeProvider);
    await using ConnectionListener server = await loop.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0));
    Task echo = EchoOnceAsync(server);
    await using Connection client = await loop.ConnectTcpAsync(server.LocalEndPoint);
    Stream stream = client.AsStream();
    await stream.WriteAsync("ping"u8.ToArray());
    byte[] buffer = new byte[4];
    await stream.ReadExactlyAsync(buffer);
    await echo;
    return $"{loop.PolicyName} {Encoding.ASCII.GetString(buffer)}";
}, policy);

Console.WriteLine($"consumer app: {reply}");
return reply == $"{policy.Name} ping" ? 0 : 1;

static async Task EchoOnceAsync(ConnectionListener server)
{
    await using Connection connection = await server.AcceptAsync();
    System.IO.Pipelines.ReadResult read = await connection.Input.ReadAtLeastAsync(4);
    foreach (ReadOnlyMemory<byte> segment in read.Buffer)
    {
        await connection.Output.WriteAsync(segment);
    }

    connection.Input.AdvanceTo(read.Buffer.End);
}
