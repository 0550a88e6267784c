import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { PublishPacket } from '../../src/codec/mqtt/index.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { killCicadas, startCicada } from '../helpers/cicada-process.js';
import { id } from '../helpers/mqtt-client.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * Queues across restarts on one data directory: what a PUBACK accepted into a queue, and what
 * a consumer held unacknowledged, is there after `close()` and a new broker, and after the
 * `cicada` process is killed with SIGKILL.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(killCicadas);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cicada-queues-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function client(url: string): Promise<{ client: MqttClient; received: string[] }> {
  const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: id('dq'), reconnectPeriod: 0 });
  cleanups.push(() => c.endAsync(true));
  const received: string[] = [];
  c.on('message', (_topic, payload) => received.push(payload.toString()));
  return { client: c, received };
}

async function embedded(dataDir: string): Promise<TestBroker> {
  const b = await startBroker({ dataDir, queues: { defaultPrefetch: 1 } });
  cleanups.push(() => b.close());
  return b;
}

describe('queues: durability', () => {
  test('close and restart: accepted messages and an unacknowledged delivery come back, in order', async () => {
    const dataDir = await tempDir();
    const first = await embedded(dataDir);
    const raw = await RawClient.connect(first.port, { protocolVersion: 5, clientId: id('holder') });
    cleanups.push(() => raw.end());
    raw.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: '$queue/durable', qos: 1 }] });
    await raw.next('suback');
    const pub = await client(first.url);
    for (const payload of ['d0', 'd1', 'd2'])
      await pub.client.publishAsync('$queue/durable', payload, { qos: 1 });
    const held = (await raw.next('publish')) as PublishPacket;
    assert.equal(held.payload.toString(), 'd0');
    assert.deepEqual(first.broker.broker.queues.get('durable'), {
      name: 'durable',
      depth: 2,
      consumers: 1,
      unacknowledged: 1,
    });
    await first.close();

    const second = await embedded(dataDir);
    assert.equal(second.broker.broker.sessions.size, 0, 'a queue is not restored as a session');
    assert.deepEqual(second.broker.broker.queues.get('durable'), {
      name: 'durable',
      depth: 3,
      consumers: 0,
      unacknowledged: 0,
    });
    const consumer = await client(second.url);
    await consumer.client.subscribeAsync('$queue/durable', { qos: 1 });
    await until(() => consumer.received.length >= 3, 'the three messages');
    assert.deepEqual(consumer.received, ['d0', 'd1', 'd2']);
    await until(() => second.broker.broker.queues.get('durable')?.unacknowledged === 0, 'acknowledgements');
    await second.close();

    const third = await embedded(dataDir);
    assert.equal(third.broker.broker.queues.get('durable')?.depth, 0, 'acknowledged messages stay gone');
  });

  test('SIGKILL: what PUBACK accepted into a queue survives', async () => {
    const cwd = await tempDir();
    const args = ['--allow-anonymous', '--listen', 'mqtt://127.0.0.1:0'];
    const first = startCicada(args, cwd);
    const pub = await client(`mqtt://127.0.0.1:${await first.port('mqtt://127.0.0.1:0')}`);
    const sent = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (const payload of sent) await pub.client.publishAsync('$queue/killed', payload, { qos: 1 });
    first.child.kill('SIGKILL');
    await first.exited;

    const second = startCicada(args, cwd);
    const consumer = await client(`mqtt://127.0.0.1:${await second.port('mqtt://127.0.0.1:0')}`);
    await consumer.client.subscribeAsync('$queue/killed', { qos: 1 });
    await until(() => consumer.received.length >= sent.length, 'every accepted message');
    assert.deepEqual(consumer.received, sent);
    second.child.kill('SIGTERM');
    await second.exited;
  });
});
