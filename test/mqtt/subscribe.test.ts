import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { collect, id, type Received, testClients, untilTopic } from '../helpers/mqtt-client.js';

/**
 * SUBSCRIBE and UNSUBSCRIBE end to end (MQTT 3.8, 3.10, 4.7): wildcard matching, `$` topics,
 * overlapping subscriptions, granted QoS, authorization, replacement and removal.
 */

let t: TestBroker;
const { client, raw } = testClients('sub', () => t);
const brokers: TestBroker[] = [];

function topics(list: Received[], prefix = ''): string[] {
  return list.map((m) => m.topic).filter((x) => x.startsWith(prefix));
}

/** Subscription identifiers of a received 5.0 PUBLISH, as a sorted list (MQTT.js gives a number for one). */
function subscriptionIds(packet: IPublishPacket): number[] {
  const ids = packet.properties?.subscriptionIdentifier;
  if (ids === undefined) return [];
  return [ids].flat().sort((a, b) => a - b);
}

/** The SUBACK codes, whether MQTT.js resolved (all granted) or rejected (some refused). */
async function subackCodes(promise: Promise<unknown>): Promise<number[]> {
  try {
    const granted = (await promise) as { qos: number }[];
    return granted.map((g) => g.qos);
  } catch (error) {
    const packet = (error as { packet?: { granted?: number[] } }).packet;
    if (packet?.granted === undefined) throw error;
    return packet.granted;
  }
}

before(async () => {
  t = await startBroker({
    hooks: { authorizeSubscribe: (_client, filter) => !filter.startsWith('secret/') },
  });
});

after(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await t.close();
});

describe('wildcards (MQTT 4.7)', () => {
  for (const version of [4, 5] as const) {
    test(`MQTT 4.7.1.3: '+' matches exactly one level, an empty one included, never the parent (MQTT ${version})`, async () => {
      const base = `plus${version}`;
      const sub = await client(version);
      await sub.subscribeAsync(`${base}/+/player`, { qos: 1 });
      await sub.subscribeAsync(`${base}/x/+`, { qos: 1 });
      const received = collect(sub);
      const pub = await client(version);
      const published = [
        `${base}/tennis/player`, // match
        `${base}/tennis/x/player`, // two levels: no
        `${base}//player`, // empty level: match
        `${base}/player`, // no level in between: no
        `${base}/x`, // parent of x/+: no
        `${base}/x/`, // empty last level: match
        `${base}/x/y/z`, // no
        `${base}/x/end`, // marker: match
      ];
      for (const topic of published) await pub.publishAsync(topic, topic, { qos: 1 });
      await untilTopic(received, `${base}/x/end`);
      assert.deepEqual(topics(received), [
        `${base}/tennis/player`,
        `${base}//player`,
        `${base}/x/`,
        `${base}/x/end`,
      ]);
    });

    test(`MQTT-4.7.1-2: '#' matches its parent level and every level below (MQTT ${version})`, async () => {
      const base = `hash${version}`;
      const sub = await client(version);
      await sub.subscribeAsync(`${base}/sport/#`, { qos: 1 });
      const received = collect(sub);
      const pub = await client(version);
      const published = [
        `${base}/sport`, // parent: match
        `${base}/sport/tennis`, // match
        `${base}/sport/tennis/player/ranking`, // match
        `${base}/sports`, // different level: no
        `${base}/other/sport`, // no
        `${base}/sport/`, // match
        `${base}/sport/end`, // marker
      ];
      for (const topic of published) await pub.publishAsync(topic, topic, { qos: 1 });
      await untilTopic(received, `${base}/sport/end`);
      assert.deepEqual(topics(received), [
        `${base}/sport`,
        `${base}/sport/tennis`,
        `${base}/sport/tennis/player/ranking`,
        `${base}/sport/`,
        `${base}/sport/end`,
      ]);
    });
  }

  test("MQTT-4.7.2-1: '#' and '+/...' do not match topics starting with '$', '$SYS/#' does", async () => {
    const wild = await client(5);
    await wild.subscribeAsync({ '#': { qos: 1 }, '+/info': { qos: 1 }, '+/+/uptime': { qos: 1 } });
    const wildGot = collect(wild);
    const sys = await client(4);
    await sys.subscribeAsync({ '$SYS/#': { qos: 1 } });
    const sysGot = collect(sys);
    const sysPlus = await client(4);
    await sysPlus.subscribeAsync({ '$SYS/+': { qos: 1 } });
    const sysPlusGot = collect(sysPlus);

    await t.broker.publish({ topic: '$SYS/info', payload: 'a', qos: 1 });
    await t.broker.publish({ topic: '$SYS/broker/uptime', payload: 'b', qos: 1 });
    await t.broker.publish({ topic: '$SYS', payload: 'c', qos: 1 });
    // Markers on the same paths: a normal topic matching '#' and '+/info', and a $SYS one.
    await t.broker.publish({ topic: 'dollar/info', payload: 'marker', qos: 1 });
    await t.broker.publish({ topic: '$SYS/marker', payload: 'marker', qos: 1 });

    await untilTopic(wildGot, 'dollar/info');
    await untilTopic(sysGot, '$SYS/marker');
    await untilTopic(sysPlusGot, '$SYS/marker');
    assert.deepEqual(
      wildGot.map((m) => m.topic).filter((x) => x.startsWith('$') || x === 'dollar/info'),
      ['dollar/info'],
    );
    assert.deepEqual(topics(sysGot), ['$SYS/info', '$SYS/broker/uptime', '$SYS', '$SYS/marker']);
    assert.deepEqual(topics(sysPlusGot), ['$SYS/info', '$SYS/marker']);
  });
});

describe('overlapping subscriptions', () => {
  test('MQTT-3.3.5-1 (3.1.1): overlapping subscriptions get one copy at the highest granted QoS', async () => {
    const sub = await client(4);
    await sub.subscribeAsync({ 'ov4/+': { qos: 0 }, 'ov4/#': { qos: 2 }, 'ov4/a': { qos: 1 } });
    const received = collect(sub);
    const pub = await client(4);
    await pub.publishAsync('ov4/a', 'overlap', { qos: 2 });
    await pub.publishAsync('ov4/a', 'low', { qos: 1 });
    await pub.publishAsync('ov4/end', 'marker', { qos: 0 });
    await untilTopic(received, 'ov4/end');
    assert.deepEqual(
      received.map((m) => [m.payload.toString(), m.packet.qos]),
      [
        ['overlap', 2],
        ['low', 1],
        ['marker', 0],
      ],
    );
  });

  test('MQTT-3.3.4-3 (5.0): overlapping subscriptions get one copy carrying every Subscription Identifier', async () => {
    const sub = await client(5);
    await sub.subscribeAsync('ov5/+', { qos: 0, properties: { subscriptionIdentifier: 1 } });
    await sub.subscribeAsync('ov5/#', { qos: 1, properties: { subscriptionIdentifier: 2 } });
    await sub.subscribeAsync('ov5/+/deep', { qos: 2 });
    const received = collect(sub);
    const pub = await client(5);
    await pub.publishAsync('ov5/a', 'both', { qos: 2 });
    await pub.publishAsync('ov5/a/b', 'hash-only', { qos: 2 });
    await pub.publishAsync('ov5/x/deep', 'hash-and-unnumbered', { qos: 2 });
    await pub.publishAsync('ov5/end', 'marker', { qos: 0 });
    await untilTopic(received, 'ov5/end');
    assert.deepEqual(
      received.map((m) => [m.payload.toString(), m.packet.qos, subscriptionIds(m.packet)]),
      [
        ['both', 1, [1, 2]],
        ['hash-only', 1, [2]],
        ['hash-and-unnumbered', 2, [2]],
        ['marker', 0, [1, 2]],
      ],
    );
  });
});

describe('granted QoS', () => {
  for (const version of [4, 5] as const) {
    test(`MQTT 3.9.3: SUBACK grants the requested QoS (MQTT ${version})`, async () => {
      const sub = await client(version);
      const codes = await subackCodes(
        sub.subscribeAsync({
          [`g${version}/0`]: { qos: 0 },
          [`g${version}/1`]: { qos: 1 },
          [`g${version}/2`]: { qos: 2 },
        }),
      );
      assert.deepEqual(codes, [0, 1, 2]);
    });

    test(`the granted QoS is capped by the maximumQoS option and deliveries follow it (MQTT ${version})`, async () => {
      const capped = await startBroker({ maximumQoS: 1 });
      brokers.push(capped);
      const sub = await client(version, {}, capped);
      const codes = await subackCodes(
        sub.subscribeAsync({ 'cap/0': { qos: 0 }, 'cap/1': { qos: 1 }, 'cap/2': { qos: 2 } }),
      );
      assert.deepEqual(codes, [0, 1, 1]);
      const received = collect(sub);
      await capped.broker.publish({ topic: 'cap/2', payload: 'two', qos: 2 });
      await until(() => received.length === 1, 'the message');
      assert.equal(received[0]!.packet.qos, 1);
    });
  }
});

describe('authorizeSubscribe', () => {
  for (const [version, code] of [
    [4, 0x80],
    [5, 0x87],
  ] as const) {
    test(`a denied filter gets SUBACK 0x${code.toString(16)} while the other filters of the same SUBSCRIBE succeed (MQTT ${version})`, async () => {
      const sub = await client(version);
      const codes = await subackCodes(
        sub.subscribeAsync({
          [`open${version}/a`]: { qos: 1 },
          [`secret/${version}`]: { qos: 1 },
          [`open${version}/b`]: { qos: 2 },
        }),
      );
      assert.deepEqual(codes, [1, code, 2]);
      const received = collect(sub);
      await t.broker.publish({ topic: `secret/${version}`, payload: 'hidden', qos: 1 });
      await t.broker.publish({ topic: `open${version}/a`, payload: 'a', qos: 1 });
      await t.broker.publish({ topic: `open${version}/b`, payload: 'b', qos: 2 });
      await untilTopic(received, `open${version}/b`);
      assert.deepEqual(
        received.map((m) => [m.topic, m.packet.qos]),
        [
          [`open${version}/a`, 1],
          [`open${version}/b`, 2],
        ],
      );
    });
  }

  test('a denied filter gets exactly 0x87 on the wire (MQTT 5.0, RawClient)', async () => {
    const r = await raw(5);
    r.send({
      type: 'subscribe',
      packetId: 9,
      subscriptions: [
        { topicFilter: 'secret/raw', qos: 0 },
        { topicFilter: 'public/raw', qos: 1 },
      ],
    });
    const suback = await r.next('suback');
    assert.equal(suback.packetId, 9);
    assert.deepEqual(suback.reasonCodes, [0x87, 1]);
  });
});

describe('replacing and removing subscriptions', () => {
  for (const version of [4, 5] as const) {
    test(`MQTT-3.8.4-3: subscribing again to the same filter replaces its options (MQTT ${version})`, async () => {
      const subId = id('resub');
      const sub = await client(version, { clientId: subId });
      const filter = `resub${version}/#`;
      const props = (n: number) => (version === 5 ? { properties: { subscriptionIdentifier: n } } : {});
      await sub.subscribeAsync(filter, { qos: 2, ...props(5) });
      assert.deepEqual(await subackCodes(sub.subscribeAsync(filter, { qos: 0, ...props(6) })), [0]);
      const received = collect(sub);
      const pub = await client(version);
      await pub.publishAsync(`resub${version}/x`, 'once', { qos: 2 });
      await pub.publishAsync(`resub${version}/end`, 'marker', { qos: 1 });
      await untilTopic(received, `resub${version}/end`);
      assert.deepEqual(
        received.map((m) => [m.payload.toString(), m.packet.qos]),
        [
          ['once', 0],
          ['marker', 0],
        ],
      );
      if (version === 5) assert.deepEqual(subscriptionIds(received[0]!.packet), [6]);
      assert.equal(t.broker.broker.sessions.get(subId)?.subscriptions.size, 1);
    });

    test(`UNSUBSCRIBE stops delivery on that filter only (MQTT ${version})`, async () => {
      const sub = await client(version);
      const base = `unsub${version}`;
      await sub.subscribeAsync({
        [`${base}/a`]: { qos: 1 },
        [`${base}/+`]: { qos: 0 },
        [`${base}/marker`]: { qos: 1 },
      });
      const received = collect(sub);
      const pub = await client(version);
      await pub.publishAsync(`${base}/a`, 'before', { qos: 1 });
      await untilTopic(received, `${base}/a`);
      await sub.unsubscribeAsync([`${base}/a`, `${base}/+`]);
      await pub.publishAsync(`${base}/a`, 'after', { qos: 1 });
      await pub.publishAsync(`${base}/marker`, 'marker', { qos: 1 });
      await untilTopic(received, `${base}/marker`);
      assert.deepEqual(
        received.map((m) => m.payload.toString()),
        ['before', 'marker'],
      );
    });
  }

  test('MQTT 5.0 UNSUBACK says 0x11 No subscription existed for a filter that was not subscribed', async () => {
    const sub = await client(5);
    await sub.subscribeAsync('exists/here', { qos: 1 });
    const unsuback = (await sub.unsubscribeAsync(['exists/here', 'never/subscribed'])) as {
      granted?: number[];
    };
    assert.deepEqual(unsuback.granted, [0x00, 0x11]);

    const r = await raw(5);
    r.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'raw/exists', qos: 0 }] });
    await r.next('suback');
    r.send({ type: 'unsubscribe', packetId: 2, topicFilters: ['raw/missing', 'raw/exists', 'raw/exists'] });
    const raw5 = await r.next('unsuback');
    assert.equal(raw5.packetId, 2);
    assert.deepEqual(raw5.reasonCodes, [0x11, 0x00, 0x11]);
  });

  test('MQTT 3.1.1 UNSUBACK for a filter that was not subscribed is a plain acknowledgement', async () => {
    const r = await raw(4);
    r.send({ type: 'unsubscribe', packetId: 7, topicFilters: ['never/there'] });
    const unsuback = await r.next('unsuback');
    assert.equal(unsuback.packetId, 7);
    assert.deepEqual(unsuback.reasonCodes, []);
  });
});

describe('invalid topic filters', () => {
  for (const filter of ['a/#/b', 'a/b#', 'a+/b', '#/']) {
    test(`MQTT-4.7.1-1: SUBSCRIBE to '${filter}' closes the connection with DISCONNECT 0x8F Topic Filter invalid (MQTT 5.0)`, async () => {
      const r = await raw(5);
      r.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
      const disconnect = await r.next('disconnect');
      assert.equal(disconnect.reasonCode, 0x8f);
      await r.closedByBroker();
      assert.equal(
        r.packets.some((p) => p.type === 'suback'),
        false,
      );
    });
  }

  test("MQTT-4.7.1-1: SUBSCRIBE to 'a/#/b' closes the connection (MQTT 3.1.1)", async () => {
    const r = await raw(4);
    r.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a/#/b', qos: 0 }] });
    await r.closedByBroker();
    assert.deepEqual(r.packets, []);
  });

  test("MQTT-4.7.1-1: UNSUBSCRIBE from 'a/#/b' closes the connection (MQTT 5.0)", async () => {
    const r = await raw(5);
    r.send({ type: 'unsubscribe', packetId: 1, topicFilters: ['a/#/b'] });
    const disconnect = await r.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x8f);
    await r.closedByBroker();
  });
});
