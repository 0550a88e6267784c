import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import {
  collect,
  id,
  type Received,
  testClients,
  untilPayload,
  type Version,
} from '../helpers/mqtt-client.js';
import { publishPacket, RawClient } from '../helpers/raw-client.js';

/**
 * Retained messages end to end (MQTT 3.3.1.3): storing, replacing, clearing, the RETAIN
 * flag on delivery, Retain As Published, Retain Handling, wildcards, QoS, expiry and a
 * server without retain support.
 */

let t: TestBroker;
const { raws, client } = testClients('ret', () => t);
const brokers: TestBroker[] = [];

function summary(list: Received[]): [topic: string, payload: string, retain: boolean][] {
  return list.map((m) => [m.topic, m.payload.toString(), m.packet.retain]);
}

/** A new subscriber: subscribes, then a live marker follows on `markerTopic`; returns all it got up to the marker. */
async function subscribeAndMark(
  version: Version,
  filter: string,
  markerTopic: string,
  options: { qos?: 0 | 1 | 2; rh?: 0 | 1 | 2 } = {},
): Promise<Received[]> {
  const sub = await client(version);
  const received = collect(sub);
  await sub.subscribeAsync(filter, {
    qos: options.qos ?? 1,
    ...(options.rh === undefined ? {} : { rh: options.rh }),
  });
  await t.broker.publish({ topic: markerTopic, payload: 'marker', qos: 1 });
  await untilPayload(received, 'marker');
  return received;
}

before(async () => {
  t = await startBroker();
});

after(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await t.close();
});

describe('storing, replacing and clearing', () => {
  for (const version of [4, 5] as const) {
    const v = `(MQTT ${version})`;

    test(`MQTT-3.3.1-5: a retained message is stored and sent to a later subscriber with RETAIN=1 (MQTT-3.3.1-8 in 3.1.1) ${v}`, async () => {
      const pub = await client(version);
      await pub.publishAsync(`set${version}/t`, 'kept', { qos: 1, retain: true });
      const got = await subscribeAndMark(version, `set${version}/t`, `set${version}/t`);
      assert.deepEqual(summary(got), [
        [`set${version}/t`, 'kept', true],
        [`set${version}/t`, 'marker', false],
      ]);
    });

    test(`MQTT-3.3.1-5: a retained message replaces the previous one ${v}`, async () => {
      const pub = await client(version);
      await pub.publishAsync(`replace${version}/t`, 'one', { qos: 1, retain: true });
      await pub.publishAsync(`replace${version}/t`, 'two', { qos: 0, retain: true });
      await pub.publishAsync(`replace${version}/t`, 'three', { qos: 2, retain: true });
      const got = await subscribeAndMark(version, `replace${version}/t`, `replace${version}/t`);
      assert.deepEqual(summary(got), [
        [`replace${version}/t`, 'three', true],
        [`replace${version}/t`, 'marker', false],
      ]);
    });

    test(`MQTT-3.3.1-6/-7 (5.0) / -10/-11 (3.1.1): an empty retained payload is delivered normally, clears the retained message and is not stored ${v}`, async () => {
      const topic = `clear${version}/t`;
      const existing = await client(version);
      await existing.subscribeAsync(topic, { qos: 1 });
      const live = collect(existing);
      const pub = await client(version);
      await pub.publishAsync(topic, 'old', { qos: 1, retain: true });
      await pub.publishAsync(topic, '', { qos: 1, retain: true });
      await until(() => live.length === 2, 'both messages at the existing subscriber');
      assert.deepEqual(summary(live), [
        [topic, 'old', false],
        [topic, '', false],
      ]);

      const got = await subscribeAndMark(version, topic, topic);
      assert.deepEqual(summary(got), [[topic, 'marker', false]]);
    });

    test(`MQTT-3.3.1-8 (5.0) / -12 (3.1.1): a PUBLISH with RETAIN=0 neither replaces nor removes the retained message ${v}`, async () => {
      const topic = `noretain${version}/t`;
      const pub = await client(version);
      await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
      await pub.publishAsync(topic, 'live', { qos: 1, retain: false });
      await pub.publishAsync(topic, '', { qos: 1, retain: false });
      const got = await subscribeAndMark(version, topic, topic);
      assert.deepEqual(summary(got), [
        [topic, 'kept', true],
        [topic, 'marker', false],
      ]);
    });

    test(`MQTT-3.3.1-12 (5.0) / -9 (3.1.1): a message matching an existing subscription is forwarded with RETAIN=0 ${v}`, async () => {
      const topic = `live${version}/t`;
      const sub = await client(version);
      await sub.subscribeAsync(topic, { qos: 1 });
      const received = collect(sub);
      const pub = await client(version);
      await pub.publishAsync(topic, 'retained-live', { qos: 1, retain: true });
      await until(() => received.length === 1, 'the live message');
      assert.deepEqual(summary(received), [[topic, 'retained-live', false]]);
    });
  }

  test('MQTT-3.3.1-13: with Retain As Published the RETAIN flag is forwarded as published (5.0)', async () => {
    const topic = 'rap/t';
    const sub = await client(5);
    await sub.subscribeAsync(topic, { qos: 1, rap: true });
    const received = collect(sub);
    const plain = await client(5);
    await plain.subscribeAsync(topic, { qos: 1, rap: false });
    const plainGot = collect(plain);
    const pub = await client(5);
    await pub.publishAsync(topic, 'was-retained', { qos: 1, retain: true });
    await pub.publishAsync(topic, 'was-not', { qos: 1, retain: false });
    await until(() => received.length === 2 && plainGot.length === 2, 'both messages at both subscribers');
    assert.deepEqual(summary(received), [
      [topic, 'was-retained', true],
      [topic, 'was-not', false],
    ]);
    assert.deepEqual(summary(plainGot), [
      [topic, 'was-retained', false],
      [topic, 'was-not', false],
    ]);
  });
});

describe('Retain Handling (5.0)', () => {
  /** Subscribes twice with the same options; returns what arrived after each SUBSCRIBE up to a marker. */
  async function twice(topic: string, rh: 0 | 1 | 2): Promise<[string[], string[]]> {
    await t.broker.publish({ topic, payload: 'retained', qos: 1, retain: true });
    const sub = await client(5);
    const received = collect(sub);
    const rounds: string[][] = [];
    for (let round = 0; round < 2; round++) {
      received.length = 0;
      await sub.subscribeAsync(topic, { qos: 1, rh });
      const marker = `marker-${round}`;
      await t.broker.publish({ topic, payload: marker, qos: 1 });
      await untilPayload(received, marker);
      rounds.push(received.map((m) => `${m.payload.toString()}${m.packet.retain ? ' (retain)' : ''}`));
    }
    return [rounds[0]!, rounds[1]!];
  }

  test('MQTT-3.3.1-9: Retain Handling 0 sends retained messages on every SUBSCRIBE', async () => {
    assert.deepEqual(await twice('rh/0', 0), [
      ['retained (retain)', 'marker-0'],
      ['retained (retain)', 'marker-1'],
    ]);
  });

  test('MQTT-3.3.1-10: Retain Handling 1 sends retained messages only when the subscription is new', async () => {
    assert.deepEqual(await twice('rh/1', 1), [['retained (retain)', 'marker-0'], ['marker-1']]);
  });

  test('MQTT-3.3.1-10: Retain Handling 1 sends again after the subscription was removed', async () => {
    const topic = 'rh/1/again';
    await t.broker.publish({ topic, payload: 'retained', qos: 1, retain: true });
    const sub = await client(5);
    const received = collect(sub);
    await sub.subscribeAsync(topic, { qos: 1, rh: 1 });
    await untilPayload(received, 'retained');
    await sub.unsubscribeAsync(topic);
    received.length = 0;
    await sub.subscribeAsync(topic, { qos: 1, rh: 1 });
    await untilPayload(received, 'retained');
    assert.equal(received[0]!.packet.retain, true);
  });

  test('MQTT-3.3.1-11: Retain Handling 2 never sends retained messages', async () => {
    assert.deepEqual(await twice('rh/2', 2), [['marker-0'], ['marker-1']]);
  });

  test('MQTT 3.1.1 (MQTT-3.8.4-3): re-subscribing to a filter re-sends its retained messages', async () => {
    const topic = 'rh311/t';
    await t.broker.publish({ topic, payload: 'retained', qos: 1, retain: true });
    const sub = await client(4);
    const received = collect(sub);
    for (let round = 0; round < 2; round++) {
      await sub.subscribeAsync(topic, { qos: 1 });
      await t.broker.publish({ topic, payload: `marker-${round}`, qos: 1 });
      await untilPayload(received, `marker-${round}`);
    }
    assert.deepEqual(
      received.map((m) => [m.payload.toString(), m.packet.retain]),
      [
        ['retained', true],
        ['marker-0', false],
        ['retained', true],
        ['marker-1', false],
      ],
    );
  });
});

describe('matching and QoS', () => {
  for (const version of [4, 5] as const) {
    test(`a wildcard subscription gets every matching retained message (MQTT ${version})`, async () => {
      const base = `wr${version}`;
      const pub = await client(version);
      for (const topic of [`${base}/a`, `${base}/b`, `${base}/c/d`, `${base}x/other`]) {
        await pub.publishAsync(topic, topic, { qos: 1, retain: true });
      }
      const hash = await subscribeAndMark(version, `${base}/#`, `${base}/marker`);
      assert.deepEqual(
        hash
          .filter((m) => m.packet.retain)
          .map((m) => m.topic)
          .sort(),
        [`${base}/a`, `${base}/b`, `${base}/c/d`],
      );
      const plus = await subscribeAndMark(version, `${base}/+`, `${base}/marker`);
      assert.deepEqual(
        plus
          .filter((m) => m.packet.retain)
          .map((m) => m.topic)
          .sort(),
        [`${base}/a`, `${base}/b`],
      );
      assert.ok(hash.every((m) => m.packet.retain || m.topic === `${base}/marker`));
    });

    test(`MQTT-3.8.4-8: a retained message is sent at the lower of its QoS and the subscription's (MQTT ${version})`, async () => {
      const base = `rq${version}`;
      const pub = await client(version);
      await pub.publishAsync(`${base}/two`, 'two', { qos: 2, retain: true });
      await pub.publishAsync(`${base}/one`, 'one', { qos: 1, retain: true });
      for (const subQoS of [0, 1, 2] as const) {
        const got = await subscribeAndMark(version, `${base}/+`, `${base}/marker`, { qos: subQoS });
        // MQTT.js hands a QoS 2 message over only at PUBREL, possibly after the QoS 1 marker.
        await untilPayload(got, 'two');
        await untilPayload(got, 'one');
        const qos = Object.fromEntries(
          got.filter((m) => m.packet.retain).map((m) => [m.payload.toString(), m.packet.qos]),
        );
        assert.deepEqual(
          qos,
          { two: Math.min(2, subQoS), one: Math.min(1, subQoS) },
          `subscription QoS ${subQoS}`,
        );
      }
    });
  }
});

describe('expiry', () => {
  test('MQTT-3.3.2-5: a retained message with a Message Expiry Interval is no longer sent once it expires', async () => {
    const topic = 'expiring/t';
    const pub = await client(5);
    await pub.publishAsync(topic, 'short-lived', {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 2 },
    });
    const ackedAt = Date.now();
    // Still there before it expires, with the remaining interval.
    const sub = await client(5);
    const early = collect(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    await untilPayload(early, 'short-lived');
    assert.equal(early[0]!.packet.retain, true);
    assert.ok((early[0]!.packet.properties?.messageExpiryInterval ?? 99) <= 2);
    // An ordinary retained message beside it stays.
    await pub.publishAsync('expiring/kept', 'kept', { qos: 1, retain: true });

    // The broker stamped the message before acknowledging it: past ackedAt + 2 s it has expired.
    await until(() => Date.now() > ackedAt + 2000, 'the expiry time', 5000);
    for (const version of [5, 4] as const) {
      const got = await subscribeAndMark(version, 'expiring/+', 'expiring/marker');
      assert.deepEqual(summary(got), [
        ['expiring/kept', 'kept', true],
        ['expiring/marker', 'marker', false],
      ]);
    }
  });
});

describe('retainAvailable: false', () => {
  let noRetain: TestBroker;
  before(async () => {
    noRetain = await startBroker({ retainAvailable: false });
    brokers.push(noRetain);
  });

  test('MQTT-3.2.2-14: CONNACK says Retain Available 0 and a retained PUBLISH gets DISCONNECT 0x9A Retain not supported (5.0)', async () => {
    const r = await RawClient.open(noRetain.port, 5);
    raws.push(r);
    const connack = await r.handshake({ clientId: id('noret') });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.retainAvailable, false);
    r.send(publishPacket('nr/t', { qos: 1, retain: true, packetId: 1 }));
    const disconnect = await r.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x9a);
    await r.closedByBroker();
    assert.equal(
      r.packets.some((p) => p.type === 'puback'),
      false,
    );
  });

  test('a retained PUBLISH from MQTT.js v5 is refused with DISCONNECT 0x9A and nothing is stored or delivered', async () => {
    const sub = await client(5, {}, noRetain);
    await sub.subscribeAsync('nr/#', { qos: 1 });
    const received = collect(sub);
    const pub = await client(5, {}, noRetain);
    const disconnected = new Promise<{ reasonCode?: number }>((resolve) => pub.once('disconnect', resolve));
    pub.publish('nr/retained', 'x', { qos: 0, retain: true });
    const packet = await disconnected;
    assert.equal(packet.reasonCode, 0x9a);

    const later = await client(5, {}, noRetain);
    const laterGot = collect(later);
    await later.subscribeAsync('nr/#', { qos: 1 });
    await later.publishAsync('nr/marker', 'marker', { qos: 1 });
    await untilPayload(received, 'marker');
    await untilPayload(laterGot, 'marker');
    assert.deepEqual(summary(received), [['nr/marker', 'marker', false]]);
    assert.deepEqual(summary(laterGot), [['nr/marker', 'marker', false]]);
    assert.equal(noRetain.broker.broker.retainedCount, 0);
  });

  test('a retained PUBLISH closes an MQTT 3.1.1 connection when retain is not available', async () => {
    const r = await RawClient.connect(noRetain.port, { protocolVersion: 4, clientId: id('noret4') });
    raws.push(r);
    r.send(publishPacket('nr/t', { qos: 1, retain: true, packetId: 1 }));
    await r.closedByBroker();
    assert.deepEqual(r.packets, []);
  });
});
