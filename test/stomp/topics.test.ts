import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Versions } from '@stomp/stompjs';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { connackOf, id, mqttConnect, within } from '../helpers/mqtt-client.js';
import {
  closeStomp,
  connectStomp,
  header,
  RawStomp,
  type StompTestBroker,
  sendConfirmed,
  startStompBroker,
  subscribe,
} from '../helpers/stomp-client.js';

/** An MQTT 5 client of MQTT.js, connected, that records what it receives. */
async function mqttClient(url: string): Promise<{ client: MqttClient; received: IPublishPacket[] }> {
  const client = mqttConnect(url, { protocolVersion: 5, clientId: id('mqtt') });
  const received: IPublishPacket[] = [];
  client.on('message', (_topic, _payload, packet) => received.push(packet));
  await connackOf(client);
  return { client, received };
}

function nextMqtt(received: IPublishPacket[], index: number, client: MqttClient): Promise<IPublishPacket> {
  if (received.length > index) return Promise.resolve(received[index]!);
  return within(
    new Promise((resolve) => {
      const check = (): void => {
        if (received.length <= index) return;
        client.off('message', check);
        resolve(received[index]!);
      };
      client.on('message', check);
    }),
    'an MQTT message',
  );
}

describe('STOMP topics', () => {
  let b: StompTestBroker;
  before(async () => {
    b = await startStompBroker();
  });
  after(() => b.close());

  test('CONNECTED names the version, the server, the session, over TCP and WebSocket', async () => {
    for (const target of [{ port: b.port }, { url: b.wsUrl }]) {
      const client = await connectStomp(target);
      // stompjs keeps the CONNECTED frame's version as the connected version.
      assert.equal(client.connectedVersion, '1.2');
      await closeStomp(client);
    }
    const raw = await RawStomp.open(b.port);
    raw.send('CONNECT', [
      ['accept-version', '1.1,1.2'],
      ['host', 'my-host'],
    ]);
    const connected = await raw.nextFrame();
    assert.equal(connected.command, 'CONNECTED');
    assert.equal(header(connected, 'version'), '1.2');
    assert.match(header(connected, 'server') ?? '', /^cicada\//);
    assert.match(header(connected, 'session') ?? '', /^stomp:my-host-\d+$/);
    raw.close();
  });

  test('every version negotiates: 1.0 and 1.1 by stompjs, 1.0 without accept-version, none in common is an ERROR', async () => {
    for (const version of [Versions.V1_0, Versions.V1_1]) {
      const client = await connectStomp({ port: b.port }, { stompVersions: new Versions([version]) });
      assert.equal(client.connectedVersion, version);
      const inbox = await subscribe(client, '/topic/negotiated');
      await sendConfirmed(client, '/topic/negotiated', `over ${version}`);
      assert.equal((await within(inbox.next(), 'MESSAGE')).body, `over ${version}`);
      await closeStomp(client);
    }
    const old = await RawStomp.open(b.port);
    old.send('CONNECT', [['login', 'x']]);
    const connected = await old.nextFrame();
    assert.equal(connected.command, 'CONNECTED');
    assert.equal(header(connected, 'version'), '1.0');
    old.close();

    const future = await RawStomp.open(b.port);
    future.send('CONNECT', [
      ['accept-version', '2.0'],
      ['host', 'x'],
    ]);
    const [error] = await future.untilClosed();
    assert.equal(error?.command, 'ERROR');
    assert.equal(header(error!, 'message'), 'Supported protocol versions are 1.0,1.1,1.2');
    assert.equal(header(error!, 'version'), '1.0,1.1,1.2');
  });

  test('STOMP clients publish to each other across TCP and WebSocket, wildcards included', async () => {
    const sender = await connectStomp({ port: b.port });
    const receiver = await connectStomp({ url: b.wsUrl });
    const one = await subscribe(receiver, '/topic/home.*.temp');
    const rest = await subscribe(receiver, '/topic/home.#');
    await sendConfirmed(sender, '/topic/home.kitchen.temp', '21.5');
    await sendConfirmed(sender, '/topic/home.kitchen.light', 'on');
    const first = await within(one.next(), 'MESSAGE through *');
    assert.equal(first.body, '21.5');
    assert.equal(first.headers.destination, '/topic/home.kitchen.temp');
    assert.deepEqual(
      [(await within(rest.next(), '#')).body, (await within(rest.next(), '#')).body],
      ['21.5', 'on'],
    );
    assert.equal(one.messages.length, 1);
    await closeStomp(sender);
    await closeStomp(receiver);
  });

  test('two subscriptions of one destination each get a MESSAGE with their own subscription id', async () => {
    const client = await connectStomp({ port: b.port });
    const a = await subscribe(client, '/topic/twice', { id: 'first' });
    const c = await subscribe(client, '/topic/twice', { id: 'second' });
    await sendConfirmed(client, '/topic/twice', 'x');
    assert.equal((await within(a.next(), 'first')).headers.subscription, 'first');
    assert.equal((await within(c.next(), 'second')).headers.subscription, 'second');
    // One unsubscribed: the other still receives.
    a.unsubscribe();
    await sendConfirmed(client, '/topic/twice', 'y');
    assert.equal((await within(c.next(), 'second again')).body, 'y');
    assert.equal(a.messages.length, 1);
    await closeStomp(client);
  });

  test('SEND reaches an MQTT 5 subscriber: topic mapped, headers as user properties, content-type, QoS 1', async () => {
    const { client: mqtt, received } = await mqttClient(b.mqttUrl);
    await mqtt.subscribeAsync(['x/y', 'v1.2/status'], { qos: 1 });
    const stomp = await connectStomp({ url: b.wsUrl });
    await sendConfirmed(stomp, '/topic/x.y', '{"a":1}', {
      'content-type': 'application/json',
      'x-trace': 'abc:1',
      'reply-to': '/topic/replies.me',
      'correlation-id': 'c-42',
    });
    const packet = await nextMqtt(received, 0, mqtt);
    assert.equal(packet.topic, 'x/y');
    assert.equal(packet.qos, 1);
    assert.equal(packet.payload.toString(), '{"a":1}');
    assert.equal(packet.properties?.contentType, 'application/json');
    assert.equal(packet.properties?.responseTopic, 'replies/me');
    assert.equal(packet.properties?.correlationData?.toString(), 'c-42');
    assert.deepEqual({ ...packet.properties?.userProperties }, { 'x-trace': 'abc:1' });
    // `.` and `/` trade places: a `/` in a STOMP name is a `.` inside an MQTT level.
    await sendConfirmed(stomp, '/topic/v1/2.status', 'up', { persistent: 'false' });
    const swapped = await nextMqtt(received, 1, mqtt);
    assert.equal(swapped.topic, 'v1.2/status');
    assert.equal(swapped.qos, 0);
    await closeStomp(stomp);
    await mqtt.endAsync();
  });

  test('an MQTT publish reaches STOMP subscribers with its properties as headers', async () => {
    const { client: mqtt } = await mqttClient(b.mqttUrl);
    const stomp = await connectStomp({ port: b.port });
    const inbox = await subscribe(stomp, '/topic/sensors.*');
    await mqtt.publishAsync('sensors/door', 'open', {
      qos: 1,
      properties: {
        contentType: 'text/plain',
        userProperties: { site: 'north', note: 'a:b\nc' },
        responseTopic: 'acks/door',
        correlationData: Buffer.from('k1'),
      },
    });
    const message = await within(inbox.next(), 'MESSAGE from MQTT');
    assert.equal(message.body, 'open');
    assert.equal(message.headers.destination, '/topic/sensors.door');
    assert.equal(message.headers['content-type'], 'text/plain');
    assert.equal(message.headers['content-length'], '4');
    assert.equal(message.headers.site, 'north');
    // STOMP 1.2 escaping carries ':' and a line break in a header.
    assert.equal(message.headers.note, 'a:b\nc');
    assert.equal(message.headers['reply-to'], '/topic/acks.door');
    assert.equal(message.headers['correlation-id'], 'k1');
    await closeStomp(stomp);
    await mqtt.endAsync();
  });

  test('binary bodies with NUL bytes travel intact both ways', async () => {
    const { client: mqtt, received } = await mqttClient(b.mqttUrl);
    await mqtt.subscribeAsync('bin/out', { qos: 1 });
    const stomp = await connectStomp({ port: b.port });
    const inbox = await subscribe(stomp, '/topic/bin.in');
    const bytes = Buffer.from([0, 1, 0, 255, 10, 0]);
    await mqtt.publishAsync('bin/in', bytes, { qos: 1 });
    assert.deepEqual(Buffer.from((await within(inbox.next(), 'binary MESSAGE')).binaryBody), bytes);
    stomp.publish({ destination: '/topic/bin.out', binaryBody: bytes });
    assert.deepEqual((await nextMqtt(received, 0, mqtt)).payload, bytes);
    await closeStomp(stomp);
    await mqtt.endAsync();
  });

  test('retained messages come only with retained:true, marked retained:true; SEND retain:true retains', async () => {
    const { client: mqtt } = await mqttClient(b.mqttUrl);
    await mqtt.publishAsync('status/boiler', 'ok', { qos: 1, retain: true });
    const stomp = await connectStomp({ port: b.port });
    const asked = await subscribe(stomp, '/topic/status.*', { retained: 'true' });
    const retained = await within(asked.next(), 'the retained message');
    assert.equal(retained.body, 'ok');
    assert.equal(retained.headers.retained, 'true');
    const plain = await subscribe(stomp, '/topic/status.*');
    await sendConfirmed(stomp, '/topic/status.pump', 'running', { retain: 'true' });
    const live = await within(plain.next(), 'the live message');
    assert.equal(live.body, 'running');
    assert.equal(live.headers.retained, undefined);
    assert.equal(plain.messages.length, 1);
    // The SEND was retained: a new MQTT subscriber gets it.
    const { client: late, received } = await mqttClient(b.mqttUrl);
    await late.subscribeAsync('status/pump', { qos: 1 });
    const packet = await nextMqtt(received, 0, late);
    assert.equal(packet.retain, true);
    assert.equal(packet.payload.toString(), 'running');
    await closeStomp(stomp);
    await mqtt.endAsync();
    await late.endAsync();
  });

  test('client-individual acknowledgement: ack headers, and unacknowledged messages are bounded', async () => {
    const small = await startStompBroker({ stomp: { maxUnacknowledged: 2 } });
    try {
      const client = await connectStomp({ port: small.port });
      const inbox = await subscribe(client, '/topic/work', { ack: 'client-individual' });
      for (let i = 0; i < 4; i++) await sendConfirmed(client, '/topic/work', `m${i}`);
      const [m0, m1] = [await within(inbox.next(), 'm0'), await within(inbox.next(), 'm1')];
      assert.ok(m0.headers.ack !== undefined && m0.headers.ack !== m1.headers.ack);
      // The window is full: nothing more until an acknowledgement. A receipted frame proves it.
      await sendConfirmed(client, '/topic/elsewhere', 'sync');
      assert.equal(inbox.messages.length, 2);
      m1.ack();
      assert.equal((await within(inbox.next(), 'm2')).body, 'm2');
      m0.nack();
      assert.equal((await within(inbox.next(), 'm3')).body, 'm3');
      await closeStomp(client);
    } finally {
      await small.close();
    }
  });

  test('client acknowledgement is cumulative (STOMP 1.1 message-id + subscription)', async () => {
    const small = await startStompBroker({ stomp: { maxUnacknowledged: 3 } });
    try {
      const client = await connectStomp({ port: small.port }, { stompVersions: new Versions(['1.1']) });
      const inbox = await subscribe(client, '/topic/batch', { ack: 'client' });
      for (let i = 0; i < 6; i++) await sendConfirmed(client, '/topic/batch', `m${i}`);
      const third = await within(inbox.next(2), 'the third');
      // 1.1 has no ack header: ACK names message-id and subscription.
      assert.equal(third.headers.ack, undefined);
      third.ack();
      assert.equal((await within(inbox.next(5), 'the sixth')).body, 'm5');
      await closeStomp(client);
    } finally {
      await small.close();
    }
  });

  test('an unknown ack id or a duplicate subscription id is an ERROR', async () => {
    const raw = await RawStomp.connect(b.port);
    raw.send('ACK', [
      ['id', 'nope'],
      ['receipt', 'r1'],
    ]);
    const [, error] = await raw.untilClosed();
    assert.equal(error?.command, 'ERROR');
    assert.equal(header(error!, 'receipt-id'), 'r1');
    assert.match(header(error!, 'message') ?? '', /no message awaits acknowledgement/);

    const dup = await RawStomp.connect(b.port);
    dup.send('SUBSCRIBE', [
      ['id', 's'],
      ['destination', '/topic/a'],
    ]);
    dup.send('SUBSCRIBE', [
      ['id', 's'],
      ['destination', '/topic/b'],
    ]);
    const frames = await dup.untilClosed();
    assert.equal(frames.at(-1)?.command, 'ERROR');
    assert.match(header(frames.at(-1)!, 'message') ?? '', /already in use/);
  });

  test('DISCONNECT with a receipt: RECEIPT after what came before, then the broker closes', async () => {
    const raw = await RawStomp.connect(b.port);
    raw.send('SUBSCRIBE', [
      ['id', '1'],
      ['destination', '/topic/bye'],
      ['receipt', 'sub'],
    ]);
    raw.send('DISCONNECT', [['receipt', 'bye']]);
    const frames = await raw.untilClosed();
    assert.deepEqual(
      frames.map((f) => [f.command, header(f, 'receipt-id')]),
      [
        ['CONNECTED', undefined],
        ['RECEIPT', 'sub'],
        ['RECEIPT', 'bye'],
      ],
    );
  });
});
