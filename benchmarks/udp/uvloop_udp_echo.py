"""UDP echo server on uvloop (asyncio's datagram protocol), for the UDP benchmark.

Usage: python3 uvloop_udp_echo.py --host 127.0.0.1 --port N
Prints one line naming the address, then echoes every datagram to its sender until killed.
"""
import argparse
import asyncio

import uvloop


class EchoProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def main(host, port):
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(EchoProtocol, local_addr=(host, port))
    address = transport.get_extra_info("sockname")
    print(f"uvloop UDP echo server on {address[0]}:{address[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if hasattr(uvloop, "run"):  # uvloop >= 0.18
        uvloop.run(main(args.host, args.port))
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main(args.host, args.port))
