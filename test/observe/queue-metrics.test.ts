import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_QUEUE_SERIES } from '../../src/observe/broker-metrics.js';
import { until } from '../helpers/broker.js';
import { adminJson, eventually, httpBroker, mqttClient } from '../http/support.js';
import { type Exposition, parseExposition, sampleValue } from './exposition.js';

/**
 * Queue gauges of `GET /metrics`, the queue figures of `GET /api/v1/stats` and the
 * `$SYS/broker/queues/...` topics, after MQTT.js clients used `$queue/<name>` topics.
 */

async function scrape(base: string): Promise<Exposition> {
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

function series(exposition: Exposition, name: string): Map<string, number> {
  return new Map(exposition.samples.filter((s) => s.name === name).map((s) => [s.labels['queue']!, s.value]));
}

describe('queue metrics', () => {
  test('gauges per queue (waiting, unacknowledged, consumers), the count, the stats and $SYS', async () => {
    const { base, mqttUrl } = await httpBroker({ queues: { defaultPrefetch: 1 }, sys: { interval: 1 } });
    const before = await scrape(base);
    assert.equal(sampleValue(before, 'cicada_queues'), 0);
    assert.equal(before.types.get('cicada_queue_messages'), 'gauge');
    assert.equal(series(before, 'cicada_queue_messages').size, 0);

    const publisher = await mqttClient(mqttUrl, { clientId: 'qm-pub', protocolVersion: 5 });
    for (let i = 0; i < 4; i++) await publisher.publishAsync('$queue/billing', `b${i}`, { qos: 1 });
    await publisher.publishAsync('$queue/mail', 'm0', { qos: 1 });
    // A consumer that never acknowledges: with prefetch 1 it holds one message, three wait.
    const consumer = await mqttClient(mqttUrl, {
      clientId: 'qm-consumer',
      protocolVersion: 5,
      customHandleAcks: () => {},
    });
    await consumer.subscribeAsync('$queue/billing', { qos: 1 });
    await eventually(
      async () => (await adminJson(base, '/api/v1/queues/billing')).body as { unacknowledged: number },
      (q) => q.unacknowledged === 1,
      'one unacknowledged billing message',
    );

    const after = await scrape(base);
    assert.equal(sampleValue(after, 'cicada_queues'), 2);
    assert.deepEqual(
      series(after, 'cicada_queue_messages'),
      new Map([
        ['billing', 3],
        ['mail', 1],
      ]),
    );
    assert.deepEqual(
      series(after, 'cicada_queue_unacknowledged'),
      new Map([
        ['billing', 1],
        ['mail', 0],
      ]),
    );
    assert.deepEqual(
      series(after, 'cicada_queue_consumers'),
      new Map([
        ['billing', 1],
        ['mail', 0],
      ]),
    );

    const stats = (await adminJson(base, '/api/v1/stats')).body as Record<string, number>;
    assert.equal(stats['queues'], 2);
    assert.equal(stats['queueMessages'], 4);

    const sys = await mqttClient(mqttUrl, { clientId: 'qm-sys', protocolVersion: 5 });
    const got = new Map<string, string>();
    sys.on('message', (topic, payload) => got.set(topic, payload.toString()));
    await sys.subscribeAsync('$SYS/broker/queues/#', { qos: 0 });
    await until(
      () => got.get('$SYS/broker/queues/count') === '2' && got.get('$SYS/broker/queues/messages') === '4',
      '$SYS/broker/queues/count 2 and messages 4',
    );
  });

  test(`beyond ${MAX_QUEUE_SERIES} queues only the deepest have series; the count is of all`, async () => {
    const { base, cicada } = await httpBroker();
    const { broker } = cicada;
    const publish = (queue: string) =>
      broker.publish(
        broker.createMessage({ topic: `$queue/${queue}`, payload: Buffer.from('x'), qos: 1, retain: false }),
      );
    // Every queue but one holds a message; `deep` holds two, `empty` none (purged).
    const names = Array.from({ length: MAX_QUEUE_SERIES }, (_, i) => `q${String(i).padStart(4, '0')}`);
    for (const name of names) publish(name);
    publish('deep');
    publish('deep');
    publish('empty');
    broker.queues.purge('empty');

    const exposition = await scrape(base);
    assert.equal(sampleValue(exposition, 'cicada_queues'), MAX_QUEUE_SERIES + 2);
    for (const metric of ['cicada_queue_messages', 'cicada_queue_unacknowledged', 'cicada_queue_consumers']) {
      const shown = series(exposition, metric);
      assert.equal(shown.size, MAX_QUEUE_SERIES, metric);
      assert.ok(shown.has('deep'), `${metric} has the deepest queue`);
      assert.ok(!shown.has('empty'), `${metric} leaves out an empty queue`);
      // Ties (depth 1) go by name: the last name is the one left out.
      assert.ok(!shown.has(names.at(-1)!), `${metric} leaves out the last of equally deep queues`);
    }
    assert.equal(series(exposition, 'cicada_queue_messages').get('deep'), 2);
  });
});
