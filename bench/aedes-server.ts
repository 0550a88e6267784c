/**
 * A minimal Aedes 1.x broker for the load benchmark: in-memory persistence, one plain TCP
 * listener on loopback, Nagle off on every socket. Started by bench/load.ts as its own
 * process, so that its CPU and memory can be read from /proc.
 *
 *   node dist/bench/aedes-server.js --port 1883 [--host 127.0.0.1]
 *
 * Prints `listening <port>` on stdout once accepting connections; exits on SIGTERM/SIGINT.
 * (bench/load.ts runs it under a wrapper that kills it if the benchmark dies.)
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const port = Number(arg('--port', '1883'));
const host = arg('--host', '127.0.0.1');
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

const server = createServer({ noDelay: true }, (socket) => {
  socket.setNoDelay(true);
  broker.handle(socket);
});
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
