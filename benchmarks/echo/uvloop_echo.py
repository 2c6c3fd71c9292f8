"""TCP echo server on uvloop (asyncio protocols), for the echo benchmark.

Usage: python3 uvloop_echo.py --host 127.0.0.1 --port N [--certfile PEM]
       python3 uvloop_echo.py --unix PATH
Prints one line naming the address, then serves until killed. With --unix it listens on a Unix domain socket
(create_unix_server) instead of TCP. With --certfile (a PEM file holding the
certificate and its key) it serves TLS, through asyncio's ssl= (uvloop's own SSL protocol over OpenSSL).
"""
import argparse
import asyncio
import socket
import ssl

import uvloop


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):  # a Unix socket has no TCP_NODELAY
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


async def main(host, port, certfile=None, unix=None):
    loop = asyncio.get_running_loop()
    if unix:
        server = await loop.create_unix_server(EchoProtocol, unix, backlog=512)
        print(f"uvloop echo server listening on {unix}", flush=True)
        async with server:
            await server.serve_forever()
        return
    context = None
    if certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile)
    server = await loop.create_server(EchoProtocol, host, port, backlog=512, reuse_address=True, ssl=context)
    address = server.sockets[0].getsockname()
    kind = "TLS echo" if context else "echo"
    print(f"uvloop {kind} server listening on {address[0]}:{address[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=25000)
    parser.add_argument("--certfile")
    parser.add_argument("--unix")
    args = parser.parse_args()
    if hasattr(uvloop, "run"):  # uvloop >= 0.18
        uvloop.run(main(args.host, args.port, args.certfile, args.unix))
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main(args.host, args.port, args.certfile, args.unix))
