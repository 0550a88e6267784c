import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt';
import type { ConnackPacket, ConnectPacket, ProtocolVersion } from '../../src/codec/mqtt/index.js';
import { type TestBroker, until } from '../helpers/broker.js';
import { connackOf, detached, leave, perTest, within } from '../helpers/mqtt-client.js';
import type { RawClient } from '../helpers/raw-client.js';

/**
 * Sessions end to end (MQTT 4.1, 3.1.2.4, 3.1.2.11.2): clean and persistent sessions,
 * what is queued while a client is away and how it is delivered when it returns,
 * resending what was in flight, Session Expiry and the offline queue bound.
 */

// ---- resources: everything opened in a test is closed after it ------------------------

const { broker, mqttClient, raw } = perTest();

interface Received {
  topic: string;
  payload: string;
  qos: number;
}

/**
 * MQTT.js connected, with its CONNACK and everything it receives from the first packet on
 * (a resumed session's messages can arrive together with the CONNACK).
 */
async function client(
  url: string,
  options: IClientOptions,
): Promise<{ client: MqttClient; connack: IConnackPacket; got: Received[]; wire: string[] }> {
  const c = mqttClient(url, options);
  const got: Received[] = [];
  c.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), qos: packet.qos }),
  );
  // PUBLISH payloads in the order they came off the socket (MQTT.js emits a QoS 2 'message' only at PUBREL).
  const wire: string[] = [];
  c.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') wire.push(packet.payload.toString());
  });
  return { client: c, connack: await connackOf(c), got, wire };
}

/** A RawClient that sent CONNECT and was accepted, with its CONNACK. */
async function rawConnect(
  port: number,
  connect: Partial<ConnectPacket> & { protocolVersion?: ProtocolVersion },
): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const r = await raw(port, connect.protocolVersion ?? 4);
  const connack = await r.handshake(connect);
  assert.equal(connack.reasonCode, 0, 'connection accepted');
  return { raw: r, connack };
}

function expired(b: TestBroker, clientId: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (id: string): void => {
      if (id !== clientId) return;
      b.broker.off('sessionExpired', listener);
      resolve();
    };
    b.broker.on('sessionExpired', listener);
  });
}

/** Drops the socket without DISCONNECT, waiting until the broker has noticed. */
async function drop(b: TestBroker, r: RawClient, clientId: string): Promise<void> {
  const gone = detached(b, clientId);
  r.end();
  await within(gone, `the broker to detach ${clientId}`);
}

async function publisher(b: TestBroker): Promise<MqttClient> {
  return (
    await client(b.url, { protocolVersion: 5, clientId: `publisher-${Math.random().toString(36).slice(2)}` })
  ).client;
}

const payloads = (got: Received[]): string[] => got.map((m) => m.payload);

// ---- clean sessions ------------------------------------------------------------------------------

describe('clean sessions', { timeout: 30_000 }, () => {
  test('MQTT-3.1.2-6: a 3.1.1 CONNECT with clean session 1 discards the previous session, subscriptions and queue', async () => {
    const b = await broker();
    const pub = await publisher(b);
    const first = await client(b.url, { protocolVersion: 4, clientId: 'cs', clean: false });
    await first.client.subscribeAsync('clean/t', { qos: 1 });
    await leave(b, first.client);
    await pub.publishAsync('clean/t', 'queued while away', { qos: 1 });

    const again = await client(b.url, { protocolVersion: 4, clientId: 'cs', clean: true });
    assert.equal(again.connack.sessionPresent, false, 'MQTT-3.2.2-1: session present 0');
    await again.client.subscribeAsync('clean/marker', { qos: 1 });
    await pub.publishAsync('clean/t', 'after', { qos: 1 });
    await pub.publishAsync('clean/marker', 'marker', { qos: 1 });
    await until(() => again.got.length > 0, 'the marker');
    assert.deepEqual(
      payloads(again.got),
      ['marker'],
      'neither the queued message nor the old subscription survived',
    );
  });

  test('MQTT-3.1.2-6: a 3.1.1 clean session lasts as long as the connection', async () => {
    const b = await broker();
    const pub = await publisher(b);
    const first = await client(b.url, { protocolVersion: 4, clientId: 'cs2', clean: true });
    await first.client.subscribeAsync('clean2/t', { qos: 1 });
    await leave(b, first.client);
    assert.equal(b.broker.broker.sessions.has('cs2'), false);

    const again = await client(b.url, { protocolVersion: 4, clientId: 'cs2', clean: false });
    assert.equal(again.connack.sessionPresent, false);
    await again.client.subscribeAsync('clean2/marker', { qos: 1 });
    await pub.publishAsync('clean2/t', 'old subscription', { qos: 1 });
    await pub.publishAsync('clean2/marker', 'marker', { qos: 1 });
    await until(() => again.got.length > 0, 'the marker');
    assert.deepEqual(payloads(again.got), ['marker']);
  });

  test('MQTT-3.1.2-4 (5.0): Clean Start 1 discards an existing session', async () => {
    const b = await broker();
    const pub = await publisher(b);
    const opts = { protocolVersion: 5, clientId: 'cs5', properties: { sessionExpiryInterval: 60 } } as const;
    const first = await client(b.url, { ...opts, clean: false });
    await first.client.subscribeAsync('clean5/t', { qos: 1 });
    await leave(b, first.client);
    await pub.publishAsync('clean5/t', 'queued while away', { qos: 1 });

    const again = await client(b.url, { ...opts, clean: true });
    assert.equal(again.connack.sessionPresent, false);
    await again.client.subscribeAsync('clean5/marker', { qos: 1 });
    await pub.publishAsync('clean5/t', 'after', { qos: 1 });
    await pub.publishAsync('clean5/marker', 'marker', { qos: 1 });
    await until(() => again.got.length > 0, 'the marker');
    assert.deepEqual(payloads(again.got), ['marker']);
  });
});

// ---- persistent sessions ---------------------------------------------------------------------

describe('persistent sessions keep subscriptions and queue QoS 1/2 messages while offline', {
  timeout: 30_000,
}, () => {
  const cases: [string, IClientOptions][] = [
    ['MQTT 3.1.1, clean session 0', { protocolVersion: 4, clean: false }],
    [
      'MQTT 5.0, Session Expiry Interval 60',
      { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } },
    ],
  ];
  for (const [name, opts] of cases) {
    test(`MQTT-3.1.2-5 / MQTT-3.2.2-2: ${name}: delivered on reconnect with session present 1`, async () => {
      const b = await broker();
      const id = `persist-${opts.protocolVersion}`;
      const pub = await publisher(b);
      const first = await client(b.url, { ...opts, clientId: id });
      assert.equal(first.connack.sessionPresent, false, 'a new session');
      await first.client.subscribeAsync({ 'persist/q1': { qos: 1 }, 'persist/q2': { qos: 2 } });
      await leave(b, first.client);

      await pub.publishAsync('persist/q1', 'one', { qos: 1 });
      await pub.publishAsync('persist/q2', 'two', { qos: 2 });

      const again = await client(b.url, { ...opts, clientId: id });
      assert.equal(again.connack.sessionPresent, true);
      await until(() => again.got.length >= 2, 'the queued messages');
      assert.deepEqual(again.got, [
        { topic: 'persist/q1', payload: 'one', qos: 1 },
        { topic: 'persist/q2', payload: 'two', qos: 2 },
      ]);
      // The subscriptions are still there without subscribing again.
      await pub.publishAsync('persist/q1', 'live', { qos: 1 });
      await until(() => again.got.length >= 3, 'a live message');
      assert.deepEqual(payloads(again.got), ['one', 'two', 'live']);
    });
  }

  test('messages queued while offline arrive in publish order after reconnect (5.0, Receive Maximum 3)', async () => {
    const b = await broker();
    const pub = await publisher(b);
    const opts = {
      protocolVersion: 5,
      clientId: 'order',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    } as const;
    const first = await client(b.url, opts);
    await first.client.subscribeAsync('order/#', { qos: 2 });
    await leave(b, first.client);

    const sent: string[] = [];
    for (let i = 0; i < 30; i++) {
      const qos = i % 2 === 0 ? 1 : 2;
      sent.push(`m${i}`);
      await pub.publishAsync(`order/${i % 3}`, `m${i}`, { qos });
    }
    const again = await client(b.url, {
      ...opts,
      properties: { sessionExpiryInterval: 60, receiveMaximum: 3 },
    });
    assert.equal(again.connack.sessionPresent, true);
    await until(() => again.got.length >= 30, 'all 30 queued messages');
    assert.deepEqual(again.wire, sent, 'MQTT 4.6: PUBLISH packets are sent in publish order');
    assert.deepEqual(payloads(again.got).sort(), [...sent].sort(), 'each delivered once');
  });

  test('messages queued while offline arrive in publish order after reconnect (3.1.1)', async () => {
    const b = await broker();
    const pub = await publisher(b);
    const opts = { protocolVersion: 4, clientId: 'order4', clean: false } as const;
    const first = await client(b.url, opts);
    await first.client.subscribeAsync('order4/t', { qos: 1 });
    await leave(b, first.client);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      sent.push(`n${i}`);
      await pub.publishAsync('order4/t', `n${i}`, { qos: 1 });
    }
    const again = await client(b.url, opts);
    await until(() => again.got.length >= 20, 'all 20 queued messages');
    assert.deepEqual(again.wire, sent);
    assert.deepEqual(payloads(again.got), sent);
  });
});

// ---- resending what was in flight ------------------------------------------------------------

describe('MQTT-4.4.0-1: unacknowledged packets are resent when the session resumes', {
  timeout: 30_000,
}, () => {
  for (const version of [4, 5] as const) {
    test(`v${version}: an unacknowledged QoS 1 PUBLISH is resent with DUP and the same packet id`, async () => {
      const b = await broker();
      const id = `dup1-${version}`;
      const connect = {
        protocolVersion: version,
        clientId: id,
        clean: false,
        ...(version === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}),
      };
      const { raw: first } = await rawConnect(b.port, connect);
      first.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'dup/t', qos: 1 }] });
      await first.next('suback');
      await b.broker.publish({ topic: 'dup/t', payload: 'unacked', qos: 1 });
      const original = await first.next('publish');
      assert.equal(original.dup, false);
      assert.equal(original.qos, 1);
      await drop(b, first, id); // no PUBACK

      const { raw: second, connack } = await rawConnect(b.port, connect);
      assert.equal(connack.sessionPresent, true);
      const resent = await second.next('publish');
      assert.equal(resent.dup, true, 'DUP is set on the resend');
      assert.equal(resent.packetId, original.packetId);
      assert.equal(resent.payload.toString(), 'unacked');
      assert.equal(resent.qos, 1);
      second.send({ type: 'puback', packetId: resent.packetId! });

      // Acknowledged now: the next publish is the marker, not a third copy.
      await b.broker.publish({ topic: 'dup/t', payload: 'marker', qos: 1 });
      const next = await second.next('publish');
      assert.equal(next.payload.toString(), 'marker');
      assert.equal(next.dup, false);
    });
  }

  test('QoS 2: PUBREL is resent (not the PUBLISH) when PUBREC was sent but no PUBCOMP', async () => {
    const b = await broker();
    const connect = { protocolVersion: 4, clientId: 'rel', clean: false } as const;
    const { raw: first } = await rawConnect(b.port, connect);
    first.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'rel/t', qos: 2 }] });
    await first.next('suback');
    await b.broker.publish({ topic: 'rel/t', payload: 'exactly once', qos: 2 });
    const publish = await first.next('publish');
    assert.equal(publish.qos, 2);
    first.send({ type: 'pubrec', packetId: publish.packetId! });
    const pubrel = await first.next('pubrel');
    assert.equal(pubrel.packetId, publish.packetId);
    await drop(b, first, 'rel'); // no PUBCOMP

    const { raw: second, connack } = await rawConnect(b.port, connect);
    assert.equal(connack.sessionPresent, true);
    const again = await second.next('pubrel');
    assert.equal(again.packetId, publish.packetId);
    second.send({ type: 'pubcomp', packetId: again.packetId });

    // Marker: the message itself must not come a second time before it.
    await b.broker.publish({ topic: 'rel/t', payload: 'marker', qos: 2 });
    const next = await second.next('publish');
    assert.equal(next.payload.toString(), 'marker');
    assert.equal(next.dup, false);
  });

  test('5.0: an unacknowledged QoS 2 PUBLISH is resent with DUP; the exchange then completes', async () => {
    const b = await broker();
    const connect = {
      protocolVersion: 5,
      clientId: 'dup2',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    } as const;
    const { raw: first } = await rawConnect(b.port, connect);
    first.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'dup2/t', qos: 2 }] });
    await first.next('suback');
    await b.broker.publish({ topic: 'dup2/t', payload: 'q2', qos: 2 });
    const original = await first.next('publish');
    await drop(b, first, 'dup2'); // no PUBREC

    const { raw: second } = await rawConnect(b.port, connect);
    const resent = await second.next('publish');
    assert.equal(resent.dup, true);
    assert.equal(resent.packetId, original.packetId);
    assert.equal(resent.qos, 2);
    second.send({ type: 'pubrec', packetId: resent.packetId! });
    const pubrel = await second.next('pubrel');
    assert.equal(pubrel.packetId, resent.packetId);
    assert.equal(pubrel.reasonCode ?? 0, 0);
    second.send({ type: 'pubcomp', packetId: pubrel.packetId });
    await until(() => b.broker.broker.sessions.get('dup2')?.inflight.size === 0, 'the exchange to complete');
  });
});

// ---- Session Expiry --------------------------------------------------------------------------------

describe('Session Expiry Interval (MQTT 3.1.2.11.2)', { timeout: 30_000 }, () => {
  test('a session with expiry 1 s is gone once it elapses: reconnecting gets session present 0', async () => {
    const b = await broker();
    const pub = await publisher(b);
    const opts = { protocolVersion: 5, clientId: 'exp', clean: false } as const;
    const first = await client(b.url, { ...opts, properties: { sessionExpiryInterval: 1 } });
    await first.client.subscribeAsync('exp/t', { qos: 1 });
    const ended = expired(b, 'exp');
    await leave(b, first.client);
    await within(ended, 'the session to expire');

    const again = await client(b.url, { ...opts, properties: { sessionExpiryInterval: 60 } });
    assert.equal(again.connack.sessionPresent, false);
    await again.client.subscribeAsync('exp/marker', { qos: 1 });
    await pub.publishAsync('exp/t', 'old subscription', { qos: 1 });
    await pub.publishAsync('exp/marker', 'marker', { qos: 1 });
    await until(() => again.got.length > 0, 'the marker');
    assert.deepEqual(payloads(again.got), ['marker']);
  });

  test('MQTT 3.14.2.2.2: Session Expiry Interval 0 at DISCONNECT ends the session at once', async () => {
    const b = await broker();
    const opts = {
      protocolVersion: 5,
      clientId: 'exp0',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    } as const;
    const first = await client(b.url, opts);
    await first.client.subscribeAsync('exp0/t', { qos: 1 });
    await leave(b, first.client, { properties: { sessionExpiryInterval: 0 } });
    assert.equal(b.broker.broker.sessions.has('exp0'), false);
    const again = await client(b.url, opts);
    assert.equal(again.connack.sessionPresent, false);
  });

  test('a shorter Session Expiry Interval at DISCONNECT replaces the one from CONNECT', async () => {
    const b = await broker();
    const first = await client(b.url, {
      protocolVersion: 5,
      clientId: 'exp-short',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await first.client.subscribeAsync('short/t', { qos: 1 });
    const ended = expired(b, 'exp-short');
    await leave(b, first.client, { properties: { sessionExpiryInterval: 1 } });
    await within(ended, 'the session to expire');
    const again = await client(b.url, {
      protocolVersion: 5,
      clientId: 'exp-short',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(again.connack.sessionPresent, false);
  });

  test('MQTT-3.14.2-2: a non-zero Session Expiry Interval at DISCONNECT after 0 at CONNECT is a Protocol Error (0x82)', async () => {
    const b = await broker();
    const { raw: r } = await rawConnect(b.port, { protocolVersion: 5, clientId: 'exp-bad', clean: false });
    r.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'bad/t', qos: 1 }] });
    await r.next('suback');
    r.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    const disconnect = await r.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    await r.closedByBroker();
    // The session was not extended: it ended with the connection.
    await until(() => !b.broker.broker.sessions.has('exp-bad'), 'the session to end');
    const again = await client(b.url, {
      protocolVersion: 5,
      clientId: 'exp-bad',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(again.connack.sessionPresent, false);
  });
});

// ---- the offline queue ---------------------------------------------------------------------------

describe('the offline queue', { timeout: 30_000 }, () => {
  const overflow = [
    ['drop-new', ['m1', 'm2', 'm3'], ['m4', 'm5']],
    ['drop-oldest', ['m3', 'm4', 'm5'], ['m1', 'm2']],
  ] as const;
  for (const [policy, kept, lost] of overflow) {
    test(`maxQueuedMessages bounds the queue; queueOverflow '${policy}' drops ${lost.join(', ')} ('dropped', reason queue-full)`, async () => {
      const b = await broker({ maxQueuedMessages: 3, queueOverflow: policy });
      const dropped: { payload: string; reason: string }[] = [];
      b.broker.on('dropped', (message, clientId, reason) => {
        if (clientId === 'bounded') dropped.push({ payload: message.payload.toString(), reason });
      });
      const pub = await publisher(b);
      const opts = { protocolVersion: 4, clientId: 'bounded', clean: false } as const;
      const first = await client(b.url, opts);
      await first.client.subscribeAsync('bounded/t', { qos: 1 });
      await leave(b, first.client);

      for (const m of ['m1', 'm2', 'm3', 'm4', 'm5']) await pub.publishAsync('bounded/t', m, { qos: 1 });
      assert.deepEqual(
        dropped,
        lost.map((payload) => ({ payload, reason: 'queue-full' })),
      );

      const again = await client(b.url, opts);
      assert.equal(again.connack.sessionPresent, true);
      await until(() => again.got.length >= 3, 'the queued messages');
      await pub.publishAsync('bounded/t', 'marker', { qos: 1 });
      await until(() => again.got.length >= 4, 'the marker');
      assert.deepEqual(payloads(again.got), [...kept, 'marker']);
    });
  }

  test("QoS 0 messages are not queued for an offline session by default ('dropped', reason offline-qos0)", async () => {
    const b = await broker();
    const dropped: string[] = [];
    b.broker.on('dropped', (message, clientId, reason) => {
      if (clientId === 'q0') dropped.push(`${message.payload}:${reason}`);
    });
    const pub = await publisher(b);
    const opts = {
      protocolVersion: 5,
      clientId: 'q0',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    } as const;
    const first = await client(b.url, opts);
    await first.client.subscribeAsync('q0/t', { qos: 1 });
    await leave(b, first.client);
    await pub.publishAsync('q0/t', 'at most once', { qos: 0 });
    await pub.publishAsync('q0/t', 'at least once', { qos: 1 });
    assert.deepEqual(dropped, ['at most once:offline-qos0']);

    const again = await client(b.url, opts);
    // The QoS 1 message published after it is the marker.
    await until(() => again.got.length > 0, 'the QoS 1 message');
    assert.deepEqual(again.got, [{ topic: 'q0/t', payload: 'at least once', qos: 1 }]);
  });

  test('QoS 0 messages are queued for an offline session with queueQoS0: true', async () => {
    const b = await broker({ queueQoS0: true });
    const pub = await publisher(b);
    const opts = { protocolVersion: 4, clientId: 'q0q', clean: false } as const;
    const first = await client(b.url, opts);
    await first.client.subscribeAsync('q0q/t', { qos: 1 });
    await leave(b, first.client);
    await pub.publishAsync('q0q/t', 'at most once', { qos: 0 });
    await pub.publishAsync('q0q/t', 'at least once', { qos: 1 });

    const again = await client(b.url, opts);
    await until(() => again.got.length >= 2, 'both messages');
    assert.deepEqual(again.got, [
      { topic: 'q0q/t', payload: 'at most once', qos: 0 },
      { topic: 'q0q/t', payload: 'at least once', qos: 1 },
    ]);
  });
});
