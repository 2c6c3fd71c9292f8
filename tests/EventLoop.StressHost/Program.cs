using System.Globalization;
using EventLoop;
using EventLoop.Libuv;
using EventLoop.StressHost;

// The child process of the crash-prone reliability tests. Usage:
//   EventLoop.StressHost <scenario> --policy managed|libuv [--iterations N] [--seconds S] [--connections N] [--seed N] [--writes 1]
// Scenarios: dispose-race, process-race, udp-dispose-race, pipe-dispose-race, fd-server,
// soak. Exit code 0 means the scenario held; 1 means it found a failure
// (printed as "FAIL ..." lines); a crash ends the process with a signal, which the parent test reports.
if (args.Length == 0)
{
    Console.Error.WriteLine("usage: EventLoop.StressHost dispose-race|process-race|udp-dispose-race|pipe-dispose-race|fd-server|soak --policy managed|libuv [options]");
    return 2;
}

string scenario = args[0];
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 1; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"option '{args[i]}' needs a value");
        return 2;
    }

    options[args[i][2..]] = args[++i];
}

int Int(string name, int fallback) =>
    options.TryGetValue(name, out string? text) ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

LoopPolicy policy = options.GetValueOrDefault("policy", "managed") switch
{
    "managed" => new ManagedLoopPolicy(),
    "libuv" => new LibuvLoopPolicy(),
    string other => throw new ArgumentException($"unknown policy '{other}'"),
};

var failures = new Failures();
try
{
    switch (scenario)
    {
        case "dispose-race":
            DisposeRace.Run(policy, Int("iterations", 20), Int("seed", 1), failures, writes: Int("writes", 0) != 0);
            break;
        case "process-race":
            ProcessRace.Run(policy, Int("iterations", 20), Int("seed", 1), failures);
            break;
        case "udp-dispose-race":
            UdpDisposeRace.Run(policy, Int("iterations", 20), Int("seed", 1), failures);
            break;
        case "pipe-dispose-race":
            PipeDisposeRace.Run(policy, Int("iterations", 20), Int("seed", 1), failures);
            break;
        case "fd-server":
            FdServer.Run(policy, failures);
            break;
        case "soak":
            Soak.Run(policy, TimeSpan.FromSeconds(Int("seconds", 4)), Int("connections", 64), failures);
            break;
        default:
            Console.Error.WriteLine($"unknown scenario '{scenario}'");
            return 2;
    }
}
catch (Exception ex)
{
    failures.Add($"{scenario} threw {ex}");
}

foreach (string failure in failures.Snapshot())
{
    Console.WriteLine("FAIL " + failure.ReplaceLineEndings(" | "));
}

Console.WriteLine(failures.Count == 0 ? $"OK {scenario} {policy.Name}" : $"FAILED {scenario} {policy.Name}: {failures.Count} failure(s)");
return failures.Count == 0 ? 0 : 1;
