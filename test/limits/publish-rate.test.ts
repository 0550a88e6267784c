import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { until } from '../helpers/broker.js';
import { connackOf } from '../helpers/mqtt-client.js';
import { type LimitedBroker, limitedTests } from './limited-broker.js';

/**
 * Publish rates end to end: a client over its messages/s or bytes/s is slowed down by pausing
 * reads on its connection (seen in the connection's pause counter), and every one of its QoS 1
 * messages still arrives, in order.
 */

const t = limitedTests();

/** A QoS 1 burst of `count` messages of `size` bytes from a fresh publisher; resolves with what a subscriber got. */
async function burst(
  b: LimitedBroker,
  prefix: string,
  count: number,
  size: number,
): Promise<{ sent: string[]; got: string[]; pauses: number }> {
  const sub = t.client(b.url, { clientId: `${prefix}-sub`, protocolVersion: 5 });
  await connackOf(sub);
  const got: string[] = [];
  sub.on('message', (_topic, payload) => got.push(payload.subarray(0, 12).toString()));
  await sub.subscribeAsync(`${prefix}/t`, { qos: 1 });
  const pub = t.client(b.url, { clientId: `${prefix}-pub`, protocolVersion: 4 });
  await connackOf(pub);
  const sent = Array.from({ length: count }, (_, i) => `m${String(i).padStart(11, '0')}`);
  // All at once: MQTT.js writes them back to back, as a burst.
  await Promise.all(
    sent.map((label) => pub.publishAsync(`${prefix}/t`, label.padEnd(size, '.'), { qos: 1 })),
  );
  await until(() => got.length >= count, `${count} messages`);
  return { sent, got, pauses: b.connection(`${prefix}-pub`)!.readPauses };
}

describe('publish rate limits', { timeout: 60_000 }, () => {
  test('messages/s: a QoS 1 burst over the rate pauses the connection, and every message arrives in order', async () => {
    const b = await t.start({ mqtt: { maxPublishRate: 20 } });
    const { sent, got, pauses } = await burst(b, 'rate', 50, 16);
    assert.ok(pauses >= 1, `reads paused ${pauses} times`);
    assert.deepEqual(got, sent);
    assert.deepEqual(b.drops, []);
  });

  test('bytes/s: a QoS 1 burst over the byte rate pauses the connection, and every message arrives in order', async () => {
    const b = await t.start({ mqtt: { maxPublishBytesRate: 16 * 1024 } });
    const { sent, got, pauses } = await burst(b, 'bytes', 24, 2048);
    assert.ok(pauses >= 1, `reads paused ${pauses} times`);
    assert.deepEqual(got, sent);
    assert.deepEqual(b.drops, []);
  });

  test('without a rate limit the same burst never pauses reads', async () => {
    const b = await t.start();
    const { sent, got, pauses } = await burst(b, 'free', 50, 2048);
    assert.equal(pauses, 0);
    assert.deepEqual(got, sent);
  });
});
