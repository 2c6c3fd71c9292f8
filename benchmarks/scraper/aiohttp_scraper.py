#!/usr/bin/env python3
"""The scraper on aiohttp + uvloop, for the scraper benchmark (issue 5).

Fetches {base-url}/N for N in [first, first+count), `concurrency` at a time, takes each page's <h1> with the
standard library's html.parser, collects the results in page order, and prints the same last line as the
EventLoop samples' scraper: `Fetched N pages in X.XX sec (R pages/s)`.

By default each page is read whole (`response.text()`) and fed whole to the parser, the usual way to write it.
With --stream the body is read chunk by chunk, decoded incrementally and fed to the parser only until its first
</h1> has been seen (the rest is read off the connection, not parsed): what the EventLoop demo does, here for a
like-for-like comparison.
"""
import argparse
import asyncio
import codecs
import sys
import time
from html.parser import HTMLParser

import aiohttp

try:
    import uvloop
except ImportError:  # still runs, on asyncio's own loop, and says so
    uvloop = None


STREAM_SLICE = 2048  # characters fed to the parser at a time with --stream


class H1Parser(HTMLParser):
    """Collects the text of the first <h1>."""

    def __init__(self):
        super().__init__()
        self._inside = False
        self._done = False
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag == "h1" and not self._done:
            self._inside = True

    def handle_endtag(self, tag):
        if tag == "h1" and self._inside:
            self._inside = False
            self._done = True

    @property
    def done(self):
        return self._done

    def handle_data(self, data):
        if self._inside:
            self.parts.append(data)


def title_of(html):
    parser = H1Parser()
    parser.feed(html)
    title = "".join(parser.parts).strip()
    return title or None


async def fetch(session, gate, url, stream):
    async with gate:
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    return None, f"HTTP {response.status} {response.reason}"
                if not stream:
                    html = await response.text()
                else:
                    parser = H1Parser()
                    decoder = codecs.getincrementaldecoder(response.charset or "utf-8")("replace")
                    async for chunk in response.content.iter_any():
                        if parser.done:
                            continue  # read the rest off the connection, unparsed
                        text = decoder.decode(chunk)
                        # A whole page often arrives as one chunk: feed it in slices, so the parse stops near the </h1>.
                        for at in range(0, len(text), STREAM_SLICE):
                            parser.feed(text[at:at + STREAM_SLICE])
                            if parser.done:
                                break
        except aiohttp.ClientError as error:
            return None, str(error)
    if stream:
        title = "".join(parser.parts).strip() or None
    else:
        title = title_of(html)
    return title, None if title else "no <h1> on the page"


async def fetch_all(session, base, first, count, concurrency, quiet, stream):
    gate = asyncio.Semaphore(concurrency)
    tasks = [asyncio.ensure_future(fetch(session, gate, f"{base}/{n}", stream)) for n in range(first, first + count)]
    fetched = 0
    for n, task in zip(range(first, first + count), tasks):
        title, error = await task
        if title is not None:
            fetched += 1
            if not quiet:
                print(f"  {n:5}  {title}")
        else:
            print(f"  {n:5}  ERROR {base}/{n}: {error}")
    return fetched


async def main(args):
    base = args.base_url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        if args.warmup > 0:
            await fetch_all(session, base, args.first + args.count, args.warmup, args.concurrency, True, args.stream)
        start = time.perf_counter()
        fetched = await fetch_all(session, base, args.first, args.count, args.concurrency, args.quiet, args.stream)
        elapsed = time.perf_counter() - start
    if fetched < args.count:
        print(f"{args.count - fetched} of {args.count} pages failed")
    print(f"Fetched {fetched} pages in {elapsed:.2f} sec ({fetched / elapsed:.0f} pages/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--stream", action="store_true", help="parse each page only up to its first </h1>, as it arrives")
    arguments = parser.parse_args()
    if uvloop is not None:
        # uvloop 0.17 has no uvloop.run: the policy is the way to select it there.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(f"aiohttp {aiohttp.__version__} on {'uvloop ' + uvloop.__version__ if uvloop else 'asyncio'}", file=sys.stderr)
    asyncio.run(main(arguments))
