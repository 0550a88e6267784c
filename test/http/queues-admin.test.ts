import assert from 'node:assert/strict';
import { test } from 'node:test';
import { until } from '../helpers/broker.js';
import { adminJson, eventually, fetchJson, httpBroker, mqttClient } from './support.js';

/**
 * The admin API of point-to-point queues, with MQTT.js on the other side: messages published
 * to `$queue/<name>` are listed with their depth, a consumer that has not acknowledged shows,
 * a purge drops what waits (not what the consumer holds), and only the administrator may look.
 */

interface QueueItem {
  name: string;
  depth: number;
  consumers: number;
  unacknowledged: number;
}
interface Page<T> {
  items: T[];
  next: string | null;
}

async function publishTo(url: string, counts: Record<string, number>): Promise<void> {
  const publisher = await mqttClient(url, { clientId: 'queue-publisher', protocolVersion: 5 });
  for (const [name, count] of Object.entries(counts))
    for (let i = 0; i < count; i++)
      await publisher.publishAsync(`$queue/${name}`, `${name}-${i}`, { qos: 1 });
}

test('queues: listed with depth, searched by name, paged; one by name (slashes as %2F); 404 for an unknown one', async () => {
  const { base, mqttUrl } = await httpBroker();
  await publishTo(mqttUrl, { orders: 3, 'orders-eu': 1, 'jobs/a': 2 });

  const all = await adminJson(base, '/api/v1/queues');
  assert.equal(all.status, 200);
  assert.deepEqual(all.body, {
    items: [
      { name: 'jobs/a', depth: 2, consumers: 0, unacknowledged: 0 },
      { name: 'orders', depth: 3, consumers: 0, unacknowledged: 0 },
      { name: 'orders-eu', depth: 1, consumers: 0, unacknowledged: 0 },
    ],
    next: null,
  });

  const search = (await adminJson(base, '/api/v1/queues?search=orders')).body as Page<QueueItem>;
  assert.deepEqual(
    search.items.map((q) => q.name),
    ['orders', 'orders-eu'],
  );
  const first = (await adminJson(base, '/api/v1/queues?limit=2')).body as Page<QueueItem>;
  assert.deepEqual(
    first.items.map((q) => q.name),
    ['jobs/a', 'orders'],
  );
  assert.ok(first.next !== null);
  const second = (await adminJson(base, `/api/v1/queues?limit=2&cursor=${first.next}`))
    .body as Page<QueueItem>;
  assert.deepEqual(
    second.items.map((q) => q.name),
    ['orders-eu'],
  );
  assert.equal(second.next, null);
  assert.equal((await adminJson(base, '/api/v1/queues?limit=0')).status, 400);

  const one = await adminJson(base, '/api/v1/queues/jobs%2Fa');
  assert.equal(one.status, 200);
  assert.deepEqual(one.body, { name: 'jobs/a', depth: 2, consumers: 0, unacknowledged: 0 });
  const unknown = await adminJson(base, '/api/v1/queues/nothing-here');
  assert.equal(unknown.status, 404);
  assert.equal((unknown.body as { error: { code: string } }).error.code, 'not-found');
  const purgeUnknown = await adminJson(base, '/api/v1/queues/nothing-here/messages', { method: 'DELETE' });
  assert.equal(purgeUnknown.status, 404);
  assert.equal(
    (await adminJson(base, '/api/v1/queues/nothing-here')).status,
    404,
    'looking and purging made no queue',
  );
});

test('purge drops the waiting messages; what an MQTT.js consumer holds unacknowledged stays and is acknowledged later', async () => {
  // Two unacknowledged deliveries at most per consumer, so three of five stay waiting.
  const { base, mqttUrl } = await httpBroker({ queues: { defaultPrefetch: 2 } });
  await publishTo(mqttUrl, { work: 5 });

  // A consumer that sends no PUBACK until told to.
  let release = false;
  const held: (() => void)[] = [];
  const got: string[] = [];
  const consumer = await mqttClient(mqttUrl, {
    clientId: 'queue-consumer',
    protocolVersion: 5,
    customHandleAcks: (_topic, _message, _packet, done) => {
      if (release) done(0);
      else held.push(() => done(0));
    },
  });
  consumer.on('message', (_topic, payload) => got.push(payload.toString()));
  await consumer.subscribeAsync('$queue/work', { qos: 1 });
  const busy = await eventually(
    async () => (await adminJson(base, '/api/v1/queues/work')).body as QueueItem,
    (q) => q.unacknowledged === 2,
    'two unacknowledged deliveries',
  );
  assert.deepEqual(busy, { name: 'work', depth: 3, consumers: 1, unacknowledged: 2 });

  const purge = await adminJson(base, '/api/v1/queues/work/messages', { method: 'DELETE' });
  assert.equal(purge.status, 200);
  assert.deepEqual(purge.body, { purged: 3 });
  assert.deepEqual((await adminJson(base, '/api/v1/queues/work')).body, {
    name: 'work',
    depth: 0,
    consumers: 1,
    unacknowledged: 2,
  });

  release = true;
  for (const done of held.splice(0)) done();
  await until(() => got.length === 2, 'the two held messages');
  assert.deepEqual(got, ['work-0', 'work-1'], 'the purged ones never arrive');
  await eventually(
    async () => (await adminJson(base, '/api/v1/queues/work')).body as QueueItem,
    (q) => q.unacknowledged === 0 && q.depth === 0,
    'both acknowledged',
  );
  const again = await adminJson(base, '/api/v1/queues/work/messages', { method: 'DELETE' });
  assert.deepEqual(again.body, { purged: 0 });
});

test('queue routes need the admin token; a refused purge leaves the queue as it was', async () => {
  const { base, mqttUrl } = await httpBroker();
  await publishTo(mqttUrl, { guarded: 2 });
  const wrong = { authorization: 'Bearer not-the-token' };
  for (const [method, path] of [
    ['GET', '/api/v1/queues'],
    ['GET', '/api/v1/queues/guarded'],
    ['DELETE', '/api/v1/queues/guarded/messages'],
  ] as const) {
    assert.equal((await fetchJson(base, path, { method })).status, 401, `${method} ${path} without a token`);
    assert.equal(
      (await fetchJson(base, path, { method, headers: wrong })).status,
      401,
      `${method} ${path} with a wrong token`,
    );
  }
  assert.equal(((await adminJson(base, '/api/v1/queues/guarded')).body as QueueItem).depth, 2);
});
