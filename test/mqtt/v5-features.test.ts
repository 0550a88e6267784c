import assert from 'node:assert/strict';
import { type EventEmitter, once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { IDisconnectPacket, IPubackPacket } from 'mqtt-packet';
import type { StoredDelivery } from '../../src/broker/store.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  encode,
  type Packet,
  type PublishPacket,
} from '../../src/codec/mqtt/index.js';
import { type DropReason, MemoryStore, type Message } from '../../src/index.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { clientsClosedAfterEach, openPeer, type Peer } from '../helpers/mqtt-client.js';
import { publishPacket, RawClient } from '../helpers/raw-client.js';

/**
 * MQTT 5 features end to end, through real sockets: MQTT.js where it can say what is
 * meant, RawClient where the exact packet matters or the client must misbehave.
 */

const { clients, raws } = clientsClosedAfterEach();

/** An MQTT.js client (5.0 unless told) that records its messages, and its errors once connected. */
async function open(url: string, options: IClientOptions = {}): Promise<Peer & { errors: Error[] }> {
  const peer = await openPeer(clients, url, options);
  const errors: Error[] = [];
  peer.client.on('error', (error) => errors.push(error));
  return { ...peer, errors };
}

/** MQTT.js's typed emitter, for `events.once`. */
function emitter(client: MqttClient): EventEmitter {
  return client as unknown as EventEmitter;
}

/** A RawClient through CONNECT/CONNACK (5.0 unless told), keeping the CONNACK. */
async function rawConnect(
  port: number,
  connect: Partial<ConnectPacket> = {},
): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const raw = await RawClient.open(port, connect.protocolVersion ?? 5);
  raws.push(raw);
  const connack = await raw.handshake(connect);
  assert.equal(connack.reasonCode, 0, `CONNACK refused: ${JSON.stringify(connack)}`);
  return { raw, connack };
}

async function rawSubscribe(raw: RawClient, topicFilter: string, qos: 0 | 1 | 2 = 1): Promise<void> {
  raw.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter, qos }] });
  const suback = await raw.next('suback');
  assert.deepEqual(suback.reasonCodes, [qos]);
}

/** A PINGREQ's PINGRESP: everything the broker wrote to this connection before it has arrived. */
async function roundTrip(raw: RawClient): Promise<void> {
  raw.send({ type: 'pingreq' });
  await raw.next('pingresp');
}

function publishes(raw: RawClient): PublishPacket[] {
  return raw.packets.filter((p): p is PublishPacket => p.type === 'publish');
}

function ids(value: number | number[] | undefined): number[] {
  return value === undefined ? [] : [value].flat().sort((a, b) => a - b);
}

let b: TestBroker;
before(async () => {
  b = await startBroker({
    hooks: { authorizePublish: (_client, message) => !message.topic.startsWith('denied/') },
  });
});
after(() => b.close());

describe('Message Expiry Interval', () => {
  test('MQTT-3.3.2-5, MQTT-3.3.2-6: a message queued for an offline session is dropped once expired; one delivered late carries the remaining interval', async () => {
    const dropped: [string, DropReason][] = [];
    const onDropped = (message: Message, clientId: string, reason: DropReason): void => {
      if (clientId === 'expiry-sub') dropped.push([message.payload.toString(), reason]);
    };
    b.broker.on('dropped', onDropped);
    try {
      const session = { clientId: 'expiry-sub', properties: { sessionExpiryInterval: 60 } };
      const sub = await open(b.url, { ...session, clean: true });
      await sub.client.subscribeAsync('expiry/t', { qos: 1 });
      await sub.client.endAsync();

      const pub = await open(b.url);
      await pub.client.publishAsync('expiry/t', 'short-lived', {
        qos: 1,
        properties: { messageExpiryInterval: 1 },
      });
      const acceptedAt = Date.now();
      await pub.client.publishAsync('expiry/t', 'long-lived', {
        qos: 1,
        properties: { messageExpiryInterval: 60 },
      });
      // Time is the point here: let the first message's one second run out while it waits.
      await until(() => Date.now() > acceptedAt + 1050, 'the short-lived message to expire');

      const again = await open(b.url, { ...session, clean: false });
      assert.equal(again.connack.sessionPresent, true);
      await until(() => again.messages.length >= 1, 'the queued message');
      assert.deepEqual(
        again.messages.map((m) => m.payload),
        ['long-lived'],
      );
      const remaining = again.messages[0]!.packet.properties?.messageExpiryInterval;
      assert.ok(
        remaining !== undefined && remaining > 0 && remaining < 60,
        `remaining interval ${remaining} should be below 60`,
      );
      assert.deepEqual(dropped, [['short-lived', 'expired']]);
    } finally {
      b.broker.off('dropped', onDropped);
    }
  });

  test('MQTT-3.3.2-6: a message forwarded at once carries its interval; one without an interval carries none', async () => {
    const sub = await open(b.url);
    await sub.client.subscribeAsync('expiry/online', { qos: 1 });
    const pub = await open(b.url);
    await pub.client.publishAsync('expiry/online', 'with', {
      qos: 1,
      properties: { messageExpiryInterval: 30 },
    });
    await pub.client.publishAsync('expiry/online', 'without', { qos: 1 });
    await until(() => sub.messages.length >= 2, 'both messages');
    const [withInterval, without] = sub.messages;
    const interval = withInterval!.packet.properties?.messageExpiryInterval;
    assert.ok(interval !== undefined && interval <= 30 && interval >= 29, `interval ${interval}`);
    assert.equal(without!.packet.properties?.messageExpiryInterval, undefined);
  });
});

describe('Receive Maximum', () => {
  test('MQTT-3.3.4-9: a client with Receive Maximum 2 that does not acknowledge never has more than 2 QoS 1 PUBLISHes outstanding, and gets the rest as it acknowledges', async () => {
    const { raw } = await rawConnect(b.port, { properties: { receiveMaximum: 2 } });
    await rawSubscribe(raw, 'rm/t', 1);
    const pub = await open(b.url);
    for (let i = 0; i < 6; i++) await pub.client.publishAsync('rm/t', `m${i}`, { qos: 1 });

    // Every publish was routed before its PUBACK; the PINGRESP comes after whatever was sent.
    await roundTrip(raw);
    let received = publishes(raw);
    assert.equal(received.length, 2, 'only Receive Maximum PUBLISHes before any PUBACK');
    let acked = 0;
    let maxOutstanding = received.length;
    while (acked < 6) {
      raw.send({ type: 'puback', packetId: received[acked]!.packetId! });
      acked++;
      if (acked <= 4) await until(() => publishes(raw).length >= acked + 2, `PUBLISH ${acked + 2}`);
      await roundTrip(raw);
      received = publishes(raw);
      maxOutstanding = Math.max(maxOutstanding, received.length - acked);
    }
    assert.equal(maxOutstanding, 2);
    assert.deepEqual(
      received.map((p) => p.payload.toString()),
      ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'],
    );
    assert.ok(received.every((p) => p.qos === 1 && !p.dup));
  });

  test('3.3.4 (MQTT-3.3.4-7 broken): a client exceeding the server Receive Maximum while acks are held gets DISCONNECT 0x93', async () => {
    // PUBACKs wait for the store to make a persistent subscriber's copy durable; a gate
    // holds those writes so the publishes stay unacknowledged. (An async authorizePublish
    // hook cannot provoke this: the connection handles one packet at a time and pauses the
    // socket while the hook runs, so its publishes are acknowledged one by one.)
    const store = new GatedStore();
    const gated = await startBroker({ store, mqtt: { receiveMaximum: 3 } });
    try {
      const sub = await open(gated.url, { clientId: 'rmx-sub', properties: { sessionExpiryInterval: 60 } });
      await sub.client.subscribeAsync('rmx/t', { qos: 1 });
      const { raw, connack } = await rawConnect(gated.port);
      assert.equal(connack.properties?.receiveMaximum, 3);
      store.hold();
      const publish = (packetId: number): Packet =>
        publishPacket('rmx/t', { payload: Buffer.from(`p${packetId}`), qos: 1, packetId });
      for (let id = 1; id <= 3; id++) raw.send(publish(id));
      await roundTrip(raw);
      assert.deepEqual(
        raw.packets.map((p) => p.type),
        [],
        'three unacknowledged publishes are within the Receive Maximum',
      );
      raw.send(publish(4));
      const disconnect = await raw.next('disconnect');
      assert.equal(disconnect.reasonCode, 0x93);
      await raw.closedByBroker();
      store.release();
      await until(() => sub.messages.length >= 3, 'the three accepted messages');
      assert.deepEqual(
        sub.messages.map((m) => m.payload),
        ['p1', 'p2', 'p3'],
      );
    } finally {
      store.release();
      for (const client of clients.splice(0)) client.end(true);
      await gated.close();
    }
  });
});

describe('Maximum Packet Size', () => {
  test('MQTT-3.1.2-24, MQTT-3.1.2-25: a message larger than the client Maximum Packet Size is not sent to it; a later small one is', async () => {
    const dropped: DropReason[] = [];
    const onDropped = (_m: Message, clientId: string, reason: DropReason): void => {
      if (clientId === 'mps-sub') dropped.push(reason);
    };
    b.broker.on('dropped', onDropped);
    try {
      const sub = await open(b.url, { clientId: 'mps-sub', properties: { maximumPacketSize: 200 } });
      await sub.client.subscribeAsync('mps/t', { qos: 1 });
      const pub = await open(b.url);
      await pub.client.publishAsync('mps/t', 'x'.repeat(500), { qos: 1 });
      await pub.client.publishAsync('mps/t', 'small', { qos: 1 });
      await until(() => sub.messages.length >= 1, 'the small message');
      assert.deepEqual(
        sub.messages.map((m) => m.payload),
        ['small'],
      );
      assert.deepEqual(dropped, ['packet-too-large']);
      assert.deepEqual(sub.errors, []);
    } finally {
      b.broker.off('dropped', onDropped);
    }
  });

  describe('a packet above the server Maximum Packet Size', () => {
    let small: TestBroker;
    before(async () => {
      small = await startBroker({ mqtt: { maxPacketSize: 512 } });
    });
    after(() => small.close());

    const publishOfSize = (size: number, qos: 0 | 1): PublishPacket => {
      const packet: PublishPacket = {
        type: 'publish',
        topic: 'big/t',
        payload: Buffer.alloc(0),
        qos,
        retain: false,
        dup: false,
      };
      if (qos > 0) packet.packetId = 1;
      // Grow the payload until the whole packet, header included, is exactly `size` bytes.
      packet.payload = Buffer.alloc(size, 0x61);
      for (let excess = encodedSize(packet, 5) - size; excess !== 0; excess = encodedSize(packet, 5) - size) {
        packet.payload = Buffer.alloc(packet.payload.length - excess, 0x61);
      }
      assert.equal(encodedSize(packet, 5), size);
      return packet;
    };

    test('3.2.2.3.6: CONNACK advertises it and a packet of exactly that size is accepted', async () => {
      const { raw, connack } = await rawConnect(small.port);
      assert.equal(connack.properties?.maximumPacketSize, 512);
      raw.send(publishOfSize(512, 1));
      const puback = await raw.next('puback');
      assert.equal(puback.packetId, 1);
    });

    test('MQTT-3.2.2-15 broken: one byte more gets DISCONNECT 0x95 and the connection is closed', async () => {
      const { raw } = await rawConnect(small.port);
      raw.send(publishOfSize(513, 0));
      const disconnect = await raw.next('disconnect');
      assert.equal(disconnect.reasonCode, 0x95);
      await raw.closedByBroker();
    });

    test('a 3.1.1 client sending a packet above it is disconnected', async () => {
      const { raw } = await rawConnect(small.port, { protocolVersion: 4 });
      raw.sendBytes(Buffer.concat([Buffer.from([0x30, 0xe8, 0x07, 0x00, 0x01, 0x74]), Buffer.alloc(997)]));
      await raw.closedByBroker();
      assert.deepEqual(raw.packets, []);
    });
  });
});

describe('Topic Alias', () => {
  test('MQTT-3.3.2-12: a client sets a Topic Alias, then uses it with an empty topic name; both deliver to the topic', async () => {
    const sub = await open(b.url);
    await sub.client.subscribeAsync('alias/#', { qos: 1 });
    const pub = await open(b.url);
    assert.equal(pub.connack.properties?.topicAliasMaximum, 256);
    await pub.client.publishAsync('alias/a', 'set', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync('', 'use', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync('alias/b', 'remap', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync('', 'use again', { qos: 1, properties: { topicAlias: 1 } });
    await pub.client.publishAsync('alias/c', 'highest', { qos: 1, properties: { topicAlias: 256 } });
    await pub.client.publishAsync('', 'highest again', { qos: 1, properties: { topicAlias: 256 } });
    await until(() => sub.messages.length >= 6, 'six messages');
    assert.deepEqual(
      sub.messages.map((m) => [m.topic, m.payload]),
      [
        ['alias/a', 'set'],
        ['alias/a', 'use'],
        ['alias/b', 'remap'],
        ['alias/b', 'use again'],
        ['alias/c', 'highest'],
        ['alias/c', 'highest again'],
      ],
    );
  });

  test('3.3.4: an alias never set, with an empty topic name, gets DISCONNECT 0x82 with a reason string', async () => {
    const { raw } = await rawConnect(b.port);
    raw.send(publishPacket('', { properties: { topicAlias: 3 } }));
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    assert.equal(typeof disconnect.properties?.reasonString, 'string');
    await raw.closedByBroker();
  });

  test('MQTT-3.3.2-7: an alias set on one connection means nothing on the next', async () => {
    const first = await rawConnect(b.port, { clientId: 'alias-carry' });
    first.raw.send(publishPacket('alias/carry', { qos: 1, packetId: 1, properties: { topicAlias: 2 } }));
    await first.raw.next('puback');
    first.raw.send({ type: 'disconnect' });
    await first.raw.closedByBroker();
    const second = await rawConnect(b.port, { clientId: 'alias-carry' });
    second.raw.send(publishPacket('', { properties: { topicAlias: 2 } }));
    const disconnect = await second.raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    await second.raw.closedByBroker();
  });

  test('MQTT-3.3.2-9 broken: an alias above the server Topic Alias Maximum gets DISCONNECT 0x94', async () => {
    const { raw } = await rawConnect(b.port);
    raw.send(publishPacket('alias/x', { properties: { topicAlias: 257 } }));
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x94);
    await raw.closedByBroker();
  });

  test('MQTT-3.3.2-8: Topic Alias 0 gets DISCONNECT 0x94 (3.3.4)', async () => {
    const { raw } = await rawConnect(b.port);
    // Properties: length 3, Topic Alias (0x23) = 0.
    raw.sendBytes(
      Buffer.from([0x30, 0x0b, 0x00, 0x05, ...Buffer.from('alias'), 0x03, 0x23, 0x00, 0x00, 0x78]),
    );
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x94);
    await raw.closedByBroker();
  });

  test('MQTT-3.3.2-11: towards a client with Topic Alias Maximum 2, the first PUBLISH of a topic carries topic and alias, the next an empty topic and the alias; beyond 2 topics, none', async () => {
    const { raw } = await rawConnect(b.port, { properties: { topicAliasMaximum: 2 } });
    await rawSubscribe(raw, 'alias-out/#', 0);
    const resolved = await open(b.url, { properties: { topicAliasMaximum: 2 } });
    await resolved.client.subscribeAsync('alias-out/#', { qos: 0 });
    const plain = await rawConnect(b.port);
    await rawSubscribe(plain.raw, 'alias-out/#', 0);

    const pub = await open(b.url);
    const topics = ['alias-out/a', 'alias-out/a', 'alias-out/b', 'alias-out/c', 'alias-out/c', 'alias-out/b'];
    for (const topic of topics) await pub.client.publishAsync(topic, topic, { qos: 1 });

    await until(
      () => publishes(raw).length >= 6 && resolved.messages.length >= 6 && publishes(plain.raw).length >= 6,
      'six messages each',
    );
    assert.deepEqual(
      publishes(raw).map((p) => [p.topic, p.properties?.topicAlias, p.payload.toString()]),
      [
        ['alias-out/a', 1, 'alias-out/a'],
        ['', 1, 'alias-out/a'],
        ['alias-out/b', 2, 'alias-out/b'],
        ['alias-out/c', undefined, 'alias-out/c'],
        ['alias-out/c', undefined, 'alias-out/c'],
        ['', 2, 'alias-out/b'],
      ],
    );
    // MQTT-3.3.2-10 from the client's side: MQTT.js resolves the aliases back to topics.
    assert.deepEqual(
      resolved.messages.map((m) => m.topic),
      topics,
    );
    assert.deepEqual(resolved.errors, []);
    // A client that advertised no Topic Alias Maximum never gets an alias.
    assert.deepEqual(
      publishes(plain.raw).map((p) => [p.topic, p.properties?.topicAlias]),
      topics.map((t) => [t, undefined]),
    );
  });
});

describe('Subscription Identifiers', () => {
  test('MQTT-3.3.4-3, MQTT-3.3.4-4: a message carries the identifiers of every subscription it matched, and none for a subscription without one', async () => {
    const sub = await open(b.url);
    await sub.client.subscribeAsync('sid/#', { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await sub.client.subscribeAsync('sid/a', { qos: 0, properties: { subscriptionIdentifier: 300_000 } });
    await sub.client.subscribeAsync('sidn/#', { qos: 1 });
    const pub = await open(b.url);
    await pub.client.publishAsync('sid/a', 'both', { qos: 1 });
    await pub.client.publishAsync('sid/b', 'one', { qos: 1 });
    await pub.client.publishAsync('sidn/x', 'none', { qos: 1 });
    await until(() => sub.messages.length >= 3, 'three messages');
    assert.deepEqual(
      sub.messages.map((m) => [m.payload, ids(m.packet.properties?.subscriptionIdentifier)]),
      [
        ['both', [7, 300_000]],
        ['one', [7]],
        ['none', []],
      ],
    );
    // One copy at the highest QoS of the overlapping subscriptions (MQTT-3.3.4-2).
    assert.equal(sub.messages[0]!.packet.qos, 1);
  });
});

describe('No Local', () => {
  test("MQTT-3.8.3-3: with No Local a client does not get its own messages, but gets others'", async () => {
    const self = await open(b.url);
    await self.client.subscribeAsync('nl/t', { qos: 1, nl: true });
    const other = await open(b.url);
    await other.client.subscribeAsync('nl/t', { qos: 1 });
    await self.client.publishAsync('nl/t', 'own', { qos: 1 });
    await other.client.publishAsync('nl/t', 'other', { qos: 1 });
    await until(() => self.messages.length >= 1 && other.messages.length >= 2, 'the messages');
    assert.deepEqual(
      self.messages.map((m) => m.payload),
      ['other'],
    );
    assert.deepEqual(
      other.messages.map((m) => m.payload),
      ['own', 'other'],
    );
  });
});

describe('Request / Response', () => {
  test('MQTT-3.3.2-15, MQTT-3.3.2-16: Response Topic and Correlation Data reach the responder unaltered, and the response reaches the requester', async () => {
    const responder = await open(b.url);
    await responder.client.subscribeAsync('rr/request', { qos: 1 });
    responder.client.on('message', (_topic, payload, packet) => {
      const { responseTopic, correlationData } = packet.properties ?? {};
      if (responseTopic === undefined) return;
      responder.client.publish(responseTopic, `re: ${payload}`, { qos: 1, properties: { correlationData } });
    });
    const requester = await open(b.url, { clientId: 'rr-requester' });
    await requester.client.subscribeAsync('rr/response/rr-requester', { qos: 1 });
    const correlation = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x00]);
    await requester.client.publishAsync('rr/request', 'question', {
      qos: 1,
      properties: { responseTopic: 'rr/response/rr-requester', correlationData: correlation },
    });
    await until(() => requester.messages.length >= 1, 'the response');
    const request = responder.messages[0]!.packet.properties;
    assert.equal(request?.responseTopic, 'rr/response/rr-requester');
    assert.deepEqual(Buffer.from(request!.correlationData!), correlation);
    const response = requester.messages[0]!;
    assert.equal(response.payload, 're: question');
    assert.deepEqual(Buffer.from(response.packet.properties!.correlationData!), correlation);
  });

  test('3.2.2.3.15, MQTT-3.1.2-28: Response Information is returned only when requested', async () => {
    const asked = await open(b.url, {
      clientId: 'ri-client',
      properties: { requestResponseInformation: true },
    });
    assert.equal(asked.connack.properties?.responseInformation, 'response/ri-client');
    const notAsked = await open(b.url, { clientId: 'ri-other' });
    assert.equal(notAsked.connack.properties?.responseInformation, undefined);
  });
});

describe('Properties passed through', () => {
  test('MQTT-3.3.2-17, MQTT-3.3.2-18: User Properties arrive unaltered, in order, repeats kept', async () => {
    const { raw: sub } = await rawConnect(b.port);
    await rawSubscribe(sub, 'up/t', 1);
    const { raw: pub } = await rawConnect(b.port);
    const userProperties: [string, string][] = [
      ['b', '1'],
      ['a', '2'],
      ['b', '3'],
      ['b', '1'],
      ['', ''],
      ['ключ', 'значение ✓'],
    ];
    pub.send(publishPacket('up/t', { qos: 1, packetId: 5, properties: { userProperties } }));
    await pub.next('puback');
    const message = await sub.next('publish');
    assert.deepEqual(message.properties?.userProperties, userProperties);
  });

  test('MQTT-3.3.2-4, MQTT-3.3.2-20: Payload Format Indicator, Content Type and User Properties from MQTT.js arrive untouched', async () => {
    const sub = await open(b.url);
    await sub.client.subscribeAsync('pf/t', { qos: 1 });
    const pub = await open(b.url);
    await pub.client.publishAsync('pf/t', 'text', {
      qos: 1,
      properties: {
        payloadFormatIndicator: true,
        contentType: 'text/plain; charset=utf-8',
        userProperties: { z: ['1', '2'], a: 'x' },
      },
    });
    await pub.client.publishAsync('pf/t', Buffer.from([0xff, 0x00]), {
      qos: 1,
      properties: { payloadFormatIndicator: false, contentType: 'application/octet-stream' },
    });
    await until(() => sub.messages.length >= 2, 'both messages');
    const [text, binary] = sub.messages.map((m) => m.packet.properties);
    assert.equal(text?.payloadFormatIndicator, true);
    assert.equal(text?.contentType, 'text/plain; charset=utf-8');
    assert.deepEqual({ ...text?.userProperties }, { z: ['1', '2'], a: 'x' });
    assert.equal(binary?.payloadFormatIndicator, false);
    assert.equal(binary?.contentType, 'application/octet-stream');
  });
});

describe('Reason Strings and problem information', () => {
  test('4.13: a protocol error is answered with a DISCONNECT that carries a reason string', async () => {
    const { raw } = await rawConnect(b.port);
    raw.send({ type: 'connect', protocolVersion: 5, clean: true, keepAlive: 60, clientId: 'again' });
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    assert.ok((disconnect.properties?.reasonString ?? '').length > 0, 'a non-empty reason string');
    await raw.closedByBroker();
  });

  test('a PUBACK refusing a publish (0x87) explains itself by default', async () => {
    const { raw } = await rawConnect(b.port);
    raw.send(publishPacket('denied/t', { qos: 1, packetId: 3 }));
    const puback = await raw.next('puback');
    assert.equal(puback.reasonCode, 0x87);
    assert.ok((puback.properties?.reasonString ?? '').length > 0, 'a reason string on the PUBACK');
  });

  test('MQTT-3.1.2-29: with Request Problem Information 0, acks carry no Reason String or User Properties', async () => {
    const { raw } = await rawConnect(b.port, { properties: { requestProblemInformation: false } });
    raw.send(publishPacket('denied/t', { qos: 1, packetId: 3 }));
    raw.send(publishPacket('denied/t', { qos: 2, packetId: 4 }));
    const puback = await raw.next('puback');
    const pubrec = await raw.next('pubrec');
    assert.equal(puback.reasonCode, 0x87);
    assert.equal(pubrec.reasonCode, 0x87);
    for (const ack of [puback, pubrec]) {
      assert.equal(ack.properties?.reasonString, undefined);
      assert.equal(ack.properties?.userProperties, undefined);
    }

    // The same through MQTT.js: the publish is refused, and the PUBACK is bare.
    const client = await open(b.url, { properties: { requestProblemInformation: false } });
    const acks: IPubackPacket[] = [];
    client.client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback') acks.push(packet);
    });
    await assert.rejects(
      client.client.publishAsync('denied/t', 'x', { qos: 1 }),
      (error: { code?: number }) => error.code === 0x87,
    );
    assert.equal(acks.length, 1);
    assert.equal(acks[0]!.properties?.reasonString, undefined);
    assert.equal(acks[0]!.properties?.userProperties, undefined);
  });
});

describe('Server-initiated DISCONNECT', () => {
  test('3.14.2.1: closing the broker sends DISCONNECT 0x8B (Server shutting down) to 5.0 clients and closes 3.1.1 ones', async () => {
    const own = await startBroker();
    try {
      const v5 = await open(own.url);
      const v4 = await open(own.url, { protocolVersion: 4 });
      const disconnected = once(emitter(v5.client), 'disconnect') as Promise<[IDisconnectPacket]>;
      const v5Closed = once(emitter(v5.client), 'close');
      const v4Closed = once(emitter(v4.client), 'close');
      await own.close();
      const [packet] = await disconnected;
      assert.equal(packet.reasonCode, 0x8b);
      await v5Closed;
      await v4Closed;
    } finally {
      await own.close();
    }
  });

  test('MQTT-3.1.4-3: a second connection with the same client id takes over; the first gets DISCONNECT 0x8E', async () => {
    const first = await open(b.url, { clientId: 'takeover-me' });
    const disconnected = once(emitter(first.client), 'disconnect') as Promise<[IDisconnectPacket]>;
    const closed = once(emitter(first.client), 'close');
    const second = await open(b.url, { clientId: 'takeover-me' });
    const [packet] = await disconnected;
    assert.equal(packet.reasonCode, 0x8e);
    await closed;
    // The new connection holds the session and works.
    await second.client.subscribeAsync('takeover/t', { qos: 1 });
    await second.client.publishAsync('takeover/t', 'still here', { qos: 1 });
    await until(() => second.messages.length >= 1, 'the message');
    assert.equal(second.messages[0]!.payload, 'still here');
  });
});

describe('CONNACK', () => {
  test('3.2.2.3: CONNACK advertises the server capabilities that differ from the defaults', async () => {
    const limited = await startBroker({
      maximumQoS: 1,
      retainAvailable: false,
      mqtt: { receiveMaximum: 10, maxPacketSize: 4096, topicAliasMaximum: 5, serverKeepAlive: 30 },
    });
    try {
      const { connack } = await open(limited.url, { keepalive: 60 });
      const props = connack.properties ?? {};
      assert.equal(props.receiveMaximum, 10);
      assert.equal(props.maximumQoS, 1);
      assert.equal(props.retainAvailable, false);
      assert.equal(props.maximumPacketSize, 4096);
      assert.equal(props.topicAliasMaximum, 5);
      assert.equal(props.serverKeepAlive, 30);
    } finally {
      for (const client of clients.splice(0)) client.end(true);
      await limited.close();
    }
  });

  test('3.2.2.3: a default broker advertises its limits and leaves out what is at the protocol default', async () => {
    const { connack } = await open(b.url, { keepalive: 60 });
    const props = connack.properties ?? {};
    assert.equal(props.receiveMaximum, 1024);
    assert.equal(props.maximumPacketSize, 1024 * 1024);
    assert.equal(props.topicAliasMaximum, 256);
    assert.equal(props.maximumQoS, undefined);
    assert.equal(props.retainAvailable, undefined);
    assert.equal(props.serverKeepAlive, undefined);
  });

  test('MQTT-3.2.2-16: an empty client id gets an Assigned Client Identifier', async () => {
    const { raw, connack } = await rawConnect(b.port, { clientId: '' });
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.ok(assigned !== undefined && assigned.length > 0);
    raw.send({ type: 'disconnect' });
  });
});

describe('PUBACK reason codes', () => {
  test('3.4.2.1: PUBACK and PUBREC say 0x10 (No matching subscribers) when nobody matched, 0 when someone did', async () => {
    const pub = await open(b.url);
    const acks: [string, number | undefined][] = [];
    pub.client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback' || packet.cmd === 'pubrec') acks.push([packet.cmd, packet.reasonCode]);
    });
    await pub.client.publishAsync('nomatch/t', 'x', { qos: 1 });
    await pub.client.publishAsync('nomatch/t', 'x', { qos: 2 });
    const sub = await open(b.url);
    await sub.client.subscribeAsync('nomatch/t', { qos: 1 });
    await pub.client.publishAsync('nomatch/t', 'x', { qos: 1 });
    assert.deepEqual(acks, [
      ['puback', 0x10],
      ['pubrec', 0x10],
      ['puback', 0],
    ]);
  });
});

/** A memory store whose delivery writes can be held, so the broker holds the PUBACKs behind them. */
class GatedStore extends MemoryStore {
  private gate: Promise<void> | undefined;
  private open_: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open_ = resolve;
    });
  }

  release(): void {
    this.open_?.();
    this.gate = undefined;
  }

  override async enqueue(clientId: string, deliveries: readonly StoredDelivery[]): Promise<void> {
    await super.enqueue(clientId, deliveries);
    await this.gate;
  }
}

function encodedSize(packet: Packet, version: 4 | 5): number {
  return encode(packet, version).length;
}
