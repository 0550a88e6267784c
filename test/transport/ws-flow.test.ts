import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { Listener } from '../../src/transport/transport.js';
import { WebSocketTransport } from '../../src/transport/ws.js';
import { WebSocketDuplex } from '../../src/transport/ws-stream.js';
import { until } from '../helpers/broker.js';

/**
 * Flow control and closing of the WebSocket byte stream a protocol gets: reading stops
 * while the consumer pauses or does not read, writing waits for a peer that does not read,
 * and closes travel both ways with a close frame.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MiB = 1024 * 1024;

/** A listener whose connections (as WebSocketDuplex) are handed to `accepted`; and a connected client. */
async function pair(): Promise<{ server: WebSocketDuplex; client: WebSocket; listener: Listener }> {
  const accepted: WebSocketDuplex[] = [];
  const listener = await new WebSocketTransport().listen(
    new URL('ws://127.0.0.1:0/mqtt'),
    (stream: Duplex) => {
      assert.ok(stream instanceof WebSocketDuplex);
      stream.on('error', () => {});
      accepted.push(stream);
    },
  );
  cleanups.push(() => listener.close());
  const client = new WebSocket(`ws://127.0.0.1:${listener.port}/mqtt`, ['mqtt']);
  client.on('error', () => {});
  cleanups.push(() => client.terminate());
  await once(client, 'open');
  await until(() => accepted.length === 1, 'the connection to be accepted');
  cleanups.push(() => accepted[0]!.destroy());
  return { server: accepted[0]!, client, listener };
}

/** `count` messages of `size` bytes, each filled with its index. */
function messages(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.alloc(size, i % 251));
}

describe('reading honours backpressure', { timeout: 60_000 }, () => {
  test('pause() stops reading the socket at once; resume() goes on; every byte arrives in order', async () => {
    const { server, client } = await pair();
    const sent = messages(64, 256 * 1024);
    const received: Buffer[] = [];
    let receivedBytes = 0;
    let pauses = 0;
    server.on('data', (chunk: Buffer) => {
      received.push(chunk);
      receivedBytes += chunk.length;
      // Pause after every 2 MiB, as a protocol waiting for an authorization would.
      if (receivedBytes >= (pauses + 1) * 2 * MiB) {
        pauses++;
        server.pause();
        assert.equal(server.readingSocket, false, 'the socket is paused as soon as the consumer pauses');
        setImmediate(() => server.resume());
      }
    });
    for (const m of sent) client.send(m);
    const total = sent.length * sent[0]!.length;
    await until(() => receivedBytes >= total, 'all 16 MiB', 30_000);
    assert.ok(pauses >= 7, `${pauses} pauses`);
    assert.ok(Buffer.concat(received).equals(Buffer.concat(sent)), 'the bytes arrive intact and in order');
  });

  test('a consumer that does not read gets the socket paused with a bounded buffer, then everything', async () => {
    const { server, client } = await pair();
    const sent = messages(256, 256 * 1024);
    for (const m of sent) client.send(m);
    await until(() => !server.readingSocket, 'the socket to be paused');
    const buffered = server.readableLength;
    assert.ok(buffered < 2 * MiB, `${buffered} bytes buffered in the stream while nobody reads`);
    assert.ok(client.bufferedAmount > 0, 'the rest waits at the client');
    const received: Buffer[] = [];
    let receivedBytes = 0;
    server.on('data', (chunk: Buffer) => {
      received.push(chunk);
      receivedBytes += chunk.length;
    });
    await until(() => receivedBytes >= 64 * MiB, 'all 64 MiB', 30_000);
    assert.ok(Buffer.concat(received).equals(Buffer.concat(sent)), 'the bytes arrive intact and in order');
  });
});

describe('writing waits for a peer that does not read', { timeout: 60_000 }, () => {
  test("write() returns false and the socket holds at most one message while the peer's window is full", async () => {
    const { server, client } = await pair();
    client.pause();
    const chunk = Buffer.alloc(4096, 7);
    const total = 64 * MiB;
    let written = 0;
    let blocked = false;
    let largestHeldBySocket = 0;
    const writer = (async () => {
      while (written < total) {
        written += chunk.length;
        largestHeldBySocket = Math.max(largestHeldBySocket, server.bufferedAmount);
        if (!server.write(chunk)) {
          blocked = true;
          await once(server, 'drain');
          blocked = false;
        }
      }
    })();
    await until(
      () => blocked && server.bufferedAmount > 0,
      'the writer to wait for a socket that cannot write',
      30_000,
    );
    assert.ok(written < total, `all ${written} bytes accepted while the peer read nothing`);
    assert.ok(largestHeldBySocket < MiB, `the socket held ${largestHeldBySocket} bytes`);
    let receivedBytes = 0;
    client.on('message', (data: Buffer) => {
      receivedBytes += data.length;
    });
    client.resume();
    await writer;
    await until(() => receivedBytes === total, 'all 64 MiB at the client', 30_000);
  });
});

describe('closing', { timeout: 30_000 }, () => {
  test('end() delivers what was written, then a close frame with 1000', async () => {
    const { server, client } = await pair();
    const got: Buffer[] = [];
    client.on('message', (data: Buffer) => got.push(data));
    const closed = once(client, 'close');
    server.write(Buffer.from('last words'));
    server.end();
    const [code] = (await closed) as [number];
    assert.equal(code, 1000);
    assert.equal(Buffer.concat(got).toString(), 'last words');
    await until(() => server.destroyed, 'the server stream to be destroyed');
  });

  test("the client's close ends the stream ('end', then 'close') after the data sent before it", async () => {
    const { server, client } = await pair();
    const events: string[] = [];
    server.on('data', (chunk: Buffer) => events.push(`data ${chunk}`));
    server.on('end', () => events.push('end'));
    server.on('close', () => events.push('close'));
    client.send(Buffer.from('bye'));
    client.close(1000);
    await until(() => events.includes('close'), "the server stream's close");
    assert.deepEqual(events, ['data bye', 'end', 'close']);
  });

  test('data that arrived before the client closed is still delivered to a consumer that reads late', async () => {
    const { server, client } = await pair();
    client.send(Buffer.from('queued'));
    client.close(1000);
    const [code] = (await once(client, 'close')) as [number];
    assert.equal(code, 1000);
    assert.equal(server.destroyed, false, 'the unread data keeps the stream open');
    const got: string[] = [];
    const ended = once(server, 'end');
    server.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    await ended;
    assert.deepEqual(got, ['queued']);
    await until(() => server.destroyed, 'the server stream to be destroyed after its end');
  });

  test('a consumer pausing on its first message gets the rest, then the end, once it resumes', async () => {
    const { server, client } = await pair();
    const events: string[] = [];
    server.once('data', () => {
      server.pause();
      setImmediate(() => server.resume());
    });
    server.on('data', (chunk: Buffer) => events.push(`data ${chunk}`));
    server.on('end', () => events.push('end'));
    server.on('close', () => events.push('close'));
    for (const part of ['a', 'b', 'c']) client.send(Buffer.from(part));
    client.close(1000);
    await until(() => events.includes('close'), "the server stream's close");
    assert.deepEqual(events, ['data a', 'data b', 'data c', 'end', 'close']);
  });
});
