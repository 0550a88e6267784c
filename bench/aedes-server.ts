/**
 * A minimal Aedes 1.x broker for the load benchmarks: in-memory persistence, one listener on
 * loopback, Nagle off on every socket. Started by bench/load.ts and bench/transports.ts as
 * its own process, so that its CPU and memory can be read from /proc.
 *
 *   node dist/bench/aedes-server.js --port 1883 [--host 127.0.0.1]
 *        [--transport tcp|tls|ws|wss] [--cert FILE --key FILE]
 *
 * `tls` and `wss` need the certificate and key (PEM); WebSockets are served on any path with
 * the `mqtt` subprotocol, each one a stream handed to Aedes. Prints `listening <port>` on
 * stdout once accepting connections; exits on SIGTERM/SIGINT. (The benchmarks run it under a
 * wrapper that kills it if the benchmark dies.)
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const port = Number(arg('--port', '1883'));
const host = arg('--host', '127.0.0.1');
const transport = arg('--transport', 'tcp');
if (!['tcp', 'tls', 'ws', 'wss'].includes(transport)) {
  console.error(`aedes-server: bad --transport ${transport}`);
  process.exit(2);
}
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`aedes-server: bad --port ${port}`);
  process.exit(2);
}

// Defaults: the benchmark measures Aedes as an application would embed it out of the box
// (in-memory persistence, mqemitter with concurrency 100, no outbound in-flight limit).
const broker = await Aedes.createBroker();
broker.on('connectionError', (_client, err) => {
  if (process.env['AEDES_DEBUG']) console.error('aedes connectionError', err.message);
});

const secure = transport === 'tls' || transport === 'wss';
const tlsOptions = secure
  ? { cert: readFileSync(arg('--cert', '')), key: readFileSync(arg('--key', '')) }
  : {};

function handleSocket(socket: Socket): void {
  socket.setNoDelay(true);
  broker.handle(socket);
}

/** An HTTP(S) server whose WebSocket upgrades become MQTT streams. */
function webSocketServer(): HttpServer {
  const http = secure ? createHttpsServer(tlsOptions) : createHttpServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    req.socket.setNoDelay(true);
    const stream = createWebSocketStream(ws);
    stream.on('error', () => stream.destroy());
    broker.handle(stream);
  });
  return http;
}

const server: Server =
  transport === 'tcp'
    ? createServer({ noDelay: true }, handleSocket)
    : transport === 'tls'
      ? createTlsServer(tlsOptions, handleSocket)
      : webSocketServer();
server.maxConnections = 100_000;
server.on('error', (err) => {
  console.error(`aedes-server: ${err.message}`);
  process.exit(1);
});
server.listen({ port, host, backlog: 4096 }, () => {
  process.stdout.write(`listening ${port}\n`);
});

const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
