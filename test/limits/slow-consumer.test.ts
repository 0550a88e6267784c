import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { PublishPacket } from '../../src/codec/mqtt/index.js';
import { until } from '../helpers/broker.js';
import { connackOf } from '../helpers/mqtt-client.js';
import type { RawClient } from '../helpers/raw-client.js';
import { type LimitedBroker, limitedTests } from './limited-broker.js';

/**
 * The bounded outbound buffer end to end, with raw clients that stop reading: over the soft
 * limit QoS 0 to that client is dropped ('slow-consumer') and QoS 1 waits in its session queue
 * until it reads again; over the hard limit a client that does not read is disconnected, and
 * other clients carry on.
 */

const t = limitedTests();
const KiB = 1024;

/** An MQTT.js client, connected. */
async function mqttClient(b: LimitedBroker, clientId: string): Promise<MqttClient> {
  const c = t.client(b.url, { clientId, protocolVersion: 5 });
  await connackOf(c);
  return c;
}

/** A raw 5.0 client subscribed to `filter` at QoS 1 that then stops reading. */
async function nonReader(b: LimitedBroker, clientId: string, filter: string): Promise<RawClient> {
  const raw = await t.raw(b.port, { protocolVersion: 5, clientId });
  raw.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
  await raw.next('suback');
  raw.socket.pause();
  return raw;
}

function payloads(raw: RawClient): string[] {
  return raw.packets
    .filter((p): p is PublishPacket => p.type === 'publish')
    .map((p) => p.payload.subarray(0, 16).toString().replace(/\.+$/, ''));
}

describe('a slow consumer', { timeout: 60_000 }, () => {
  test("over the soft limit its QoS 0 is dropped ('slow-consumer') and its QoS 1 waits; all QoS 1 arrives once it reads", async () => {
    const b = await t.start({ mqtt: { outboundSoftLimit: 64 * KiB, outboundHardLimit: 1024 * 1024 * KiB } });
    const raw = await nonReader(b, 'slow', 'slow/t');
    const pub = await mqttClient(b, 'slow-pub');
    const big = (label: string) => label.padEnd(64 * KiB, '.');

    // QoS 0 until the socket's buffers are full and the broker starts dropping for this client.
    let sent = 0;
    const slowDrops = () => b.drops.filter((d) => d.clientId === 'slow' && d.reason === 'slow-consumer');
    while (slowDrops().length === 0) {
      assert.ok(sent < 4000, 'no slow-consumer drop after 250 MiB');
      await Promise.all(
        Array.from({ length: 8 }, () => pub.publishAsync('slow/t', big(`q0-${sent++}`), { qos: 0 })),
      );
    }
    const conn = b.connection('slow')!;
    assert.equal(conn.qos0DropReason, 'slow-consumer');
    assert.ok(conn.stream.writableLength > 64 * KiB);

    // QoS 1 is kept in the session queue, not dropped.
    for (let i = 1; i <= 5; i++) await pub.publishAsync('slow/t', `k${i}`, { qos: 1 });
    const session = b.broker.sessions.get('slow')!;
    assert.ok(session.queuedCount >= 5, `${session.queuedCount} queued`);
    assert.deepEqual(
      b.drops.filter((d) => d.payload.startsWith('k')),
      [],
    );
    assert.ok(b.drops.every((d) => d.clientId === 'slow' && d.reason === 'slow-consumer'));

    // Reading again: the buffer drains, the QoS 1 messages follow, in order, and QoS 0 flows again.
    raw.socket.resume();
    await until(() => payloads(raw).includes('k5'), 'the QoS 1 messages', 30_000);
    assert.deepEqual(
      payloads(raw).filter((p) => p.startsWith('k')),
      ['k1', 'k2', 'k3', 'k4', 'k5'],
    );
    await until(() => conn.qos0DropReason === undefined, 'the buffer to drain');
    await pub.publishAsync('slow/t', 'q0-after', { qos: 0 });
    await until(() => payloads(raw).includes('q0-after'), 'QoS 0 after draining');
  });

  test('over the hard limit a client that does not read is disconnected (0x97); other clients carry on', async () => {
    // The hard limit is never below soft limit plus largest packet: keep the packets small.
    const b = await t.start({
      mqtt: { outboundSoftLimit: 64 * KiB, outboundHardLimit: 256 * KiB, maxPacketSize: 128 * KiB },
    });
    const reasons = new Map<string, string>();
    b.broker.on('clientDisconnected', (client, reason) => reasons.set(client.clientId, reason));
    const raw = await nonReader(b, 'stuck', 'stuck/t');
    const other = await mqttClient(b, 'other');
    const got: string[] = [];
    other.on('message', (_topic, payload) => got.push(payload.toString()));
    await other.subscribeAsync('other/t', { qos: 1 });

    // What the broker writes last to the stuck client: the DISCONNECT (it is not reading it).
    const stream = b.connection('stuck')!.stream;
    const write = stream.write.bind(stream) as (chunk: Buffer) => boolean;
    let last: Buffer | undefined;
    stream.write = ((chunk: Buffer) => {
      last = chunk;
      return write(chunk);
    }) as typeof stream.write;

    // The stuck client keeps sending PINGREQs and never reads a PINGRESP: a buffer that only grows.
    const pings = Buffer.alloc(64 * KiB);
    for (let i = 0; i < pings.length; i += 2) pings[i] = 0xc0;
    let written = 0;
    while (!reasons.has('stuck')) {
      assert.ok(written < 256 * 1024 * KiB, 'still connected after 256 MiB of PINGREQ');
      if (!raw.socket.write(pings)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearInterval(check);
            resolve();
          };
          const check = setInterval(() => reasons.has('stuck') && done(), 5);
          raw.socket.once('drain', done);
        });
      }
      written += pings.length;
    }
    assert.equal(reasons.get('stuck'), 'slow-consumer');
    // DISCONNECT (0xE0), Remaining Length, reason code 0x97 Quota exceeded.
    assert.equal(last?.[0], 0xe0);
    assert.equal(last?.[2], 0x97);
    await until(() => b.connection('stuck') === undefined, 'the connection to go');

    // Others carry on.
    await other.publishAsync('other/t', 'still here', { qos: 1 });
    await until(() => got.includes('still here'), 'the other client’s message');
    assert.equal(reasons.has('other'), false);
  });

  test('a client that reads is never closed for one large message, even one above outboundHardLimit', async () => {
    const b = await t.start({ mqtt: { outboundSoftLimit: 16 * KiB, outboundHardLimit: 128 * KiB } });
    const sub = await mqttClient(b, 'big-sub');
    const got: number[] = [];
    sub.on('message', (_topic, payload) => got.push(payload.length));
    await sub.subscribeAsync('big/t', { qos: 1 });
    const pub = await mqttClient(b, 'big-pub');
    for (let i = 0; i < 8; i++) await pub.publishAsync('big/t', Buffer.alloc(512 * KiB, i), { qos: 1 });
    await until(() => got.length === 8, 'eight large messages');
    assert.deepEqual(got, Array(8).fill(512 * KiB));
    assert.equal(b.connection('big-sub')?.closed, false);
  });

  test('a QoS 0 flood to a client that does not read never takes its buffer past soft limit plus one message', async () => {
    const b = await t.start({ mqtt: { outboundSoftLimit: 64 * KiB, outboundHardLimit: 1024 * KiB } });
    await nonReader(b, 'quiet', 'quiet/t');
    const pub = await mqttClient(b, 'quiet-pub');
    const conn = b.connection('quiet')!;
    let highest = 0;
    let drops = 0;
    for (let i = 0; drops < 200; i++) {
      assert.ok(i < 4000, 'no slow-consumer drops');
      await Promise.all(
        Array.from({ length: 8 }, () => pub.publishAsync('quiet/t', 'x'.repeat(16 * KiB), { qos: 0 })),
      );
      highest = Math.max(highest, conn.stream.writableLength);
      drops = b.drops.filter((d) => d.reason === 'slow-consumer').length;
    }
    assert.ok(!conn.closed, 'the hard limit was never reached');
    assert.ok(highest <= 64 * KiB + 17 * KiB, `buffer reached ${highest} bytes`);
  });
});
