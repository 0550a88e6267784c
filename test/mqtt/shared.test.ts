import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions } from 'mqtt';
import type { ConnectPacket, PublishPacket } from '../../src/codec/mqtt/index.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { clientsClosedAfterEach, openPeer, type Peer } from '../helpers/mqtt-client.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * Shared subscriptions (MQTT 4.8.2), end to end: `$share/{group}/{filter}` spreads each
 * message over the group's members, one member per message, with nothing lost when a
 * member goes away holding unacknowledged messages.
 */

const { clients, raws } = clientsClosedAfterEach();

const open = (url: string, options: IClientOptions = {}): Promise<Peer> => openPeer(clients, url, options);

/** A member subscribed to `filter` at `qos`. */
async function member(
  url: string,
  filter: string,
  qos: 0 | 1 | 2 = 1,
  options: IClientOptions = {},
): Promise<Peer> {
  const peer = await open(url, options);
  await peer.client.subscribeAsync(filter, { qos });
  return peer;
}

async function rawConnect(port: number, connect: Partial<ConnectPacket> = {}): Promise<RawClient> {
  const raw = await RawClient.connect(port, { protocolVersion: 5, ...connect });
  raws.push(raw);
  return raw;
}

/**
 * An UNSUBACK round trip: every PUBLISH the broker had queued for this client before it is
 * written ahead of the UNSUBACK, so nothing more is on its way once it returns.
 */
async function flush(peer: Peer): Promise<void> {
  await peer.client.unsubscribeAsync('flush/nothing');
}

async function publishAll(url: string, topic: string, count: number, qos: 0 | 1 | 2 = 1): Promise<string[]> {
  const pub = await open(url);
  const payloads = Array.from({ length: count }, (_, i) => `m${String(i).padStart(3, '0')}`);
  for (const payload of payloads) await pub.client.publishAsync(topic, payload, { qos });
  return payloads;
}

const payloadsOf = (peer: Peer): string[] => peer.messages.map((m) => m.payload);
const total = (peers: Peer[]): number => peers.reduce((n, p) => n + p.messages.length, 0);
const sorted = (items: string[]): string[] => [...items].sort();

let b: TestBroker;
before(async () => {
  b = await startBroker();
});
after(() => b.close());

describe('$share/{group}/{filter}', () => {
  test('4.8.2: 30 messages over 3 members: each message to exactly one member, each member some, in publish order', async () => {
    const members = [
      await member(b.url, '$share/rr/share/rr/+'),
      await member(b.url, '$share/rr/share/rr/+'),
      await member(b.url, '$share/rr/share/rr/+'),
    ];
    const sent = await publishAll(b.url, 'share/rr/t', 30);
    await until(() => total(members) >= 30, '30 messages over the group');
    for (const m of members) await flush(m);
    const all = members.flatMap(payloadsOf);
    assert.equal(all.length, 30, 'no message went to two members');
    assert.deepEqual(sorted(all), sent);
    for (const m of members) {
      assert.ok(m.messages.length > 0, 'every member gets some');
      assert.deepEqual(payloadsOf(m), sorted(payloadsOf(m)), 'a member sees its share in publish order');
      assert.ok(m.messages.every((r) => r.topic === 'share/rr/t' && r.packet.qos === 1));
    }
  });

  test('4.8.2: two groups on the same filter each get every message', async () => {
    const g1 = [await member(b.url, '$share/one/share/two/#'), await member(b.url, '$share/one/share/two/#')];
    const g2 = [await member(b.url, '$share/two/share/two/#'), await member(b.url, '$share/two/share/two/#')];
    const sent = await publishAll(b.url, 'share/two/t', 10);
    await until(() => total(g1) >= 10 && total(g2) >= 10, 'every message in both groups');
    for (const m of [...g1, ...g2]) await flush(m);
    assert.deepEqual(sorted(g1.flatMap(payloadsOf)), sent);
    assert.deepEqual(sorted(g2.flatMap(payloadsOf)), sent);
  });

  test('4.8.2: a non-shared subscription beside a group gets every message, the group each one once', async () => {
    const plain = await member(b.url, 'share/mix/t');
    const group = [
      await member(b.url, '$share/mix/share/mix/t'),
      await member(b.url, '$share/mix/share/mix/t'),
    ];
    const sent = await publishAll(b.url, 'share/mix/t', 10);
    await until(() => plain.messages.length >= 10 && total(group) >= 10, 'every message');
    for (const m of [plain, ...group]) await flush(m);
    assert.deepEqual(payloadsOf(plain), sent);
    assert.deepEqual(sorted(group.flatMap(payloadsOf)), sent);
  });

  test('MQTT-4.8.2-3: each member gets the QoS it was granted', async () => {
    const low = await member(b.url, '$share/qos/share/qos/t', 0);
    const high = await member(b.url, '$share/qos/share/qos/t', 1);
    await publishAll(b.url, 'share/qos/t', 6, 1);
    await until(() => low.messages.length + high.messages.length >= 6, 'six messages');
    assert.ok(low.messages.length > 0 && high.messages.length > 0);
    assert.ok(low.messages.every((m) => m.packet.qos === 0));
    assert.ok(high.messages.every((m) => m.packet.qos === 1));
  });

  test('4.8.2: a member whose clean session ends holding unacknowledged QoS 1 messages: they go to another member, none lost', async () => {
    const steady = await member(b.url, '$share/redo/share/redo/t');
    const quitter = await rawConnect(b.port);
    quitter.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: '$share/redo/share/redo/t', qos: 1 }],
    });
    await quitter.next('suback');
    const sent = await publishAll(b.url, 'share/redo/t', 10);
    const held = (): PublishPacket[] =>
      quitter.packets.filter((p): p is PublishPacket => p.type === 'publish');
    await until(() => steady.messages.length + held().length >= 10, 'the messages to reach both members');
    assert.ok(held().length > 0, 'the quitter holds some messages unacknowledged');
    quitter.end();
    await until(() => steady.messages.length >= 10, "the quitter's messages to reach the other member");
    await flush(steady);
    assert.deepEqual(sorted(payloadsOf(steady)), sent);
  });

  test('MQTT-4.8.2-6: a message a member refused with PUBACK 0x80 is not sent to another member when it leaves', async () => {
    const steady = await member(b.url, '$share/nack/share/nack/t');
    const quitter = await rawConnect(b.port);
    quitter.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: '$share/nack/share/nack/t', qos: 1 }],
    });
    await quitter.next('suback');
    const sent = await publishAll(b.url, 'share/nack/t', 10);
    const held = (): PublishPacket[] =>
      quitter.packets.filter((p): p is PublishPacket => p.type === 'publish');
    await until(() => steady.messages.length + held().length >= 10, 'the messages to reach both members');
    const refused = held()[0]!;
    quitter.send({ type: 'puback', packetId: refused.packetId!, reasonCode: 0x80 });
    quitter.send({ type: 'pingreq' });
    await quitter.next('pingresp');
    quitter.end();
    await until(() => steady.messages.length >= 9, 'the messages the quitter did not refuse');
    await flush(steady);
    assert.deepEqual(
      sorted(payloadsOf(steady)),
      sent.filter((p) => p !== refused.payload.toString()),
    );
  });

  test('MQTT-4.8.2-5: a QoS 2 message in flight to a member whose session ends is not sent to another member', async () => {
    const steady = await member(b.url, '$share/q2/share/q2/t', 2);
    const quitter = await rawConnect(b.port);
    quitter.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: '$share/q2/share/q2/t', qos: 2 }],
    });
    await quitter.next('suback');
    await publishAll(b.url, 'share/q2/t', 4, 2);
    const held = (): PublishPacket[] =>
      quitter.packets.filter((p): p is PublishPacket => p.type === 'publish');
    await until(() => steady.messages.length + held().length >= 4, 'the messages to reach both members');
    const inFlight = held().map((p) => p.payload.toString());
    assert.ok(inFlight.length > 0, 'the quitter holds some messages without PUBREC');
    const steadyBefore = payloadsOf(steady);
    quitter.end();
    const members = (): number =>
      [...b.broker.broker.sessions.values()].filter((s) => s.subscriptions.has('$share/q2/share/q2/t'))
        .length;
    await until(() => members() === 1, "the quitter's session to end");
    // A later message on the same path: what the ended session held must not come before it.
    const pub = await open(b.url);
    await pub.client.publishAsync('share/q2/t', 'marker', { qos: 2 });
    await until(() => payloadsOf(steady).includes('marker'), 'the marker');
    assert.deepEqual(payloadsOf(steady), [...steadyBefore, 'marker']);
  });

  test('4.8.2: a 3.1.1 client can be a member too', async () => {
    const members = [
      await member(b.url, '$share/v4/share/v4/t', 1, { protocolVersion: 4 }),
      await member(b.url, '$share/v4/share/v4/t', 1, { protocolVersion: 4 }),
      await member(b.url, '$share/v4/share/v4/t', 1),
    ];
    const sent = await publishAll(b.url, 'share/v4/t', 9);
    await until(() => total(members) >= 9, 'nine messages');
    for (const m of members) await flush(m);
    assert.deepEqual(sorted(members.flatMap(payloadsOf)), sent);
    assert.ok(members.every((m) => m.messages.length > 0));
  });

  test('4.8.2: no retained message is sent on a shared subscription', async () => {
    const pub = await open(b.url);
    await pub.client.publishAsync('share/retained/t', 'retained', { qos: 1, retain: true });
    // A plain subscriber does get it: the retained message is there to be had.
    const plain = await member(b.url, 'share/retained/t');
    await until(() => plain.messages.length >= 1, 'the retained message on a plain subscription');
    assert.equal(plain.messages[0]!.packet.retain, true);
    const shared = await member(b.url, '$share/ret/share/retained/t');
    await pub.client.publishAsync('share/retained/t', 'marker', { qos: 1 });
    await until(() => shared.messages.length >= 1, 'the marker');
    assert.deepEqual(payloadsOf(shared), ['marker']);
    await pub.client.publishAsync('share/retained/t', '', { qos: 1, retain: true });
  });

  test('MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error (DISCONNECT 0x82)', async () => {
    const raw = await rawConnect(b.port);
    raw.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: '$share/nl/share/nl/t', qos: 1, noLocal: true }],
    });
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    await raw.closedByBroker();
    assert.equal(
      raw.packets.some((p) => p.type === 'suback'),
      false,
    );
  });
});
