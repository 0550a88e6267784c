import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ProtocolVersion } from '../../src/codec/mqtt/index.js';
import { until } from '../helpers/broker.js';
import { connackOf } from '../helpers/mqtt-client.js';
import { publishPacket, type RawClient } from '../helpers/raw-client.js';
import { type LimitedBroker, limitedTests } from './limited-broker.js';

/**
 * Per-client quotas end to end: subscriptions per client, topic length and depth (publish and
 * subscribe, 5.0 and 3.1.1), and the existing in-flight and queue bounds.
 */

const t = limitedTests();
let seq = 0;

function rawClient(b: LimitedBroker, version: ProtocolVersion, clientId = `raw${version}-${++seq}`) {
  return t.raw(b.port, { protocolVersion: version, clientId });
}

async function subscribe(raw: RawClient, filters: string[], packetId: number): Promise<number[]> {
  raw.send({
    type: 'subscribe',
    packetId,
    subscriptions: filters.map((topicFilter) => ({ topicFilter, qos: 1 as const })),
  });
  const suback = await raw.next('suback');
  assert.equal(suback.packetId, packetId);
  return suback.reasonCodes;
}

describe('max subscriptions per client', { timeout: 30_000 }, () => {
  for (const [version, refused] of [
    [5, 0x97],
    [4, 0x80],
  ] as const) {
    test(`MQTT ${version === 5 ? '5.0' : '3.1.1'}: a filter beyond the quota gets SUBACK 0x${refused.toString(16)}; replacing one does not count`, async () => {
      const b = await t.start({ mqtt: { maxSubscriptionsPerClient: 3 } });
      const raw = await rawClient(b, version, `subs${version}`);
      // A filter repeated in one SUBSCRIBE counts once.
      assert.deepEqual(await subscribe(raw, ['q/1', 'q/2', 'q/2', 'q/3', 'q/4'], 1), [1, 1, 1, 1, refused]);
      assert.deepEqual(await subscribe(raw, ['q/1', 'q/5'], 2), [1, refused]);
      raw.send({ type: 'unsubscribe', packetId: 3, topicFilters: ['q/2'] });
      await raw.next('unsuback');
      assert.deepEqual(await subscribe(raw, ['q/5', 'q/6'], 4), [1, refused]);
      const session = b.broker.sessions.get(`subs${version}`)!;
      assert.deepEqual([...session.subscriptions.keys()].sort(), ['q/1', 'q/3', 'q/5']);
    });
  }
});

const LIMITED = { maxTopicLength: 32, maxTopicLevels: 4 };
const TOO_LONG = `long/${'x'.repeat(40)}`;
const TOO_DEEP = 'a/b/c/d/e';

describe('topic length and depth: PUBLISH', { timeout: 30_000 }, () => {
  for (const [what, topic] of [
    ['too long', TOO_LONG],
    ['too deep', TOO_DEEP],
  ] as const) {
    test(`5.0, ${what}: QoS 1 gets PUBACK 0x90 and QoS 2 PUBREC 0x90, the connection goes on; nothing is delivered`, async () => {
      const b = await t.start({ mqtt: LIMITED });
      const sub = t.client(b.url, { clientId: `sub-${++seq}`, protocolVersion: 5 });
      await connackOf(sub);
      const got: string[] = [];
      sub.on('message', (tp) => got.push(tp));
      await sub.subscribeAsync('#', { qos: 1 });
      const raw = await rawClient(b, 5);
      raw.send(publishPacket(topic, { qos: 1, packetId: 1 }));
      const puback = await raw.next('puback');
      assert.equal(puback.reasonCode, 0x90);
      raw.send(publishPacket(topic, { qos: 2, packetId: 2 }));
      const pubrec = await raw.next('pubrec');
      assert.equal(pubrec.reasonCode, 0x90);
      // The failed QoS 2 exchange holds no packet id: the same id is free for a new message.
      raw.send(publishPacket('ok/topic', { qos: 2, packetId: 2 }));
      assert.equal((await raw.next('pubrec')).reasonCode, 0);
      raw.send({ type: 'pubrel', packetId: 2 });
      await raw.next('pubcomp');
      await until(() => got.includes('ok/topic'), 'the valid message');
      assert.deepEqual(got, ['ok/topic']);
    });

    test(`5.0, ${what}: QoS 0 gets DISCONNECT 0x90 and the connection is closed`, async () => {
      const b = await t.start({ mqtt: LIMITED });
      const raw = await rawClient(b, 5);
      raw.send(publishPacket(topic));
      const disconnect = await raw.next('disconnect');
      assert.equal(disconnect.reasonCode, 0x90);
      await raw.closedByBroker();
    });

    test(`3.1.1, ${what}: the connection is closed without an acknowledgement`, async () => {
      const b = await t.start({ mqtt: LIMITED });
      const raw = await rawClient(b, 4);
      raw.send(publishPacket(topic, { qos: 1, packetId: 1 }));
      await raw.closedByBroker();
      assert.deepEqual(
        raw.packets.map((p) => p.type),
        [],
      );
    });
  }

  test('a topic alias set with a topic over the limit is not set', async () => {
    const b = await t.start({ mqtt: LIMITED });
    const raw = await rawClient(b, 5);
    raw.send(publishPacket(TOO_DEEP, { qos: 1, packetId: 1, properties: { topicAlias: 1 } }));
    assert.equal((await raw.next('puback')).reasonCode, 0x90);
    raw.send(publishPacket('', { qos: 1, packetId: 2, properties: { topicAlias: 1 } }));
    assert.equal((await raw.next('disconnect')).reasonCode, 0x82);
  });
});

describe('topic length and depth: SUBSCRIBE', { timeout: 30_000 }, () => {
  for (const [version, refused] of [
    [5, 0x8f],
    [4, 0x80],
  ] as const) {
    test(`MQTT ${version === 5 ? '5.0' : '3.1.1'}: filters too long or too deep get SUBACK 0x${refused.toString(16)}; the rest are granted`, async () => {
      const b = await t.start({ mqtt: LIMITED });
      const raw = await rawClient(b, version);
      // A shared subscription's levels are its filter's: `$share/g/` does not count.
      const codes = await subscribe(
        raw,
        [TOO_LONG, TOO_DEEP, 'a/b/c/#', '$share/g/a/b/c/d', '$share/g/a/b/c/d/e'],
        1,
      );
      assert.deepEqual(codes, [refused, refused, 1, 1, refused]);
    });
  }
});

describe('in-flight and queue bounds on a client that does not acknowledge', { timeout: 30_000 }, () => {
  for (const [policy, delivered, lost] of [
    ['drop-new', ['m1', 'm2', 'm3', 'm4', 'm5'], ['m6', 'm7', 'm8', 'm9', 'm10']],
    ['drop-oldest', ['m1', 'm2', 'm8', 'm9', 'm10'], ['m3', 'm4', 'm5', 'm6', 'm7']],
  ] as const) {
    test(`maxInflightMessages 2 and maxQueuedMessages 3 ('${policy}'): 2 in flight, 3 queued, the rest dropped as queue-full`, async () => {
      const b = await t.start({
        broker: { maxQueuedMessages: 3, queueOverflow: policy },
        mqtt: { maxInflightMessages: 2 },
      });
      const raw = await rawClient(b, 5, 'slow-acker');
      assert.deepEqual(await subscribe(raw, ['bound/t'], 1), [1]);
      const pub = t.client(b.url, { clientId: `bound-pub-${++seq}`, protocolVersion: 5 });
      await connackOf(pub);
      for (let i = 1; i <= 10; i++) await pub.publishAsync('bound/t', `m${i}`, { qos: 1 });
      const session = b.broker.sessions.get('slow-acker')!;
      await until(() => raw.packets.filter((p) => p.type === 'publish').length >= 2, 'two deliveries');
      assert.equal(session.inflight.size, 2);
      assert.equal(session.queuedCount, 3);
      assert.deepEqual(
        b.drops.map((d) => [d.payload, d.reason]),
        lost.map((p) => [p, 'queue-full']),
      );
      // Each acknowledgement lets one more out, in order, until the queue is empty.
      const received: string[] = [];
      while (received.length < 5) {
        const publish = await raw.next('publish');
        received.push(publish.payload.toString());
        raw.send({ type: 'puback', packetId: publish.packetId! });
      }
      assert.deepEqual(received, delivered);
      await until(() => session.inflight.size === 0, 'the last acknowledgement');
      assert.equal(session.queuedCount, 0);
    });
  }
});
