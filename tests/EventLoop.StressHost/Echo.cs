using System.Buffers;
using System.IO.Pipelines;
using EventLoop;

namespace EventLoop.StressHost;

/// <summary>The scenarios' echo server side: echoes until end of stream, then disposes; ends quietly on any connection end.</summary>
internal static class Echo
{
    public static async Task ServeAsync(Connection connection)
    {
        try
        {
            while (true)
            {
                ReadResult result = await connection.Input.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    connection.Output.Write(segment.Span);
                }

                connection.Input.AdvanceTo(result.Buffer.End);
                FlushResult flush = await connection.Output.FlushAsync();
                if (result.IsCompleted || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (IsConnectionEnd(ex))
        {
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>As <see cref="ServeAsync"/>, but each received segment goes back through its own WriteAsync (a direct write when nothing is queued).</summary>
    public static async Task ServeWithWriteAsync(Connection connection)
    {
        try
        {
            while (true)
            {
                ReadResult result = await connection.Input.ReadAsync();
                bool completed = false;
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    FlushResult flush = await connection.Output.WriteAsync(segment);
                    completed |= flush.IsCompleted;
                }

                connection.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || completed)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (IsConnectionEnd(ex))
        {
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>How a connection may end under chaos; anything else is a failure the scenario reports.</summary>
    public static bool IsConnectionEnd(Exception ex) =>
        ex is IOException or ObjectDisposedException or OperationCanceledException or System.Net.Sockets.SocketException
        || (ex is InvalidOperationException && ex.Message.Contains("after", StringComparison.Ordinal)); // a pipe used after it completed
}
