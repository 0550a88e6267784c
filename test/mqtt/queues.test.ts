import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions } from 'mqtt';
import type { PublishPacket } from '../../src/codec/mqtt/index.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { clientsClosedAfterEach, detached, id, openPeer, type Peer } from '../helpers/mqtt-client.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * Point-to-point queues over MQTT, end to end with MQTT.js and raw clients: PUBLISH to
 * `$queue/<name>` enqueues, SUBSCRIBE to it consumes (one consumer per message), PUBACK
 * acknowledges, and what a consumer held unacknowledged goes to another when it leaves.
 */

const { clients, raws } = clientsClosedAfterEach();
const open = (url: string, options: IClientOptions = {}): Promise<Peer> => openPeer(clients, url, options);

async function consumer(url: string, queue: string, qos: 0 | 1 | 2 = 1, options: IClientOptions = {}) {
  const peer = await open(url, options);
  const granted = await peer.client.subscribeAsync(`$queue/${queue}`, { qos });
  return { peer, granted: granted[0]!.qos };
}

/** A raw 5.0 consumer that acknowledges nothing unless told. */
async function rawConsumer(port: number, queue: string, qos: 0 | 1 = 1): Promise<RawClient> {
  const raw = await RawClient.connect(port, { protocolVersion: 5, clientId: id('rawq') });
  raws.push(raw);
  raw.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: `$queue/${queue}`, qos }] });
  const suback = await raw.next('suback');
  assert.deepEqual(suback.reasonCodes, [qos]);
  return raw;
}

const held = (raw: RawClient): PublishPacket[] =>
  raw.packets.filter((p): p is PublishPacket => p.type === 'publish');

async function publishAll(url: string, queue: string, payloads: string[], qos: 0 | 1 = 1): Promise<void> {
  const pub = await open(url);
  for (const payload of payloads) await pub.client.publishAsync(`$queue/${queue}`, payload, { qos });
}

const payloads = (peer: Peer): string[] => peer.messages.map((m) => m.payload);

let b: TestBroker;
before(async () => {
  b = await startBroker({ queues: { defaultPrefetch: 5, maxMessages: 50 } });
});
after(() => b.close());

describe('MQTT: $queue/<name>', () => {
  test('two consumers get distinct messages, together all of them; topic subscribers none', async () => {
    const a = await consumer(b.url, 'jobs');
    const c = await consumer(b.url, 'jobs');
    const watcher = await open(b.url);
    await watcher.client.subscribeAsync(['#', '+/jobs'], { qos: 1 });
    assert.equal(a.granted, 1);
    const sent = Array.from({ length: 12 }, (_, i) => `job${String(i).padStart(2, '0')}`);
    const pub = await open(b.url);
    for (const payload of sent)
      await pub.client.publishAsync('$queue/jobs', payload, { qos: 1, retain: true });
    await until(() => a.peer.messages.length + c.peer.messages.length >= 12, 'every job delivered');
    await until(() => b.broker.broker.queues.get('jobs')?.unacknowledged === 0, 'every job acknowledged');
    const all = [...payloads(a.peer), ...payloads(c.peer)];
    assert.deepEqual(all.sort(), sent, 'each message to exactly one consumer');
    assert.ok(a.peer.messages.length > 0 && c.peer.messages.length > 0, 'both consumers get some');
    assert.ok(a.peer.messages.every((m) => m.topic === '$queue/jobs' && m.packet.qos === 1));
    assert.deepEqual(b.broker.broker.queues.get('jobs'), {
      name: 'jobs',
      depth: 0,
      consumers: 2,
      unacknowledged: 0,
    });
    await watcher.client.publishAsync('marker', 'm', { qos: 1 });
    await until(() => watcher.messages.some((m) => m.topic === 'marker'), 'the marker');
    assert.deepEqual(
      watcher.messages.map((m) => m.topic),
      ['marker'],
      'queue messages are not routed to topics',
    );
    assert.equal(b.broker.broker.retainedCount, 0, 'RETAIN is ignored for queues');
  });

  test('a consumer that leaves without PUBACK has its message redelivered to the other', async () => {
    const quitter = await rawConsumer(b.port, 'work');
    const steady = await consumer(b.url, 'work');
    const sent = ['w0', 'w1', 'w2', 'w3'];
    await publishAll(b.url, 'work', sent);
    await until(() => held(quitter).length + steady.peer.messages.length >= 4, 'the work to be handed out');
    const withheld = held(quitter).map((p) => p.payload.toString());
    assert.ok(withheld.length > 0, 'the quitter holds some unacknowledged');
    // The steady consumer's PUBACKs may still be on their way; the quitter's never come.
    await until(
      () => b.broker.broker.queues.get('work')?.unacknowledged === withheld.length,
      "the steady consumer's acknowledgements",
    );
    quitter.end();
    await until(() => steady.peer.messages.length >= 4, "the quitter's work to reach the other consumer");
    assert.deepEqual(payloads(steady.peer).sort(), sent);
    await until(() => b.broker.broker.queues.get('work')?.unacknowledged === 0, 'all acknowledged');
    assert.equal(b.broker.broker.queues.get('work')?.consumers, 1);
  });

  test('QoS 0 consumers are acknowledged as messages go out', async () => {
    const zero = await consumer(b.url, 'light', 0);
    assert.equal(zero.granted, 0);
    await publishAll(b.url, 'light', ['l0', 'l1', 'l2']);
    await until(() => zero.peer.messages.length >= 3, 'three messages');
    assert.deepEqual(payloads(zero.peer), ['l0', 'l1', 'l2']);
    assert.ok(zero.peer.messages.every((m) => m.packet.qos === 0));
    assert.deepEqual(b.broker.broker.queues.get('light'), {
      name: 'light',
      depth: 0,
      consumers: 1,
      unacknowledged: 0,
    });
  });

  test('QoS 2 is granted as 1; prefetch bounds what a consumer holds unacknowledged', async () => {
    const two = await consumer(b.url, 'granted', 2);
    assert.equal(two.granted, 1);
    const raw = await rawConsumer(b.port, 'bounded');
    await publishAll(
      b.url,
      'bounded',
      Array.from({ length: 8 }, (_, i) => `b${i}`),
    );
    await until(() => held(raw).length === 5, 'the prefetch of 5');
    assert.deepEqual(b.broker.broker.queues.get('bounded'), {
      name: 'bounded',
      depth: 3,
      consumers: 1,
      unacknowledged: 5,
    });
    raw.send({ type: 'puback', packetId: held(raw)[0]!.packetId!, reasonCode: 0 });
    await until(() => held(raw).length === 6, 'one more once one is acknowledged');
    assert.equal(held(raw)[5]!.payload.toString(), 'b5');
  });

  test('UNSUBSCRIBE gives back what the consumer holds', async () => {
    const raw = await rawConsumer(b.port, 'giveback');
    await publishAll(b.url, 'giveback', ['g0']);
    await until(() => held(raw).length === 1, 'the message');
    raw.send({ type: 'unsubscribe', packetId: 2, topicFilters: ['$queue/giveback'] });
    assert.deepEqual((await raw.next('unsuback')).reasonCodes, [0]);
    assert.deepEqual(b.broker.broker.queues.get('giveback'), {
      name: 'giveback',
      depth: 1,
      consumers: 0,
      unacknowledged: 0,
    });
    // A late PUBACK for it changes nothing.
    raw.send({ type: 'puback', packetId: held(raw)[0]!.packetId!, reasonCode: 0 });
    raw.send({ type: 'pingreq' });
    await raw.next('pingresp');
    assert.equal(b.broker.broker.queues.get('giveback')?.depth, 1);
  });

  test('a persistent session keeps its $queue/ subscription: consuming resumes on reconnect', async () => {
    const clientId = id('persist');
    const options: IClientOptions = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await consumer(b.url, 'later', 1, options);
    const gone = detached(b, clientId);
    await first.peer.client.endAsync();
    await gone;
    await publishAll(b.url, 'later', ['while away']);
    assert.equal(b.broker.broker.queues.get('later')?.depth, 1, 'waits in the queue, not the session');
    const back = await open(b.url, options);
    assert.equal(back.connack.sessionPresent, true);
    await until(() => back.messages.length >= 1, 'the message on reconnect');
    assert.deepEqual(payloads(back), ['while away']);
    assert.equal(b.broker.broker.sessions.get(clientId)?.queuedCount, 0);
  });

  test('refusals: $queue/ without a name, wildcards, $share/, a full queue', async () => {
    const raw = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('refused') });
    raws.push(raw);
    raw.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [
        { topicFilter: '$queue/+', qos: 1 },
        { topicFilter: '$queue/#', qos: 1 },
        { topicFilter: '$share/g/$queue/jobs', qos: 1 },
        { topicFilter: '$queue/', qos: 1 },
      ],
    });
    assert.deepEqual((await raw.next('suback')).reasonCodes, [0xa2, 0xa2, 0x9e, 0x80]);
    raw.send({
      type: 'publish',
      topic: '$queue/',
      payload: Buffer.from('x'),
      qos: 1,
      packetId: 7,
      retain: false,
      dup: false,
    });
    const nameless = await raw.next('puback');
    assert.deepEqual([nameless.packetId, nameless.reasonCode], [7, 0x90]);
    for (let i = 0; i < 50; i++) {
      raw.send({
        type: 'publish',
        topic: '$queue/full',
        payload: Buffer.from(`f${i}`),
        qos: 1,
        packetId: 10 + i,
        retain: false,
        dup: false,
      });
      assert.equal(
        (await raw.next('puback')).reasonCode ?? 0,
        0,
        'accepted, and no "no matching subscribers"',
      );
    }
    raw.send({
      type: 'publish',
      topic: '$queue/full',
      payload: Buffer.from('over'),
      qos: 1,
      packetId: 99,
      retain: false,
      dup: false,
    });
    assert.equal((await raw.next('puback')).reasonCode, 0x97, 'Quota exceeded');
    assert.equal(b.broker.broker.queues.get('full')?.depth, 50);
  });
});
