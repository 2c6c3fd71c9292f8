"""File reads on uvloop, for the file-read benchmark (benchmarks/files/run.sh).

uvloop has no file API (libuv's uv_fs_* are not exposed), so this reads as aiofiles does: each os.pread runs in
the loop's default executor (loop.run_in_executor), its result awaited on the loop.

Usage: python3 uvloop_file_read.py --file PATH [--chunk BYTES] [--in-flight N] [--passes N]
Prints RESULT bytes=B seconds=S cpu_seconds=C over the measured passes, after one unmeasured pass.
"""
import argparse
import asyncio
import os
import resource
import time

import uvloop


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def read_all(loop, fd, length, chunk, in_flight):
    next_offset, read = 0, 0
    pending = set()
    while read < length:
        while len(pending) < in_flight and next_offset < length:
            pending.add(loop.run_in_executor(None, os.pread, fd, chunk, next_offset))
            next_offset += chunk
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            data = future.result()
            if not data:
                raise OSError("the file ended early")
            read += len(data)
    return read


async def main(path, chunk, in_flight, passes):
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        length = os.fstat(fd).st_size
        await read_all(loop, fd, length, chunk, in_flight)  # warm-up pass
        cpu_before, start = cpu_seconds(), time.perf_counter()
        total = 0
        for _ in range(passes):
            total += await read_all(loop, fd, length, chunk, in_flight)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_before
    finally:
        os.close(fd)
    print(f"RESULT bytes={total} seconds={seconds:.4f} cpu_seconds={cpu:.4f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--chunk", type=int, default=1024 * 1024)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    if hasattr(uvloop, "run"):  # uvloop >= 0.18
        uvloop.run(main(args.file, args.chunk, args.in_flight, args.passes))
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main(args.file, args.chunk, args.in_flight, args.passes))
