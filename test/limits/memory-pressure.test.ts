import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { Limits, type MemoryState } from '../../src/limits/index.js';
import { until } from '../helpers/broker.js';
import { connackOf } from '../helpers/mqtt-client.js';
import { attempt, limitedTests, NO_LIMITS, outcome } from './limited-broker.js';

/**
 * The memory high-water mark end to end, with an injected memory source: while memory is
 * high, new connections are refused, QoS 0 deliveries are dropped and publishers' reads are
 * paused; once it falls below the low-water mark everything resumes.
 */

const t = limitedTests();

/** Limits whose memory reading the test sets; the interval is long, so only `sample()` moves it. */
function watched(): { limits: Limits; set(bytes: number): void; changes: MemoryState[] } {
  let bytes = 100;
  const limits = new Limits(
    { ...NO_LIMITS, memoryHighWaterMark: 1000, memoryLowWaterMark: 500, memorySampleInterval: 3_600_000 },
    { memorySource: () => bytes },
  );
  const changes: MemoryState[] = [];
  limits.memory!.on('change', (state) => changes.push(state));
  return {
    limits,
    changes,
    set(value) {
      bytes = value;
      limits.memory!.sample();
    },
  };
}

describe('above the memory high-water mark', { timeout: 30_000 }, () => {
  test('new connections get CONNACK 0x89 Server busy (5.0) or 3 (3.1.1) while high, and are accepted once it falls', async () => {
    const memory = watched();
    const b = await t.start({ limits: memory.limits });
    const open: Socket[] = [];
    t.defer(() => {
      for (const s of open) s.destroy();
    });
    assert.equal(outcome(await attempt(b.port, { clientId: 'before', sockets: open })), 0);

    memory.set(2000);
    assert.equal(outcome(await attempt(b.port, { version: 5, clientId: 'busy5', sockets: open })), 0x89);
    assert.equal(outcome(await attempt(b.port, { version: 4, clientId: 'busy4', sockets: open })), 3);
    // Between the marks it stays high (hysteresis).
    memory.set(800);
    assert.equal(outcome(await attempt(b.port, { clientId: 'still-busy', sockets: open })), 0x89);

    memory.set(400);
    assert.equal(outcome(await attempt(b.port, { clientId: 'after', sockets: open })), 0);
    assert.deepEqual(
      memory.changes.map((c) => c.high),
      [true, false],
    );
    assert.equal(memory.limits.gate.refusals['server-busy'], 3);
  });

  test("QoS 0 deliveries are dropped ('memory-pressure'), QoS 1 still delivered; a publisher's reads pause until memory falls", async () => {
    const memory = watched();
    const b = await t.start({ limits: memory.limits });
    const sub = t.client(b.url, { clientId: 'mp-sub', protocolVersion: 5 });
    await connackOf(sub);
    const got: string[] = [];
    sub.on('message', (_topic, payload) => got.push(payload.toString()));
    await sub.subscribeAsync('mp/t', { qos: 1 });
    const pub = t.client(b.url, { clientId: 'mp-pub', protocolVersion: 5 });
    await connackOf(pub);
    const other = t.client(b.url, { clientId: 'mp-other', protocolVersion: 5 });
    await connackOf(other);
    await pub.publishAsync('mp/t', 'q0-before', { qos: 0 });
    await until(() => got.includes('q0-before'), 'QoS 0 before the pressure');

    memory.set(5000);
    await pub.publishAsync('mp/t', 'q1-high', { qos: 1 });
    await until(() => got.includes('q1-high'), 'the QoS 1 message sent while memory is high');
    const conn = b.connection('mp-pub')!;
    // The publish was handled, then the publisher's reads were paused.
    assert.equal(conn.readsHeld, true);
    assert.ok(conn.readPauses >= 1);
    // Another client's QoS 0 while memory is high is dropped before it is queued.
    await other.publishAsync('mp/t', 'q0-high', { qos: 0 });
    await until(
      () => b.drops.some((d) => d.payload === 'q0-high' && d.reason === 'memory-pressure'),
      'the QoS 0 drop',
    );
    assert.deepEqual(
      b.drops.filter((d) => d.clientId === 'mp-sub').map((d) => [d.payload, d.reason]),
      [['q0-high', 'memory-pressure']],
    );

    // Every publisher is paused after its first message while memory is high.
    assert.equal(b.connection('mp-other')!.readsHeld, true);
    // The paused publisher's next message waits in the socket until memory falls, while a
    // message published afterwards by a client not yet paused goes through.
    const next = pub.publishAsync('mp/t', 'q1-after', { qos: 1 });
    await sub.publishAsync('mp/t', 'q1-marker', { qos: 1 });
    await until(() => got.includes('q1-marker'), 'the marker');
    assert.equal(got.includes('q1-after'), false);

    memory.set(100);
    await next;
    await until(() => got.includes('q1-after'), 'the held message');
    assert.equal(conn.readsHeld, false);
    await pub.publishAsync('mp/t', 'q0-after', { qos: 0 });
    await until(() => got.includes('q0-after'), 'QoS 0 after the pressure');
    assert.equal(b.broker.qos0DropReason, undefined);
  });
});
