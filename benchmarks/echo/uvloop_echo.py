"""TCP echo server on uvloop (asyncio protocols), for the echo benchmark.

Usage: python3 uvloop_echo.py --host 127.0.0.1 --port N
Prints one line naming the address, then serves until killed.
"""
import argparse
import asyncio
import socket

import uvloop


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port, backlog=512, reuse_address=True)
    address = server.sockets[0].getsockname()
    print(f"uvloop echo server listening on {address[0]}:{address[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=25000)
    args = parser.parse_args()
    if hasattr(uvloop, "run"):  # uvloop >= 0.18
        uvloop.run(main(args.host, args.port))
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main(args.host, args.port))
