import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, test } from 'node:test';
import { HttpServers } from '../../src/transport/http-server.js';
import type { ConnectionHandler, Listener } from '../../src/transport/transport.js';
import { WebSocketTransport } from '../../src/transport/ws.js';
import { until } from '../helpers/broker.js';
import { handshakeStatus } from '../helpers/ws-client.js';
import { serverTls } from './tls-fixture.js';
import { wsClientStream } from './ws-fixture.js';

/**
 * The shared HTTP server: several WebSocket paths and request prefixes on one port, routes
 * that come and go, and the limits on the HTTP exchange before an upgrade.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A handler echoing every byte, tagging nothing: `seen` counts its connections. */
function echo(): { handler: ConnectionHandler; seen: Duplex[] } {
  const seen: Duplex[] = [];
  return {
    seen,
    handler: (stream) => {
      seen.push(stream);
      stream.on('error', () => {});
      stream.on('data', (chunk: Buffer) => stream.write(chunk));
      cleanups.push(() => stream.destroy());
    },
  };
}

async function listen(
  transport: WebSocketTransport,
  url: string,
  handler: ConnectionHandler,
): Promise<Listener> {
  const listener = await transport.listen(new URL(url), handler);
  cleanups.push(() => listener.close());
  return listener;
}

/** Writes `text` through a WebSocket stream to `url` and resolves with what comes back. */
async function echoedThrough(url: string, text: string): Promise<string> {
  const stream = await wsClientStream(url);
  cleanups.push(() => stream.destroy());
  const got: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => got.push(chunk));
  stream.write(text);
  await until(() => Buffer.concat(got).length >= text.length, `the echo of '${text}'`);
  return Buffer.concat(got).toString();
}

/** A raw TCP socket to `port` that records whether the server closed it. */
async function rawSocket(
  port: number,
): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  socket.on('close', () => {
    closed = true;
  });
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  return { socket, received: () => text, closed: () => closed };
}

describe('one port, several routes', { timeout: 30_000 }, () => {
  test('two WebSocket paths share a port; each path reaches its own handler', async () => {
    const transport = new WebSocketTransport({ httpServers: new HttpServers() });
    const a = echo();
    const b = echo();
    const first = await listen(transport, 'ws://127.0.0.1:0/a', a.handler);
    const second = await listen(transport, `ws://127.0.0.1:${first.port}/b`, b.handler);
    assert.equal(second.port, first.port);
    assert.equal(await echoedThrough(`ws://127.0.0.1:${first.port}/a`, 'to a'), 'to a');
    assert.equal(await echoedThrough(`ws://127.0.0.1:${first.port}/b`, 'to b'), 'to b');
    assert.equal(a.seen.length, 1);
    assert.equal(b.seen.length, 1);
  });

  test("closing one path's listener leaves the other serving; the closed path answers 404", async () => {
    const transport = new WebSocketTransport({ httpServers: new HttpServers() });
    const first = await listen(transport, 'ws://127.0.0.1:0/a', echo().handler);
    await listen(transport, `ws://127.0.0.1:${first.port}/b`, echo().handler);
    await first.close();
    assert.equal(await handshakeStatus(`ws://127.0.0.1:${first.port}/a`), 404);
    assert.equal(await echoedThrough(`ws://127.0.0.1:${first.port}/b`, 'still b'), 'still b');
  });

  test('the port is released with its last route', async () => {
    const transport = new WebSocketTransport({ httpServers: new HttpServers() });
    const only = await listen(transport, 'ws://127.0.0.1:0/mqtt', echo().handler);
    await only.close();
    await assert.rejects(handshakeStatus(`ws://127.0.0.1:${only.port}/mqtt`), /ECONNREFUSED/);
    const again = await listen(transport, `ws://127.0.0.1:${only.port}/mqtt`, echo().handler);
    assert.equal(await echoedThrough(`ws://127.0.0.1:${again.port}/mqtt`, 'again'), 'again');
  });

  test('a path taken twice, or TLS asked of a plain HTTP port, is refused with a clear error', async () => {
    const transport = new WebSocketTransport({ httpServers: new HttpServers() });
    const first = await listen(transport, 'ws://127.0.0.1:0/mqtt', echo().handler);
    await assert.rejects(
      transport.listen(new URL(`ws://127.0.0.1:${first.port}/mqtt`), echo().handler),
      /upgrade path \/mqtt is already taken/,
    );
    await assert.rejects(
      transport.listen(new URL(`wss://127.0.0.1:${first.port}/secure`), echo().handler, {
        tls: await serverTls(),
      }),
      /already serves HTTP with other settings/,
    );
    assert.equal(await echoedThrough(`ws://127.0.0.1:${first.port}/mqtt`, 'unharmed'), 'unharmed');
  });

  test('plain requests go to the longest matching prefix; others get 404, failures 500', async () => {
    const servers = new HttpServers();
    const transport = new WebSocketTransport({ httpServers: servers });
    const ws = await listen(transport, 'ws://127.0.0.1:0/mqtt', echo().handler);
    const endpoint = { host: '127.0.0.1', port: ws.port };
    const routes = await Promise.all([
      servers.routeRequests(endpoint, '/api/', (_request, response) => {
        response.end('api');
      }),
      servers.routeRequests(endpoint, '/api/v2/', (_request, response) => {
        response.end('api v2');
      }),
      servers.routeRequests(endpoint, '/throws', () => {
        throw new Error('handler bug');
      }),
      servers.routeRequests(endpoint, '/rejects', async () => {
        throw new Error('async handler bug');
      }),
    ]);
    for (const route of routes) cleanups.push(() => route.close());
    const get = async (path: string): Promise<[number, string]> => {
      const response = await fetch(`http://127.0.0.1:${ws.port}${path}`);
      return [response.status, await response.text()];
    };
    assert.deepEqual(await get('/api/x'), [200, 'api']);
    assert.deepEqual(await get('/api/v2/x?y=1'), [200, 'api v2']);
    assert.equal((await get('/nothing'))[0], 404);
    assert.equal((await get('/throws'))[0], 500);
    assert.equal((await get('/rejects'))[0], 500);
    assert.equal((await get('/mqtt'))[0], 426);
    assert.equal(await echoedThrough(`ws://127.0.0.1:${ws.port}/mqtt`, 'ws too'), 'ws too');
  });

  test('an upgrade to an unknown path gets 404 and the server closes the socket', async () => {
    const transport = new WebSocketTransport({ httpServers: new HttpServers() });
    const ws = await listen(transport, 'ws://127.0.0.1:0/mqtt', echo().handler);
    const raw = await rawSocket(ws.port);
    raw.socket.write(
      'GET /nowhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await until(raw.closed, 'the server to close the socket');
    assert.match(raw.received(), /^HTTP\/1\.1 404 Not Found\r\n/);
  });
});

describe('limits on the HTTP exchange', { timeout: 30_000 }, () => {
  const limits = { headersTimeout: 200, requestTimeout: 400, connectionsCheckingInterval: 50 };

  test('a client that never finishes its headers is closed (headersTimeout)', async () => {
    const transport = new WebSocketTransport({ httpServers: new HttpServers(limits) });
    const ws = await listen(transport, 'ws://127.0.0.1:0/mqtt', echo().handler);
    const slow = await rawSocket(ws.port);
    slow.socket.write('GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websock');
    await until(slow.closed, 'the server to close a client stuck in its headers');
    assert.match(slow.received(), /^HTTP\/1\.1 408 /);
  });

  test('an upgraded WebSocket connection outlives requestTimeout', async () => {
    const servers = new HttpServers(limits);
    const transport = new WebSocketTransport({ httpServers: servers });
    const ws = await listen(transport, 'ws://127.0.0.1:0/mqtt', echo().handler);
    const route = await servers.routeRequests(
      { host: '127.0.0.1', port: ws.port },
      '/upload',
      (request, response) => {
        request.resume();
        request.on('end', () => response.end('ok'));
      },
    );
    cleanups.push(() => route.close());
    const stream = await wsClientStream(`ws://127.0.0.1:${ws.port}/mqtt`);
    cleanups.push(() => stream.destroy());
    // A request opened after the WebSocket and never completed: once the server closes it
    // for requestTimeout, the WebSocket's own request would have timed out too.
    const slow = await rawSocket(ws.port);
    slow.socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial');
    await until(slow.closed, 'the server to close the incomplete request');
    const got: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => got.push(chunk));
    stream.write('alive');
    await until(() => Buffer.concat(got).toString() === 'alive', 'the echo on the WebSocket');
  });
});
