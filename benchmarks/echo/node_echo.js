// TCP echo server on Node.js, for the echo benchmark.
// Usage: node node_echo.js --host 127.0.0.1 --port N
// Prints one line naming the address, then serves until killed.
'use strict';
const net = require('net');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg('--host', '127.0.0.1');
const port = parseInt(arg('--port', '25000'), 10);

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.setNoDelay(true);
  socket.on('data', (data) => socket.write(data));
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
});
server.listen({ host, port, backlog: 512 }, () => {
  const a = server.address();
  console.log(`node echo server listening on ${a.address}:${a.port}`);
});
