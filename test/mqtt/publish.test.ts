import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Packet } from 'mqtt';
import type { Message } from '../../src/broker/message.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { collect, id, type Received, testClients, untilTopic } from '../helpers/mqtt-client.js';
import { publishPacket } from '../helpers/raw-client.js';

/**
 * PUBLISH end to end (MQTT 3.3, 4.3, 4.6): QoS flows in both directions, exactly-once,
 * ordering, QoS downgrade, payload edge cases, topic name validation and the publish hooks.
 */

type QoS = 0 | 1 | 2;

let t: TestBroker;
const publishedEvents: { message: Message; clientId: string | undefined }[] = [];
const { client, raw } = testClients('pub', () => t);

function payloads(list: Received[]): string[] {
  return list.map((m) => m.payload.toString());
}

before(async () => {
  t = await startBroker({
    hooks: {
      authorizePublish: (_client, message) => !message.topic.endsWith('/denied'),
      onPublish: (message) => {
        if (message.topic === 'hook/drop') return null;
        if (message.topic === 'hook/upper') {
          return { ...message, payload: Buffer.from(message.payload.toString().toUpperCase()) };
        }
        return undefined;
      },
    },
  });
  t.broker.on('published', (message, c) => publishedEvents.push({ message, clientId: c?.clientId }));
});

after(async () => {
  await t.close();
});

describe('QoS flows through a real broker', () => {
  for (const version of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos}, MQTT ${version === 5 ? '5.0' : '3.1.1'}: publisher acknowledged, subscriber gets QoS ${qos}, broker completes the flow`, async () => {
        const subId = id('sub');
        const sub = await client(version, { clientId: subId });
        const pub = await client(version);
        const topic = `flow/${version}/${qos}`;
        await sub.subscribeAsync(topic, { qos: 2 });
        const received = collect(sub);
        const pubGot: Packet[] = [];
        pub.on('packetreceive', (p) => pubGot.push(p));
        const subGot: string[] = [];
        const subSent: string[] = [];
        sub.on('packetreceive', (p) => subGot.push(p.cmd));
        sub.on('packetsend', (p) => subSent.push(p.cmd));

        await pub.publishAsync(topic, `q${qos}`, { qos });
        await until(() => received.length === 1, 'the message at the subscriber');
        assert.equal(received[0]!.packet.qos, qos);
        assert.equal(received[0]!.payload.toString(), `q${qos}`);
        assert.equal(received[0]!.packet.retain, false);

        // What the publisher got back: nothing, PUBACK, or PUBREC then PUBCOMP (MQTT 4.3).
        const acks = pubGot.filter((p) => ['puback', 'pubrec', 'pubcomp'].includes(p.cmd));
        const expected = qos === 0 ? [] : qos === 1 ? ['puback'] : ['pubrec', 'pubcomp'];
        assert.deepEqual(
          acks.map((p) => p.cmd),
          expected,
        );
        // A subscriber matched, so every ack is plain Success (not 0x10 No matching subscribers).
        for (const p of acks) assert.equal((p as { reasonCode?: number }).reasonCode ?? 0, 0);

        // The broker's side of the outbound flow: the subscriber acknowledges and nothing stays in flight.
        if (qos === 1) await until(() => subSent.includes('puback'), 'the subscriber PUBACK');
        if (qos === 2) {
          await until(() => subSent.includes('pubcomp'), 'the subscriber PUBCOMP');
          assert.deepEqual(
            subSent.filter((c) => c === 'pubrec' || c === 'pubcomp'),
            ['pubrec', 'pubcomp'],
          );
          assert.ok(subGot.includes('pubrel'), 'the broker sent PUBREL after PUBREC');
        }
        const session = t.broker.broker.sessions.get(subId);
        assert.ok(session !== undefined);
        await until(() => session.inflight.size === 0, 'the broker to complete the delivery');
        assert.equal(session.queuedCount, 0);
      });
    }
  }
});

describe('QoS 2 exactly once (MQTT 4.3.3)', () => {
  for (const version of [4, 5] as const) {
    test(`MQTT-4.3.3-10: a QoS 2 PUBLISH resent with DUP before PUBREL is acknowledged with PUBREC both times and delivered once (MQTT ${version})`, async () => {
      const sub = await client(version);
      const topic = `once/${version}`;
      await sub.subscribeAsync(topic, { qos: 2 });
      const received = collect(sub);
      const r = await raw(version);
      const publish = {
        type: 'publish',
        topic,
        payload: Buffer.from('once'),
        qos: 2,
        retain: false,
        packetId: 10,
      } as const;

      r.send({ ...publish, dup: false });
      const first = await r.next('pubrec');
      assert.equal(first.packetId, 10);
      assert.equal(first.reasonCode ?? 0, 0);
      r.send({ ...publish, dup: true });
      const second = await r.next('pubrec');
      assert.equal(second.packetId, 10);
      assert.ok((second.reasonCode ?? 0) < 0x80, 'the duplicate is acknowledged, not refused');
      r.send({ type: 'pubrel', packetId: 10 });
      const comp = await r.next('pubcomp');
      assert.equal(comp.packetId, 10);
      assert.equal(comp.reasonCode ?? 0, 0);

      // After PUBCOMP the id is free again: the same id now carries a new message.
      r.send({ ...publish, payload: Buffer.from('again'), dup: false });
      assert.equal((await r.next('pubrec')).packetId, 10);
      r.send({ type: 'pubrel', packetId: 10 });
      await r.next('pubcomp');
      r.send(publishPacket(topic, { payload: Buffer.from('marker') }));

      await until(() => payloads(received).includes('marker'), 'the marker');
      assert.deepEqual(payloads(received), ['once', 'again', 'marker']);
    });
  }

  test('PUBREL for an unknown packet id is answered with PUBCOMP (MQTT 3.1.1: success)', async () => {
    const r = await raw(4);
    r.send({ type: 'pubrel', packetId: 4242 });
    const comp = await r.next('pubcomp');
    assert.equal(comp.packetId, 4242);
    assert.equal(comp.reasonCode ?? 0, 0);
    assert.equal(r.closed, false);
  });

  test('PUBREL for an unknown packet id is answered with PUBCOMP 0x92 Packet Identifier not found (MQTT 5.0)', async () => {
    const r = await raw(5);
    r.send({ type: 'pubrel', packetId: 4242 });
    const comp = await r.next('pubcomp');
    assert.equal(comp.packetId, 4242);
    assert.equal(comp.reasonCode, 0x92);
    // The connection stays usable.
    r.send({ type: 'pingreq' });
    await r.next('pingresp');
  });
});

describe('ordering (MQTT 4.6)', () => {
  const count = 400;
  for (const qos of [0, 1, 2] as const) {
    test(`MQTT-4.6.0-5: ${count} QoS ${qos} messages on one topic arrive in the order published`, async () => {
      const sub = await client(4);
      const pub = await client(5);
      const topic = `order/${qos}`;
      await sub.subscribeAsync(topic, { qos: 2 });
      const received = collect(sub);
      const sent: Promise<unknown>[] = [];
      for (let i = 0; i < count; i++) sent.push(pub.publishAsync(topic, String(i), { qos }));
      await Promise.all(sent);
      await until(() => received.length >= count, `${count} messages`);
      assert.deepEqual(
        payloads(received),
        Array.from({ length: count }, (_, i) => String(i)),
      );
      assert.ok(received.every((m) => m.packet.qos === qos));
    });
  }
});

describe('QoS downgrade', () => {
  for (const version of [4, 5] as const) {
    test(`MQTT-3.8.4-8: a message is delivered at the lower of its QoS and the subscription's (MQTT ${version})`, async () => {
      const sub = await client(version);
      const pub = await client(version);
      const base = `down/${version}`;
      await sub.subscribeAsync({
        [`${base}/0`]: { qos: 0 },
        [`${base}/1`]: { qos: 1 },
        [`${base}/2`]: { qos: 2 },
      });
      const received = collect(sub);
      const cases: [sub: QoS, pub: QoS][] = [
        [0, 2],
        [1, 2],
        [2, 2],
        [0, 1],
        [1, 1],
        [2, 1],
        [2, 0],
      ];
      for (const [s, p] of cases) await pub.publishAsync(`${base}/${s}`, `${s}${p}`, { qos: p as QoS });
      await until(() => received.length === cases.length, 'every message');
      const got = Object.fromEntries(received.map((m) => [m.payload.toString(), m.packet.qos]));
      for (const [s, p] of cases) assert.equal(got[`${s}${p}`], Math.min(s, p), `sub QoS ${s}, pub QoS ${p}`);
    });
  }
});

describe('payloads', () => {
  const big = Buffer.alloc(500 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const cases: [string, Buffer][] = [
    ['empty (0 bytes)', Buffer.alloc(0)],
    ['binary with NULs', Buffer.from([0, 0xff, 0, 1, 0, 0, 0x80, 0])],
    ['500 KB', big],
  ];
  for (const version of [4, 5] as const) {
    for (const [name, payload] of cases) {
      test(`payload ${name} arrives byte for byte (MQTT ${version})`, async () => {
        const sub = await client(version);
        const pub = await client(version);
        const topic = `payload/${version}/${name.replaceAll(' ', '-')}`;
        await sub.subscribeAsync(topic, { qos: 1 });
        const received = collect(sub);
        await pub.publishAsync(topic, payload, { qos: 1 });
        await until(() => received.length === 1, 'the message');
        assert.equal(received[0]!.payload.length, payload.length);
        assert.ok(received[0]!.payload.equals(payload));
      });
    }
  }
});

describe('topic names', () => {
  for (const topic of ['a/+', 'a/#', '+', '#']) {
    test(`MQTT-3.3.2-2: PUBLISH to '${topic}' (a wildcard) closes the connection with DISCONNECT 0x90 Topic Name invalid (MQTT 5.0)`, async () => {
      const r = await raw(5);
      r.send(publishPacket(topic, { qos: 1, packetId: 1 }));
      const disconnect = await r.next('disconnect');
      assert.equal(disconnect.reasonCode, 0x90);
      await r.closedByBroker();
      assert.equal(
        r.packets.some((p) => p.type === 'puback'),
        false,
      );
    });
  }

  test('MQTT-3.3.2-2: PUBLISH to a wildcard topic closes the connection (MQTT 3.1.1) and is not delivered', async () => {
    const sub = await client(4);
    await sub.subscribeAsync('#', { qos: 0 });
    const received = collect(sub);
    const r = await raw(4);
    r.send(publishPacket('wild/+'));
    await r.closedByBroker();
    assert.equal(
      r.packets.some((p) => p.type !== 'connack'),
      false,
    );
    const pub = await client(4);
    await pub.publishAsync('wild/marker', 'marker', { qos: 1 });
    await untilTopic(received, 'wild/marker');
    assert.deepEqual(
      received.map((m) => m.topic).filter((x) => x.startsWith('wild/')),
      ['wild/marker'],
    );
  });
});

describe('publish hooks and events', () => {
  test('authorizePublish denying: MQTT 5.0 PUBACK/PUBREC carry 0x87 Not authorized and nothing is delivered', async () => {
    const sub = await client(5);
    await sub.subscribeAsync('authz5/#', { qos: 2 });
    const received = collect(sub);
    const pub = await client(5);
    await assert.rejects(
      pub.publishAsync('authz5/denied', 'q1', { qos: 1 }),
      (e: { code?: number }) => e.code === 0x87,
    );
    await assert.rejects(
      pub.publishAsync('authz5/denied', 'q2', { qos: 2 }),
      (e: { code?: number }) => e.code === 0x87,
    );
    await pub.publishAsync('authz5/denied', 'q0', { qos: 0 });
    await pub.publishAsync('authz5/marker', 'marker', { qos: 1 });
    await untilTopic(received, 'authz5/marker');
    assert.deepEqual(payloads(received), ['marker']);
  });

  test('authorizePublish denying: MQTT 5.0 PUBACK reason code is exactly 0x87 on the wire', async () => {
    const r = await raw(5);
    r.send(publishPacket('authz5/denied', { qos: 1, packetId: 3 }));
    const puback = await r.next('puback');
    assert.equal(puback.packetId, 3);
    assert.equal(puback.reasonCode, 0x87);
  });

  test('authorizePublish denying: MQTT 3.1.1 publishes are acknowledged and dropped', async () => {
    const sub = await client(4);
    await sub.subscribeAsync('authz4/#', { qos: 2 });
    const received = collect(sub);
    const pub = await client(4);
    const acks: string[] = [];
    pub.on('packetreceive', (p) => acks.push(p.cmd));
    await pub.publishAsync('authz4/denied', 'q1', { qos: 1 });
    await pub.publishAsync('authz4/denied', 'q2', { qos: 2 });
    assert.deepEqual(acks, ['puback', 'pubrec', 'pubcomp']);
    await pub.publishAsync('authz4/denied', 'q0', { qos: 0 });
    await pub.publishAsync('authz4/marker', 'marker', { qos: 1 });
    await untilTopic(received, 'authz4/marker');
    assert.deepEqual(payloads(received), ['marker']);
    assert.equal(pub.connected, true);
  });

  for (const version of [4, 5] as const) {
    test(`onPublish can replace a message and drop one (MQTT ${version})`, async () => {
      const sub = await client(version);
      await sub.subscribeAsync('hook/#', { qos: 1 });
      const received = collect(sub);
      const pub = await client(version);
      await pub.publishAsync('hook/upper', 'shout', { qos: 1 });
      await pub.publishAsync('hook/drop', 'gone', { qos: 1 });
      await pub.publishAsync('hook/marker', 'marker', { qos: 1 });
      await untilTopic(received, 'hook/marker');
      assert.deepEqual(
        received.map((m) => [m.topic, m.payload.toString()]),
        [
          ['hook/upper', 'SHOUT'],
          ['hook/marker', 'marker'],
        ],
      );
    });
  }

  test("the 'published' event fires with the message and the publishing client", async () => {
    const pubId = id('evt');
    const pub = await client(5, { clientId: pubId });
    await pub.publishAsync('evt/topic', 'hello', { qos: 1, properties: { userProperties: { k: 'v' } } });
    await until(() => publishedEvents.some((e) => e.message.topic === 'evt/topic'), "the 'published' event");
    const event = publishedEvents.find((e) => e.message.topic === 'evt/topic')!;
    assert.equal(event.clientId, pubId);
    assert.equal(event.message.payload.toString(), 'hello');
    assert.equal(event.message.qos, 1);
    assert.equal(event.message.retain, false);
    assert.deepEqual(event.message.properties?.userProperties, [['k', 'v']]);

    await t.broker.publish({ topic: 'evt/server', payload: 'from-app' });
    await until(
      () => publishedEvents.some((e) => e.message.topic === 'evt/server'),
      "the server's 'published' event",
    );
    assert.equal(publishedEvents.find((e) => e.message.topic === 'evt/server')!.clientId, undefined);
  });
});
