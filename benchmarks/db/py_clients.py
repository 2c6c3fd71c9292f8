"""The Python side of the db benchmark: asyncpg and redis.asyncio on uvloop.

  python3 py_clients.py pg    --port P --concurrency 32 --seconds 5 --warmup 2 --rows 10000
  python3 py_clients.py redis --port P --concurrency 32 --seconds 5 --warmup 1 --batch 32

Each workload prints one line: 'result <workload> <ops> <seconds> <cpu-seconds>', where the CPU time is this
process's (user + system) over the measured window. Every reply is checked."""
import argparse, asyncio, random, resource, time

import uvloop


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(name, worker, concurrency, seconds, warmup):
    state = {"ops": 0, "measuring": False, "stop": False}

    async def run():
        while not state["stop"]:
            n = await worker()
            if state["measuring"]:
                state["ops"] += n

    tasks = [asyncio.ensure_future(run()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    t0, c0 = time.perf_counter(), cpu()
    await asyncio.sleep(seconds)
    state["measuring"] = False
    t1, c1 = time.perf_counter(), cpu()
    ops = state["ops"]
    state["stop"] = True
    await asyncio.gather(*tasks)
    print(f"result {name} {ops} {t1 - t0:.4f} {c1 - c0:.4f}", flush=True)


async def pg(args):
    import asyncpg
    pool = await asyncpg.create_pool(host="127.0.0.1", port=args.port, user="postgres", database="postgres",
                                     min_size=args.concurrency, max_size=args.concurrency)
    rows = args.rows

    async def select():
        i = random.randint(1, rows)
        async with pool.acquire() as c:
            row = await c.fetchrow("SELECT id, name, value FROM items WHERE id = $1", i)
        if row["id"] != i or row["name"] != f"item {i}":
            raise RuntimeError(f"wrong row for {i}: {row}")
        return 1

    await measure("select", select, args.concurrency, args.seconds, args.warmup)
    await pool.close()


async def redis_(args):
    import redis.asyncio as redis
    client = redis.Redis(host="127.0.0.1", port=args.port, max_connections=args.concurrency)
    keys = 1000
    await client.mset({f"bench:{i}": f"value {i}" for i in range(keys)})

    async def get():
        i = random.randrange(keys)
        v = await client.get(f"bench:{i}")
        if v != f"value {i}".encode():
            raise RuntimeError(f"GET bench:{i} returned {v!r}")
        return 1

    async def set_():
        i = random.randrange(keys)
        if not await client.set(f"bench:{i}", f"value {i}"):
            raise RuntimeError("SET failed")
        return 1

    async def get_pipelined():
        first = random.randrange(keys)
        ids = [(first + k) % keys for k in range(args.batch)]
        async with client.pipeline(transaction=False) as p:
            for i in ids:
                p.get(f"bench:{i}")
            values = await p.execute()
        for i, v in zip(ids, values):
            if v != f"value {i}".encode():
                raise RuntimeError(f"GET bench:{i} returned {v!r}")
        return args.batch

    async def set_pipelined():
        first = random.randrange(keys)
        async with client.pipeline(transaction=False) as p:
            for k in range(args.batch):
                i = (first + k) % keys
                p.set(f"bench:{i}", f"value {i}")
            results = await p.execute()
        if not all(results):
            raise RuntimeError("SET failed")
        return args.batch

    for name, worker in (("get", get), ("set", set_), ("get-pipelined", get_pipelined), ("set-pipelined", set_pipelined)):
        await measure(name, worker, args.concurrency, args.seconds, args.warmup)
    await client.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("target", choices=["pg", "redis"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    uvloop.install()
    asyncio.run(pg(args) if args.target == "pg" else redis_(args))


if __name__ == "__main__":
    main()
