import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { IClientOptions, IConnackPacket, IDisconnectPacket, MqttClient } from 'mqtt';
import type { ConnackPacket, ConnectPacket, ProtocolVersion } from '../../src/codec/mqtt/index.js';
import type { CicadaOptions } from '../../src/index.js';
import { until } from '../helpers/broker.js';
import { bytes } from '../helpers/bytes.js';
import { connackOf, perTest, within } from '../helpers/mqtt-client.js';
import { publishPacket, RawClient } from '../helpers/raw-client.js';

/**
 * CONNECT and CONNACK end to end (MQTT 3.1, 3.2): protocol levels, client identifiers,
 * authentication, the CONNECT-first-and-once rule, timeouts, takeover, keep alive and the
 * capabilities a 5.0 CONNACK advertises.
 */

const run = promisify(execFile);

// ---- resources: everything opened in a test is closed after it ------------------------

const { cleanups, broker, mqttClient, raw } = perTest();

/** MQTT.js connected, with the CONNACK it got; rejects with the refusal (its `code` is the return/reason code). */
async function client(
  url: string,
  options: IClientOptions,
): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  const c = mqttClient(url, options);
  return { client: c, connack: await connackOf(c) };
}

/** A RawClient that sent CONNECT, with whatever CONNACK came back. */
async function rawConnect(
  port: number,
  connect: Partial<ConnectPacket> & { protocolVersion?: ProtocolVersion },
): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const r = await raw(port, connect.protocolVersion ?? 4);
  return { raw: r, connack: await r.handshake(connect) };
}

/** Messages an MQTT.js client receives, as topic and text. */
function inbox(c: MqttClient): { topic: string; payload: string }[] {
  const got: { topic: string; payload: string }[] = [];
  c.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

/** Proves a connected MQTT.js client works: it subscribes and receives its own QoS 1 publish. */
async function roundTrip(c: MqttClient, topic: string): Promise<void> {
  const got = inbox(c);
  await c.subscribeAsync(topic, { qos: 1 });
  await c.publishAsync(topic, 'ping', { qos: 1 });
  await until(() => got.some((m) => m.topic === topic && m.payload === 'ping'), `round trip on ${topic}`);
}

function closed(c: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!c.connected && c.stream?.destroyed) resolve();
    else c.once('close', () => resolve());
  });
}

// ---- protocol levels ----------------------------------------------------------------------

describe('CONNECT is accepted at every supported protocol level', { timeout: 30_000 }, () => {
  test('MQTT 3.1.1 (MQTT.js, protocol level 4): CONNACK return code 0, session present 0', async () => {
    const b = await broker();
    const { client: c, connack } = await client(b.url, { protocolVersion: 4, clientId: 'v311', clean: true });
    assert.equal(connack.returnCode, 0);
    assert.equal(connack.sessionPresent, false);
    await roundTrip(c, 'levels/311');
  });

  test('MQTT 5.0 (MQTT.js, protocol level 5): CONNACK reason code 0x00, session present 0', async () => {
    const b = await broker();
    const { client: c, connack } = await client(b.url, { protocolVersion: 5, clientId: 'v5', clean: true });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    await roundTrip(c, 'levels/5');
  });

  test('MQTT 3.1 (protocol level 3, "MQIsdp"): mosquitto_pub -V mqttv31 publishes through the broker', async () => {
    const b = await broker();
    const levels: number[] = [];
    b.broker.on('clientConnected', (info) => {
      if (info.clientId === 'mosq31') levels.push(info.protocolVersion);
    });
    const { client: sub } = await client(b.url, { protocolVersion: 4, clientId: 'sub31' });
    const got = inbox(sub);
    await sub.subscribeAsync('levels/31', { qos: 1 });
    await run(
      'mosquitto_pub',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(b.port),
        '-V',
        'mqttv31',
        '-i',
        'mosq31',
        '-q',
        '1',
        '-t',
        'levels/31',
        '-m',
        'from 3.1',
      ],
      { timeout: 10_000 },
    );
    await until(() => got.length > 0, 'the 3.1 publish');
    assert.deepEqual(got, [{ topic: 'levels/31', payload: 'from 3.1' }]);
    assert.deepEqual(levels, [3]);
  });

  test('MQTT 3.1 (RawClient, protocol level 3): CONNACK 0, then subscribe and receive', async () => {
    const b = await broker();
    const { raw: r, connack } = await rawConnect(b.port, { protocolVersion: 3, clientId: 'raw31' });
    assert.equal(connack.reasonCode, 0);
    r.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'levels/raw31', qos: 1 }] });
    assert.deepEqual((await r.next('suback')).reasonCodes, [1]);
    await b.broker.publish({ topic: 'levels/raw31', payload: 'to 3.1', qos: 1 });
    const publish = await r.next('publish');
    assert.equal(publish.topic, 'levels/raw31');
    assert.equal(publish.payload.toString(), 'to 3.1');
    assert.equal(publish.qos, 1);
  });

  test('MQTT-3.1.2-2: an unsupported protocol level (6) is answered with CONNACK return code 1, then closed', async () => {
    const b = await broker();
    const r = await raw(b.port, 4);
    r.sendBytes(
      bytes(`
        10 0f          # CONNECT, remaining length 15
        0004 "MQTT"    # protocol name
        06             # protocol level 6: not a version this server speaks
        02             # flags: clean session
        003c           # keep alive 60
        0003 "cid"     # client id
      `),
    );
    const connack = await r.next('connack');
    assert.equal(connack.reasonCode, 1);
    assert.equal(connack.sessionPresent, false);
    await r.closedByBroker();
  });
});

// ---- client identifiers ---------------------------------------------------------------------

describe('zero-length client identifiers', { timeout: 30_000 }, () => {
  test('MQTT-3.2.2-16: a 5.0 client with an empty client id gets an Assigned Client Identifier in CONNACK', async () => {
    const b = await broker();
    const { client: c, connack } = await client(b.url, { protocolVersion: 5, clientId: '', clean: true });
    assert.equal(connack.reasonCode, 0);
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.equal(typeof assigned, 'string');
    assert.ok(assigned!.length > 0);
    assert.ok(b.broker.broker.sessions.has(assigned!), 'the session is held under the assigned id');
    await roundTrip(c, 'ids/assigned');
  });

  test('two 5.0 clients with empty client ids are assigned different identifiers', async () => {
    const b = await broker();
    const first = await client(b.url, { protocolVersion: 5, clientId: '' });
    const second = await client(b.url, { protocolVersion: 5, clientId: '' });
    const a = first.connack.properties?.assignedClientIdentifier;
    const z = second.connack.properties?.assignedClientIdentifier;
    assert.ok(a && z);
    assert.notEqual(a, z);
    assert.ok(first.client.connected, 'the second client did not take over the first');
  });

  test('MQTT-3.1.3-6: a 3.1.1 clean-session client with an empty client id is accepted', async () => {
    const b = await broker();
    const { client: c, connack } = await client(b.url, { protocolVersion: 4, clientId: '', clean: true });
    assert.equal(connack.returnCode, 0);
    assert.equal(connack.sessionPresent, false);
    await roundTrip(c, 'ids/empty311');
  });

  test('MQTT-3.1.3-8: a 3.1.1 client with an empty client id and clean session 0 is refused with return code 2', async () => {
    const b = await broker();
    // MQTT.js will not send this CONNECT (it checks MQTT-3.1.3-7 itself), so the bytes come from RawClient.
    const { raw: r, connack } = await rawConnect(b.port, { protocolVersion: 4, clientId: '', clean: false });
    assert.equal(connack.reasonCode, 2);
    await r.closedByBroker();
  });

  test('MQTT 3.1 requires a client id: an empty one is refused with return code 2', async () => {
    const b = await broker();
    const { raw: r, connack } = await rawConnect(b.port, { protocolVersion: 3, clientId: '', clean: true });
    assert.equal(connack.reasonCode, 2);
    await r.closedByBroker();
  });
});

// ---- authentication ---------------------------------------------------------------------------

describe('the authenticate hook refuses a connection', { timeout: 30_000 }, () => {
  const options: CicadaOptions = {
    hooks: {
      authenticate: ({ username, password }) => {
        if (username === 'good') return password?.toString() === 'secret';
        if (username === 'forbidden') return { refuse: 'not-authorized' };
        if (username === 'banned') return { refuse: 'banned' };
        return false;
      },
    },
  };

  test('MQTT 3.1.1: bad credentials → return code 4, not authorized → 5; valid ones are accepted', async () => {
    const b = await broker(options);
    await assert.rejects(
      client(b.url, { protocolVersion: 4, clientId: 'a1', username: 'good', password: 'wrong' }),
      {
        code: 4,
      },
    );
    await assert.rejects(
      client(b.url, { protocolVersion: 4, clientId: 'a2', username: 'forbidden', password: 'x' }),
      {
        code: 5,
      },
    );
    await assert.rejects(
      client(b.url, { protocolVersion: 4, clientId: 'a3', username: 'banned', password: 'x' }),
      {
        code: 5,
      },
    );
    const { client: c, connack } = await client(b.url, {
      protocolVersion: 4,
      clientId: 'a4',
      username: 'good',
      password: 'secret',
    });
    assert.equal(connack.returnCode, 0);
    await roundTrip(c, 'auth/311');
  });

  test('MQTT 5.0: bad credentials → 0x86, not authorized → 0x87, banned → 0x8A; valid ones are accepted', async () => {
    const b = await broker(options);
    await assert.rejects(
      client(b.url, { protocolVersion: 5, clientId: 'b1', username: 'good', password: 'wrong' }),
      {
        code: 0x86,
      },
    );
    await assert.rejects(
      client(b.url, { protocolVersion: 5, clientId: 'b2', username: 'forbidden', password: 'x' }),
      {
        code: 0x87,
      },
    );
    await assert.rejects(
      client(b.url, { protocolVersion: 5, clientId: 'b3', username: 'banned', password: 'x' }),
      {
        code: 0x8a,
      },
    );
    const { client: c, connack } = await client(b.url, {
      protocolVersion: 5,
      clientId: 'b4',
      username: 'good',
      password: 'secret',
    });
    assert.equal(connack.reasonCode, 0);
    await roundTrip(c, 'auth/5');
  });

  test('MQTT-3.2.2-5 / MQTT-3.2.2-7: the server closes the connection after a refusing CONNACK', async () => {
    const b = await broker(options);
    const v4 = await rawConnect(b.port, {
      protocolVersion: 4,
      clientId: 'c1',
      username: 'nobody',
      password: Buffer.from('x'),
    });
    assert.equal(v4.connack.reasonCode, 4);
    await v4.raw.closedByBroker();
    const v5 = await rawConnect(b.port, {
      protocolVersion: 5,
      clientId: 'c2',
      username: 'banned',
      password: Buffer.from('x'),
    });
    assert.equal(v5.connack.reasonCode, 0x8a);
    await v5.raw.closedByBroker();
    assert.equal(b.broker.broker.sessions.size, 0, 'refused clients get no session');
  });
});

// ---- CONNECT first, and once --------------------------------------------------------------

describe('CONNECT comes first and only once', { timeout: 30_000 }, () => {
  test('MQTT-3.1.0-2: a second CONNECT closes a 3.1.1 connection', async () => {
    const b = await broker();
    const r = await RawClient.connect(b.port, { protocolVersion: 4, clientId: 'twice4' });
    cleanups.push(() => r.end());
    r.send({ type: 'connect', protocolVersion: 4, clean: true, keepAlive: 60, clientId: 'twice4' });
    await r.closedByBroker();
    assert.equal(
      r.packets.filter((p) => p.type === 'connack').length,
      0,
      'the second CONNECT is not answered',
    );
  });

  test('MQTT-3.1.0-2: a second CONNECT on a 5.0 connection gets DISCONNECT 0x82 (Protocol Error) and is closed', async () => {
    const b = await broker();
    const r = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'twice5' });
    cleanups.push(() => r.end());
    r.send({ type: 'connect', protocolVersion: 5, clean: true, keepAlive: 60, clientId: 'twice5' });
    const disconnect = await r.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    await r.closedByBroker();
  });

  test('MQTT-3.1.0-1: a packet before CONNECT closes the connection and is not processed', async () => {
    const b = await broker();
    const { client: sub } = await client(b.url, { protocolVersion: 4, clientId: 'watcher' });
    const got = inbox(sub);
    await sub.subscribeAsync('early/#', { qos: 1 });

    const r = await raw(b.port, 4);
    r.send(publishPacket('early/publish', { payload: Buffer.from('before connect') }));
    await r.closedByBroker();
    assert.deepEqual(r.packets, [], 'nothing is sent back');

    const pinger = await raw(b.port, 4);
    pinger.send({ type: 'pingreq' });
    await pinger.closedByBroker();
    assert.deepEqual(pinger.packets, [], 'no PINGRESP before CONNECT');

    // Marker: the publish sent before CONNECT must not have been routed ahead of it.
    await b.broker.publish({ topic: 'early/marker', payload: 'marker', qos: 1 });
    await until(() => got.length > 0, 'the marker');
    assert.deepEqual(got, [{ topic: 'early/marker', payload: 'marker' }]);
  });

  test('a socket that sends no CONNECT within mqtt.connectTimeout is closed', async () => {
    const b = await broker({ mqtt: { connectTimeout: 200 } });
    const silent = await raw(b.port, 4);
    await silent.closedByBroker(5000);
    // A half-sent CONNECT does not count either.
    const partial = await raw(b.port, 4);
    partial.sendBytes(bytes('10 0f 0004 "MQTT" 04'));
    await partial.closedByBroker(5000);
    assert.deepEqual(partial.packets, []);
  });
});

// ---- session takeover ------------------------------------------------------------------------

describe('MQTT-3.1.4-3: a second connection with the same client id takes over', { timeout: 30_000 }, () => {
  test('MQTT 5.0: the first connection receives DISCONNECT 0x8E (Session taken over) and is closed; the second works', async () => {
    const b = await broker();
    const { client: first } = await client(b.url, { protocolVersion: 5, clientId: 'same5' });
    const disconnects: IDisconnectPacket[] = [];
    first.on('disconnect', (p) => disconnects.push(p));
    const firstClosed = closed(first);
    const { client: second, connack } = await client(b.url, { protocolVersion: 5, clientId: 'same5' });
    assert.equal(connack.reasonCode, 0);
    await within(firstClosed, 'the first connection to close');
    assert.equal(disconnects.length, 1);
    assert.equal(disconnects[0]!.reasonCode, 0x8e);
    await roundTrip(second, 'takeover/5');
  });

  test('MQTT 3.1.1: the first connection is closed; the second works', async () => {
    const b = await broker();
    const { client: first } = await client(b.url, { protocolVersion: 4, clientId: 'same4' });
    const firstClosed = closed(first);
    const { client: second, connack } = await client(b.url, { protocolVersion: 4, clientId: 'same4' });
    assert.equal(connack.returnCode, 0);
    await within(firstClosed, 'the first connection to close');
    await roundTrip(second, 'takeover/311');
  });

  test('takeover across protocol versions: a 5.0 client takes over a 3.1.1 one', async () => {
    const b = await broker();
    const r = await RawClient.connect(b.port, { protocolVersion: 4, clientId: 'mixed' });
    cleanups.push(() => r.end());
    const { client: second } = await client(b.url, { protocolVersion: 5, clientId: 'mixed' });
    await r.closedByBroker();
    assert.deepEqual(r.packets, [], 'a 3.1.1 connection gets no DISCONNECT');
    await roundTrip(second, 'takeover/mixed');
  });
});

// ---- keep alive --------------------------------------------------------------------------------

describe('keep alive', { timeout: 30_000 }, () => {
  test('MQTT-3.1.2-22: a silent 5.0 client is disconnected with 0x8D (Keep Alive timeout) and its will is published', async () => {
    const b = await broker();
    const { client: sub } = await client(b.url, { protocolVersion: 5, clientId: 'ka-watcher' });
    const got = inbox(sub);
    await sub.subscribeAsync('ka/will', { qos: 1 });
    const r = await RawClient.connect(b.port, {
      protocolVersion: 5,
      clientId: 'ka5',
      keepAlive: 1,
      will: { topic: 'ka/will', payload: Buffer.from('gone quiet'), qos: 1, retain: false },
    });
    cleanups.push(() => r.end());
    const disconnect = await r.next('disconnect', 10_000);
    assert.equal(disconnect.reasonCode, 0x8d);
    await r.closedByBroker();
    await until(() => got.length > 0, 'the will');
    assert.deepEqual(got, [{ topic: 'ka/will', payload: 'gone quiet' }]);
  });

  test('MQTT-3.1.2-24: a silent 3.1.1 client is closed and its will is published', async () => {
    const b = await broker();
    const { client: sub } = await client(b.url, { protocolVersion: 4, clientId: 'ka-watcher4' });
    const got = inbox(sub);
    await sub.subscribeAsync('ka/will4', { qos: 1 });
    const r = await RawClient.connect(b.port, {
      protocolVersion: 4,
      clientId: 'ka4',
      keepAlive: 1,
      will: { topic: 'ka/will4', payload: Buffer.from('gone quiet'), qos: 1, retain: false },
    });
    cleanups.push(() => r.end());
    await r.closedByBroker(10_000);
    assert.deepEqual(r.packets, []);
    await until(() => got.length > 0, 'the will');
    assert.deepEqual(got, [{ topic: 'ka/will4', payload: 'gone quiet' }]);
  });

  test('MQTT-3.12.4-1: PINGREQ is answered with PINGRESP, and pings keep a connection alive past 1.5 × Keep Alive', async () => {
    const b = await broker();
    for (const version of [4, 5] as const) {
      const r = await RawClient.connect(b.port, {
        protocolVersion: version,
        clientId: `pinger${version}`,
        keepAlive: 1,
      });
      cleanups.push(() => r.end());
      r.send({ type: 'pingreq' });
      await r.next('pingresp');
    }
    // Four pings 400 ms apart: the connection outlives 1.5 s only because each counts as activity.
    const r = await RawClient.connect(b.port, { protocolVersion: 4, clientId: 'alive', keepAlive: 1 });
    cleanups.push(() => r.end());
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      r.send({ type: 'pingreq' });
      await r.next('pingresp');
    }
    r.send({ type: 'subscribe', packetId: 7, subscriptions: [{ topicFilter: 'alive', qos: 0 }] });
    assert.equal((await r.next('suback')).packetId, 7);
    assert.equal(r.closed, false);
  });

  test("MQTT 3.2.2.3.14: Server Keep Alive (mqtt.serverKeepAlive) is sent in the 5.0 CONNACK and enforced instead of the client's", async () => {
    const b = await broker({ mqtt: { serverKeepAlive: 1 } });
    const { connack: mqttjs } = await client(b.url, {
      protocolVersion: 5,
      clientId: 'ska-js',
      keepalive: 60,
    });
    assert.equal(mqttjs.properties?.serverKeepAlive, 1);

    const { raw: r, connack } = await rawConnect(b.port, {
      protocolVersion: 5,
      clientId: 'ska-raw',
      keepAlive: 60,
    });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.serverKeepAlive, 1);
    // The client asked for 60 s; silence is punished on the server's 1 s.
    const disconnect = await r.next('disconnect', 10_000);
    assert.equal(disconnect.reasonCode, 0x8d);
    await r.closedByBroker();
  });
});

// ---- CONNACK properties ----------------------------------------------------------------------

describe('the 5.0 CONNACK advertises what the server supports (MQTT 3.2.2.3)', { timeout: 30_000 }, () => {
  test('Maximum QoS, Retain Available, Topic Alias Maximum, Receive Maximum and Maximum Packet Size follow the options', async () => {
    const b = await broker({
      maximumQoS: 1,
      retainAvailable: false,
      mqtt: { topicAliasMaximum: 7, receiveMaximum: 20, maxPacketSize: 4096 },
    });
    const { client: c, connack } = await client(b.url, { protocolVersion: 5, clientId: 'caps' });
    assert.equal(connack.reasonCode, 0);
    const p = connack.properties ?? {};
    assert.equal(p.maximumQoS, 1);
    assert.equal(p.retainAvailable, false);
    assert.equal(p.topicAliasMaximum, 7);
    assert.equal(p.receiveMaximum, 20);
    assert.equal(p.maximumPacketSize, 4096);
    // And they hold: a QoS 2 subscription is granted QoS 1.
    const granted = await c.subscribeAsync('caps/t', { qos: 2 });
    assert.equal(granted[0]!.qos, 1);
  });

  test('defaults: Receive Maximum 1024, Topic Alias Maximum 256, Maximum Packet Size 1 MiB; full QoS and retain are not restated', async () => {
    const b = await broker();
    const { connack } = await client(b.url, { protocolVersion: 5, clientId: 'defaults' });
    const p = connack.properties ?? {};
    assert.equal(p.receiveMaximum, 1024);
    assert.equal(p.topicAliasMaximum, 256);
    assert.equal(p.maximumPacketSize, 1024 * 1024);
    assert.equal(p.maximumQoS, undefined, 'absent means QoS 2 is supported');
    assert.equal(p.retainAvailable, undefined, 'absent means retain is available');
    assert.equal(p.assignedClientIdentifier, undefined, 'no id is assigned to a client that sent one');
  });

  test('MQTT-3.2.2-12 / MQTT-3.2.2-13: a will above Maximum QoS or with retain when unavailable is refused (0x9B, 0x9A)', async () => {
    const b = await broker({ maximumQoS: 1, retainAvailable: false });
    await assert.rejects(
      client(b.url, {
        protocolVersion: 5,
        clientId: 'will-qos2',
        will: { topic: 'w', payload: Buffer.from('x'), qos: 2, retain: false },
      }),
      { code: 0x9b },
    );
    await assert.rejects(
      client(b.url, {
        protocolVersion: 5,
        clientId: 'will-retain',
        will: { topic: 'w', payload: Buffer.from('x'), qos: 1, retain: true },
      }),
      { code: 0x9a },
    );
  });

  test('Response Information is returned when requested, and only then (MQTT-3.1.2-28)', async () => {
    const b = await broker();
    const { connack: asked } = await client(b.url, {
      protocolVersion: 5,
      clientId: 'asker',
      properties: { requestResponseInformation: true },
    });
    assert.equal(asked.properties?.responseInformation, 'response/asker');
    const { connack: silent } = await client(b.url, { protocolVersion: 5, clientId: 'quiet' });
    assert.equal(silent.properties?.responseInformation, undefined);
  });

  test('Response Information follows mqtt.responseInformation, %c being the (assigned) client id', async () => {
    const b = await broker({ mqtt: { responseInformation: 'replies/%c/in' } });
    const { connack } = await client(b.url, {
      protocolVersion: 5,
      clientId: '',
      properties: { requestResponseInformation: true },
    });
    const id = connack.properties?.assignedClientIdentifier;
    assert.ok(id);
    assert.equal(connack.properties?.responseInformation, `replies/${id}/in`);
  });
});
