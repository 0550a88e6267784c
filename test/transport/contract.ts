import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { afterEach, describe, test } from 'node:test';
import type { ConnectionHandler, ConnectionInfo, Listener } from '../../src/transport/transport.js';
import { until } from '../helpers/broker.js';
import { within } from '../helpers/mqtt-client.js';

/**
 * The one contract every transport keeps, whatever it carries bytes over: bytes arrive
 * intact both ways, `ConnectionInfo` says where they came from, listeners report their real
 * port and stop accepting on `close()`, and either side closing is seen by the other. Each
 * transport's test file runs it with a fixture for that transport.
 */

/** How the contract reaches one transport. */
export interface TransportFixture {
  /** Whether its connections are encrypted (`ConnectionInfo.secure`). */
  readonly secure: boolean;
  /** Listens on 127.0.0.1, port 0, through the `Transport` interface, handing connections to `handler`. */
  listen(handler: ConnectionHandler): Promise<Listener>;
  /** A client byte stream connected to `listener`, resolved once bytes can flow (handshakes done). */
  connect(listener: Listener): Promise<Duplex>;
}

/** One connection as the listener's handler saw it. */
interface Accepted {
  readonly stream: Duplex;
  readonly info: ConnectionInfo;
  /** Everything received so far. */
  readonly received: Buffer[];
  closed: boolean;
}

function total(chunks: readonly Buffer[]): number {
  return chunks.reduce((sum, c) => sum + c.length, 0);
}

/** Records what `stream` receives and when it closes. */
function record(stream: Duplex): { received: Buffer[]; closed: () => boolean } {
  const received: Buffer[] = [];
  let closed = false;
  stream.on('data', (chunk: Buffer) => received.push(chunk));
  stream.on('close', () => {
    closed = true;
  });
  stream.on('error', () => {});
  return { received, closed: () => closed };
}

/** Waits until `chunks` hold `expected.length` bytes, then compares them. */
async function receiveExactly(chunks: Buffer[], expected: Buffer, what: string): Promise<void> {
  await until(() => total(chunks) >= expected.length, what, 20_000);
  assert.ok(Buffer.concat(chunks).equals(expected), `${what}: the bytes differ`);
}

/** Runs the transport contract as a `describe` block named after the transport. */
export function transportContract(name: string, fixture: TransportFixture): void {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A listener whose handler records every connection (and echoes, if asked); closed after the test. */
  async function server(echo = false): Promise<{ listener: Listener; accepted: Accepted[] }> {
    const accepted: Accepted[] = [];
    const listener = await fixture.listen((stream, info) => {
      const { received, closed } = record(stream);
      const entry: Accepted = {
        stream,
        info,
        received,
        get closed() {
          return closed();
        },
      };
      accepted.push(entry);
      if (echo) stream.on('data', (chunk: Buffer) => stream.write(chunk));
      cleanups.push(() => stream.destroy());
    });
    cleanups.push(() => listener.close());
    return { listener, accepted };
  }

  /** A connected client, destroyed after the test. */
  async function client(listener: Listener): Promise<Duplex> {
    const stream = await within(fixture.connect(listener), `a ${name} client to connect`);
    cleanups.push(() => stream.destroy());
    return stream;
  }

  describe(`${name} transport contract`, { timeout: 60_000 }, () => {
    test('a listener on port 0 reports the real port it is bound to, and its URL', async () => {
      const { listener, accepted } = await server();
      assert.ok(listener.port > 0 && listener.port < 65_536, `port ${listener.port}`);
      assert.equal(listener.host, '127.0.0.1');
      assert.match(listener.url, /^[a-z]+:\/\/127\.0\.0\.1:0(\/|$)/);
      await client(listener);
      await until(() => accepted.length === 1, 'the connection to be accepted');
    });

    test(`ConnectionInfo carries the listener URL, the remote address and secure=${fixture.secure}`, async () => {
      const { listener, accepted } = await server();
      await client(listener);
      await until(() => accepted.length === 1, 'the connection to be accepted');
      const { info } = accepted[0]!;
      assert.equal(info.listener, listener.url);
      assert.equal(info.remoteAddress, '127.0.0.1');
      assert.equal(typeof info.remotePort, 'number');
      assert.ok(info.remotePort! > 0 && info.remotePort! !== listener.port);
      assert.equal(info.secure, fixture.secure);
    });

    test('bytes flow both ways intact, a 1 MiB write included', async () => {
      const { listener, accepted } = await server();
      const c = await client(listener);
      const fromClient = record(c);
      const up = randomBytes(1024 * 1024);
      c.write(up);
      await until(() => accepted.length === 1, 'the connection to be accepted');
      await receiveExactly(accepted[0]!.received, up, 'the 1 MiB upload');
      const down = randomBytes(1024 * 1024);
      accepted[0]!.stream.write(down);
      await receiveExactly(fromClient.received, down, 'the 1 MiB download');
    });

    test('many small writes arrive complete and in order, both ways', async () => {
      const { listener, accepted } = await server();
      const c = await client(listener);
      const fromClient = record(c);
      const pieces = Array.from({ length: 2000 }, (_, i) => Buffer.from(`${i};`));
      for (const piece of pieces) c.write(piece);
      await until(() => accepted.length === 1, 'the connection to be accepted');
      await receiveExactly(accepted[0]!.received, Buffer.concat(pieces), 'the small writes up');
      for (const piece of pieces) accepted[0]!.stream.write(piece);
      await receiveExactly(fromClient.received, Buffer.concat(pieces), 'the small writes down');
    });

    test('close() stops accepting new connections; an open connection keeps working', async () => {
      const { listener, accepted } = await server(true);
      const c = await client(listener);
      const echoed = record(c);
      await until(() => accepted.length === 1, 'the connection to be accepted');
      await listener.close();
      await assert.rejects(
        within(fixture.connect(listener), 'a connection attempt after close() to fail'),
        (error: Error) => !error.message.startsWith('timed out'),
      );
      assert.equal(accepted.length, 1, 'no connection is handed over after close()');
      c.write('still here');
      await receiveExactly(echoed.received, Buffer.from('still here'), 'the echo after close()');
    });

    test("a client's end() is seen by the handler's stream as 'close'", async () => {
      const { listener, accepted } = await server();
      const c = await client(listener);
      c.write('bye');
      await until(() => accepted.length === 1 && total(accepted[0]!.received) === 3, 'the bytes before end');
      c.end();
      await until(() => accepted[0]!.closed, "the server stream's 'close' after the client ended");
    });

    test("a client's destroy() is seen by the handler's stream as 'close'", async () => {
      const { listener, accepted } = await server();
      const c = await client(listener);
      c.write('x');
      await until(
        () => accepted.length === 1 && total(accepted[0]!.received) === 1,
        'the byte before destroy',
      );
      c.destroy();
      await until(() => accepted[0]!.closed, "the server stream's 'close' after the client was destroyed");
    });

    test('the server destroying its stream closes the client', async () => {
      const { listener, accepted } = await server();
      const c = await client(listener);
      const seen = record(c);
      await until(() => accepted.length === 1, 'the connection to be accepted');
      accepted[0]!.stream.destroy();
      await until(seen.closed, "the client's 'close' after the server destroyed its stream");
    });

    test('50 concurrent connections each get their own bytes back', async () => {
      const { listener, accepted } = await server(true);
      const clients = await Promise.all(Array.from({ length: 50 }, () => client(listener)));
      const echoes = clients.map((c) => record(c).received);
      const messages = clients.map((_, i) => Buffer.from(`connection ${i} `.repeat(100)));
      clients.forEach((c, i) => {
        c.write(messages[i]!);
      });
      await Promise.all(echoes.map((e, i) => receiveExactly(e, messages[i]!, `the echo on connection ${i}`)));
      assert.equal(accepted.length, 50);
      const ports = new Set(accepted.map((a) => a.info.remotePort));
      assert.equal(ports.size, 50, 'each connection has its own remote port');
    });
  });
}
