import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import type { IClientOptions, IConnackPacket, IDisconnectPacket, MqttClient } from 'mqtt';
import { type TestBroker, until } from '../helpers/broker.js';
import { connackOf, detached, leave, perTest, within } from '../helpers/mqtt-client.js';

/**
 * Will Messages end to end (MQTT 3.1.2.5, 3.1.3.2): when a will is published and when not,
 * its retain flag and QoS, the 5.0 Will Delay Interval against reconnection and session
 * expiry, wills on takeover, and a will seen by a different client implementation.
 */

// ---- resources: everything opened in a test is closed after it ------------------------

const { cleanups, broker, mqttClient } = perTest();

interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

async function client(
  url: string,
  options: IClientOptions,
): Promise<{ client: MqttClient; connack: IConnackPacket; got: Received[] }> {
  const c = mqttClient(url, options);
  const got: Received[] = [];
  c.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }),
  );
  return { client: c, connack: await connackOf(c), got };
}

/** A subscriber to `topic` at `qos`; its `got` fills as messages arrive. */
async function subscriber(b: TestBroker, topic: string, qos: 0 | 1 | 2 = 1, protocolVersion: 4 | 5 = 5) {
  const s = await client(b.url, { protocolVersion, clientId: `sub-${Math.random().toString(36).slice(2)}` });
  await s.client.subscribeAsync(topic, { qos });
  return s;
}

/** Drops the socket without DISCONNECT, as a network failure would, and waits for the broker to notice. */
async function kill(b: TestBroker, c: MqttClient): Promise<void> {
  const gone = detached(b, c.options.clientId!);
  c.stream.destroy();
  await within(gone, `the broker to detach ${c.options.clientId}`);
}

function will(topic: string, payload: string, extra: Partial<NonNullable<IClientOptions['will']>> = {}) {
  return { topic, payload: Buffer.from(payload), qos: 1 as const, retain: false, ...extra };
}

async function marker(b: TestBroker, topic: string): Promise<void> {
  await b.broker.publish({ topic, payload: 'marker', qos: 1 });
}

const payloads = (got: Received[]): string[] => got.map((m) => m.payload);

// ---- when the will is published ---------------------------------------------------------

describe('the will is published when the connection ends without DISCONNECT', { timeout: 30_000 }, () => {
  for (const protocolVersion of [4, 5] as const) {
    test(`MQTT-3.1.2-8: v${protocolVersion}: socket destroyed → will published`, async () => {
      const b = await broker();
      const sub = await subscriber(b, 'will/destroy');
      const { client: c } = await client(b.url, {
        protocolVersion,
        clientId: `dies${protocolVersion}`,
        will: will('will/destroy', `last words ${protocolVersion}`),
      });
      await kill(b, c);
      await until(() => sub.got.length > 0, 'the will');
      assert.deepEqual(sub.got, [
        { topic: 'will/destroy', payload: `last words ${protocolVersion}`, qos: 1, retain: false },
      ]);
    });
  }
});

describe('the will is not published after a normal DISCONNECT', { timeout: 30_000 }, () => {
  for (const protocolVersion of [4, 5] as const) {
    test(`MQTT-3.1.2-10 / MQTT-3.14.4-3: v${protocolVersion}: DISCONNECT discards the will`, async () => {
      const b = await broker();
      const sub = await subscriber(b, 'will/normal');
      const { client: c } = await client(b.url, {
        protocolVersion,
        clientId: `polite${protocolVersion}`,
        will: will('will/normal', 'should not be sent'),
      });
      await leave(b, c);
      await marker(b, 'will/normal');
      await until(() => sub.got.length > 0, 'the marker');
      assert.deepEqual(payloads(sub.got), ['marker']);
    });
  }

  test('MQTT 5.0: DISCONNECT with reason code 0x04 (Disconnect with Will Message) publishes the will', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'will/0x04');
    const { client: c } = await client(b.url, {
      protocolVersion: 5,
      clientId: 'asks-for-will',
      will: will('will/0x04', 'sent on request'),
    });
    await leave(b, c, { reasonCode: 0x04 });
    await until(() => sub.got.length > 0, 'the will');
    assert.deepEqual(payloads(sub.got), ['sent on request']);
  });
});

// ---- retain and QoS ---------------------------------------------------------------------------

describe('will retain and will QoS', { timeout: 30_000 }, () => {
  test('MQTT-3.1.2-17: a will with Will Retain 1 is retained and delivered to a later subscriber', async () => {
    const b = await broker();
    const { client: c } = await client(b.url, {
      protocolVersion: 4,
      clientId: 'retainer',
      will: will('will/retained', 'offline', { retain: true }),
    });
    await kill(b, c);
    await until(() => b.broker.broker.retainedCount === 1, 'the retained will');
    const later = await subscriber(b, 'will/retained', 1, 5);
    await until(() => later.got.length > 0, 'the retained will');
    assert.deepEqual(later.got, [{ topic: 'will/retained', payload: 'offline', qos: 1, retain: true }]);
  });

  test('a will with Will Retain 0 is not retained', async () => {
    const b = await broker();
    const { client: c } = await client(b.url, {
      protocolVersion: 5,
      clientId: 'not-retainer',
      will: will('will/unretained', 'offline'),
    });
    await kill(b, c);
    const later = await subscriber(b, 'will/unretained');
    await marker(b, 'will/unretained');
    await until(() => later.got.length > 0, 'the marker');
    assert.deepEqual(payloads(later.got), ['marker']);
  });

  test('the will is delivered at its Will QoS, downgraded to each subscription’s QoS', async () => {
    const b = await broker();
    const subs = [
      await subscriber(b, 'will/qos', 0),
      await subscriber(b, 'will/qos', 1),
      await subscriber(b, 'will/qos', 2),
    ];
    const { client: c } = await client(b.url, {
      protocolVersion: 5,
      clientId: 'qos2-will',
      will: will('will/qos', 'exactly once', { qos: 2 }),
    });
    await kill(b, c);
    await until(() => subs.every((s) => s.got.length > 0), 'the will at every subscriber');
    assert.deepEqual(
      subs.map((s) => s.got.map((m) => m.qos)),
      [[0], [1], [2]],
    );
  });
});

// ---- Will Delay Interval --------------------------------------------------------------------

describe('MQTT 5.0 Will Delay Interval (MQTT 3.1.3.2.2)', { timeout: 30_000 }, () => {
  const delayed = (
    clientId: string,
    topic: string,
    payload: string,
    delay: number,
    expiry = 60,
  ): IClientOptions => ({
    protocolVersion: 5,
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: expiry },
    will: will(topic, payload, { properties: { willDelayInterval: delay } }),
  });

  test('the will is published after the delay, not when the connection ends', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'delay/t');
    const { client: c } = await client(b.url, delayed('delayed', 'delay/t', 'late will', 1));
    await kill(b, c);
    // Published at once, the will would come before this marker.
    await marker(b, 'delay/t');
    await until(() => sub.got.length >= 2, 'the marker and then the will');
    assert.deepEqual(payloads(sub.got), ['marker', 'late will']);
  });

  test('MQTT-3.1.3-9: reconnecting within the delay cancels the will', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'delay/cancel/#');
    const a = await client(b.url, delayed('returns', 'delay/cancel/a', 'must not be sent', 1));
    await kill(b, a.client);
    const back = await client(b.url, {
      protocolVersion: 5,
      clientId: 'returns',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(back.connack.sessionPresent, true);
    // Marker: a second client with the same delay, dropped later; its will is due after the first one's.
    const clock = await client(b.url, delayed('clock', 'delay/cancel/clock', 'clock will', 1));
    await kill(b, clock.client);
    await until(() => sub.got.length > 0, 'the clock will');
    assert.deepEqual(payloads(sub.got), ['clock will']);
  });

  test('a will delay longer than the Session Expiry Interval: the will is published when the session ends', async () => {
    const b = await broker();
    const ended: string[] = [];
    b.broker.on('sessionExpired', (id) => ended.push(id));
    const sub = await subscriber(b, 'delay/expiry');
    const { client: c } = await client(b.url, delayed('short-lived', 'delay/expiry', 'session over', 60, 1));
    await kill(b, c);
    await until(() => sub.got.length > 0, 'the will at session end');
    assert.deepEqual(payloads(sub.got), ['session over']);
    assert.deepEqual(ended, ['short-lived'], 'the will came with the end of the session');
  });

  test('DISCONNECT 0x04 with Session Expiry Interval 0 ends the session, so a delayed will is published at once', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'delay/now');
    const { client: c } = await client(b.url, delayed('ends-now', 'delay/now', 'no waiting', 60));
    await leave(b, c, { reasonCode: 0x04, properties: { sessionExpiryInterval: 0 } });
    await until(() => sub.got.length > 0, 'the will');
    assert.deepEqual(payloads(sub.got), ['no waiting']);
    assert.equal(b.broker.broker.sessions.has('ends-now'), false);
  });
});

// ---- takeover -----------------------------------------------------------------------------------

describe('the will on session takeover (MQTT 3.1.4)', { timeout: 30_000 }, () => {
  test('MQTT 3.1.1: the taken-over connection’s will is published; the new connection works', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'takeover/will');
    await client(b.url, { protocolVersion: 4, clientId: 'twin', will: will('takeover/will', 'replaced') });
    const second = await client(b.url, { protocolVersion: 4, clientId: 'twin' });
    await until(() => sub.got.length > 0, 'the will');
    assert.deepEqual(payloads(sub.got), ['replaced']);
    await second.client.subscribeAsync('takeover/ok', { qos: 1 });
    await marker(b, 'takeover/ok');
    await until(() => second.got.length > 0, 'a message on the new connection');
  });

  test('MQTT 5.0: the old connection gets DISCONNECT 0x8E and its will (no delay) is published', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'takeover/will5');
    const first = await client(b.url, {
      protocolVersion: 5,
      clientId: 'twin5',
      will: will('takeover/will5', 'replaced 5'),
    });
    const disconnects: IDisconnectPacket[] = [];
    first.client.on('disconnect', (p) => disconnects.push(p));
    await client(b.url, { protocolVersion: 5, clientId: 'twin5' });
    await until(() => sub.got.length > 0, 'the will');
    assert.deepEqual(payloads(sub.got), ['replaced 5']);
    await until(() => disconnects.length > 0, 'the DISCONNECT');
    assert.equal(disconnects[0]!.reasonCode, 0x8e);
  });

  test('MQTT 5.0: a delayed will is published when the taker-over starts clean (the session ends)', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'takeover/clean');
    await client(b.url, {
      protocolVersion: 5,
      clientId: 'twin-clean',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: will('takeover/clean', 'session discarded', { properties: { willDelayInterval: 60 } }),
    });
    const second = await client(b.url, { protocolVersion: 5, clientId: 'twin-clean', clean: true });
    assert.equal(second.connack.sessionPresent, false);
    await until(() => sub.got.length > 0, 'the will');
    assert.deepEqual(payloads(sub.got), ['session discarded']);
  });

  test('MQTT-3.1.3-9: a delayed will is not published when the taker-over resumes the session', async () => {
    const b = await broker();
    const sub = await subscriber(b, 'takeover/resume/#');
    const opts = { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } } as const;
    await client(b.url, {
      ...opts,
      clientId: 'twin-resume',
      will: will('takeover/resume/a', 'must not be sent', { properties: { willDelayInterval: 1 } }),
    });
    const second = await client(b.url, { ...opts, clientId: 'twin-resume' });
    assert.equal(second.connack.sessionPresent, true);
    // Marker: a will with the same delay, due after the first one would have been.
    const clock = await client(b.url, {
      ...opts,
      clientId: 'clock2',
      will: will('takeover/resume/clock', 'clock will', { properties: { willDelayInterval: 1 } }),
    });
    await kill(b, clock.client);
    await until(() => sub.got.length > 0, 'the clock will');
    assert.deepEqual(payloads(sub.got), ['clock will']);
  });
});

// ---- across implementations ------------------------------------------------------------------

describe('a will across client implementations', { timeout: 30_000 }, () => {
  for (const version of ['mqttv311', 'mqttv5'] as const) {
    test(`mosquitto_sub (${version}) receives the will of an MQTT.js client`, async () => {
      const b = await broker();
      const subId = `mosq-${version}`;
      const subscribed = new Promise<void>((resolve) => {
        b.broker.on('subscribed', (info, filter) => {
          if (info.clientId === subId && filter === 'cross/will') resolve();
        });
      });
      const child = spawn(
        'mosquitto_sub',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(b.port),
          '-V',
          version,
          '-i',
          subId,
          '-q',
          '1',
          '-t',
          'cross/will',
          '-C',
          '1',
          '-v',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      cleanups.push(() => child.kill());
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await within(subscribed, 'mosquitto_sub to subscribe');

      const { client: c } = await client(b.url, {
        protocolVersion: 5,
        clientId: 'mqttjs-dies',
        will: will('cross/will', 'bye from MQTT.js'),
      });
      await kill(b, c);
      const code = await Promise.race([
        exited,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`mosquitto_sub did not exit: ${stderr}`)), 10_000).unref(),
        ),
      ]);
      assert.equal(code, 0, stderr);
      assert.equal(stdout, 'cross/will bye from MQTT.js\n');
    });
  }
});
