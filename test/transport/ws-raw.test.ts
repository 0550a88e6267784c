import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encode, type Packet, type ProtocolVersion } from '../../src/codec/mqtt/index.js';
import { collect, connackOf, id, perTest, untilPayload } from '../helpers/mqtt-client.js';
import { publishPacket } from '../helpers/raw-client.js';
import { handshakeStatus, WsRawClient } from '../helpers/ws-client.js';
import { startWsBroker, type WsBroker } from './ws-fixture.js';

/**
 * MQTT over WebSocket frame by frame (MQTT 6.0), with the `ws` package as a bare client:
 * packets split across frames and packed into one, subprotocol negotiation, and what closes
 * a connection (text frames, oversized frames, garbage) without disturbing anyone else.
 */

const { cleanups, mqttClient } = perTest();

async function wsBroker(): Promise<WsBroker> {
  const b = await startWsBroker();
  cleanups.push(() => b.close());
  return b;
}

async function rawClient(
  url: string,
  protocols: string[] = ['mqtt'],
  version: ProtocolVersion = 4,
): Promise<WsRawClient> {
  const raw = await WsRawClient.open(url, protocols, version);
  cleanups.push(() => raw.end());
  return raw;
}

function connectPacket(version: ProtocolVersion = 4): Packet {
  return { type: 'connect', protocolVersion: version, clean: true, keepAlive: 30, clientId: id('raw') };
}

/** A raw client through CONNECT/CONNACK. */
async function connectedRaw(b: WsBroker): Promise<WsRawClient> {
  const raw = await rawClient(b.wsUrl);
  raw.send(connectPacket());
  assert.equal((await raw.next('connack')).reasonCode, 0);
  return raw;
}

describe('MQTT packets and WebSocket frames are independent (MQTT 6.0)', { timeout: 30_000 }, () => {
  test('a CONNECT split over three binary messages is answered with a CONNACK', async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl);
    const bytes = encode(connectPacket(), 4);
    raw.sendBytes(bytes.subarray(0, 1));
    raw.sendBytes(bytes.subarray(1, 5));
    raw.sendBytes(bytes.subarray(5));
    assert.equal((await raw.next('connack')).reasonCode, 0);
  });

  test('a CONNECT sent as one fragmented message (continuation frames) is answered with a CONNACK', async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl);
    const bytes = encode(connectPacket(), 4);
    raw.sendBytes(bytes.subarray(0, 3), false);
    raw.sendBytes(bytes.subarray(3, 9), false);
    raw.sendBytes(bytes.subarray(9), true);
    assert.equal((await raw.next('connack')).reasonCode, 0);
  });

  test('CONNECT, SUBSCRIBE and PUBLISH in one frame get CONNACK, SUBACK, PUBACK and the message', async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl);
    const topic = 'ws/raw/batch';
    raw.sendBytes(
      Buffer.concat([
        encode(connectPacket(), 4),
        encode({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: topic, qos: 1 }] }, 4),
        encode(publishPacket(topic, { qos: 1, packetId: 2, payload: Buffer.from('packed') }), 4),
      ]),
    );
    assert.equal((await raw.next('connack')).reasonCode, 0);
    assert.deepEqual((await raw.next('suback')).reasonCodes, [1]);
    assert.equal((await raw.next('puback')).packetId, 2);
    const delivered = await raw.next('publish');
    assert.equal(delivered.topic, topic);
    assert.equal(delivered.payload.toString(), 'packed');
  });

  test("the broker's answers written in one tick leave as one binary frame", async () => {
    const b = await wsBroker();
    const raw = await connectedRaw(b);
    const framesBefore = raw.frames.length;
    const pingreq = encode({ type: 'pingreq' }, 4);
    raw.sendBytes(Buffer.concat([pingreq, pingreq, pingreq, pingreq, pingreq]));
    for (let i = 0; i < 5; i++) await raw.next('pingresp');
    const frames = raw.frames.slice(framesBefore);
    assert.equal(frames.length, 1, `five PINGRESPs in ${frames.length} frames`);
    assert.deepEqual(
      frames[0],
      Buffer.concat(Array.from({ length: 5 }, () => encode({ type: 'pingresp' }, 4))),
    );
  });
});

describe('WebSocket subprotocols', { timeout: 30_000 }, () => {
  test("subprotocol 'mqttv3.1' with an MQTT 3.1 CONNECT (MQIsdp) is accepted", async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl, ['mqttv3.1'], 3);
    assert.equal(raw.protocol, 'mqttv3.1');
    raw.send(connectPacket(3), 3);
    assert.equal((await raw.next('connack')).reasonCode, 0);
  });

  test("'mqtt' is chosen when a client offers both MQTT subprotocols", async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl, ['mqttv3.1', 'mqtt']);
    assert.equal(raw.protocol, 'mqtt');
  });

  test('a client offering no subprotocol may connect (some clients omit it)', async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl, []);
    assert.equal(raw.protocol, '');
    raw.send(connectPacket());
    assert.equal((await raw.next('connack')).reasonCode, 0);
  });

  test('a client offering only other subprotocols is refused with 400', async () => {
    const b = await wsBroker();
    assert.equal(await handshakeStatus(b.wsUrl, ['stomp', 'wamp']), 400);
    assert.equal(await handshakeStatus(b.wsUrl, ['mqtt']), 101, 'the listener still accepts MQTT');
  });

  test('an unknown path is answered with 404 and the socket closed', async () => {
    const b = await wsBroker();
    assert.equal(await handshakeStatus(`ws://127.0.0.1:${b.wsPort}/elsewhere`), 404);
    assert.equal(await handshakeStatus(`ws://127.0.0.1:${b.wsPort}/`), 404);
    const plain = await fetch(`http://127.0.0.1:${b.wsPort}/mqtt`);
    assert.equal(plain.status, 426, 'a plain GET on the WebSocket path is told to upgrade');
    assert.equal(plain.headers.get('upgrade'), 'websocket');
  });
});

describe('what closes a WebSocket connection', { timeout: 30_000 }, () => {
  test('a text frame closes the connection with 1003 (MQTT-6.0.0-1)', async () => {
    const b = await wsBroker();
    const raw = await connectedRaw(b);
    raw.sendText('{"not":"mqtt"}');
    assert.equal((await raw.closed()).code, 1003);
  });

  test('a text frame before CONNECT closes the connection too', async () => {
    const b = await wsBroker();
    const raw = await rawClient(b.wsUrl);
    raw.sendText('hello');
    assert.equal((await raw.closed()).code, 1003);
  });

  test('a frame larger than maxPayload closes the connection with 1009', async () => {
    const b = await wsBroker();
    const raw = await connectedRaw(b);
    raw.sendBytes(Buffer.alloc(1024 * 1024 + 8192, 0x30));
    assert.equal((await raw.closed()).code, 1009);
  });

  test("a client's will is published when its WebSocket closes without DISCONNECT", async () => {
    const b = await wsBroker();
    const watcher = mqttClient(b.tcpUrl, { protocolVersion: 5, clientId: id('watcher') });
    await connackOf(watcher);
    const got = collect(watcher);
    await watcher.subscribeAsync('ws/will', { qos: 1 });
    const raw = await rawClient(b.wsUrl);
    raw.send({
      ...connectPacket(),
      will: { topic: 'ws/will', payload: Buffer.from('gone'), qos: 1, retain: false },
    } as Packet);
    assert.equal((await raw.next('connack')).reasonCode, 0);
    raw.end();
    await untilPayload(got, 'gone');
  });

  test('binary garbage closes its sender while an honest WebSocket client gets all its QoS 1 messages', async () => {
    const b = await wsBroker();
    const honest = mqttClient(b.wsUrl, { protocolVersion: 5, clientId: id('honest') });
    await connackOf(honest);
    const got = collect(honest);
    await honest.subscribeAsync('ws/honest', { qos: 1 });
    const garbage = await connectedRaw(b);
    const before = await rawClient(b.wsUrl);
    const sent: string[] = [];
    for (let i = 0; i < 200; i++) {
      const payload = `message ${i}`;
      sent.push(payload);
      const publishing = honest.publishAsync('ws/honest', payload, { qos: 1 });
      if (i === 50) garbage.sendBytes(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37]));
      if (i === 100) before.sendBytes(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      await publishing;
    }
    await untilPayload(got, 'message 199');
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      sent,
    );
    await garbage.closed();
    await before.closed();
    assert.ok(honest.connected, 'the honest client is still connected');
  });
});
