# uvloop's side of the spawn benchmark (benchmarks/EventLoop.Benchmarks --spawn runs it): /bin/true spawned with
# asyncio.create_subprocess_exec on uvloop and waited for, `concurrency` at a time, for `seconds`.
# Prints one line: spawns wall_seconds cpu_self_seconds cpu_children_seconds
import asyncio, resource, sys, time
import uvloop

async def worker(deadline, counter):
    while time.monotonic() < deadline:
        p = await asyncio.create_subprocess_exec("/bin/true", stdin=asyncio.subprocess.DEVNULL,
                                                 stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await p.wait() != 0:
            raise SystemExit("/bin/true failed")
        counter[0] += 1

async def run(seconds, concurrency):
    counter = [0]
    await asyncio.gather(*(worker(time.monotonic() + 0.5, [0]) for _ in range(concurrency)))  # warm-up
    self0, child0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    await asyncio.gather(*(worker(start + seconds, counter) for _ in range(concurrency)))
    wall = time.monotonic() - start
    self1, child1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = lambda a, b: (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)
    print(counter[0], f"{wall:.4f}", f"{cpu(self0, self1):.4f}", f"{cpu(child0, child1):.4f}")

uvloop.install()
asyncio.run(run(float(sys.argv[1]), int(sys.argv[2])))
