import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { Broker } from '../../src/broker/broker.js';
import type { DropReason } from '../../src/broker/hooks.js';
import type { QueueDelivery, QueueSubscription } from '../../src/broker/queues.js';
import { Session } from '../../src/broker/session.js';
import type { Store } from '../../src/broker/store.js';
import { DurableStore } from '../../src/store/durable/index.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';

/**
 * `QueueManager.purge`: an operator drops what waits in a queue; what consumers hold stays
 * theirs. Through the broker core, with the memory store and across a restart with the durable one.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(store: Store = new MemoryStore()) {
  const errors: unknown[] = [];
  const broker = new Broker({ store, onError: (error) => errors.push(error) });
  const drops: [payload: string, reason: DropReason][] = [];
  broker.on('dropped', (message, _clientId, reason) => drops.push([message.payload.toString(), reason]));
  await broker.start();
  cleanups.push(() => broker.close());
  return { broker, errors, drops };
}

function publish(broker: Broker, queue: string, payload: string) {
  const message = broker.createMessage({
    topic: `$queue/${queue}`,
    payload: Buffer.from(payload),
    qos: 1,
    retain: false,
  });
  return broker.publish(message);
}

async function consume(broker: Broker, queue: string, prefetch: number) {
  const got: QueueDelivery[] = [];
  const subscription = (await broker.consumeQueue(
    new Session(`consumer-${queue}`, 0),
    queue,
    { ackMode: 'client-individual', prefetch },
    { deliver: (delivery) => got.push(delivery) },
  )) as QueueSubscription;
  assert.equal(typeof subscription, 'object');
  return { subscription, got };
}

describe('queues: purge', () => {
  test('drops the waiting messages (each reported as purged), not the unacknowledged ones', async () => {
    const { broker, drops } = await start();
    const { subscription, got } = await consume(broker, 'jobs', 2);
    for (const payload of ['a', 'b', 'c', 'd', 'e']) publish(broker, 'jobs', payload);
    assert.deepEqual(broker.queues.get('jobs'), { name: 'jobs', depth: 3, consumers: 1, unacknowledged: 2 });

    assert.equal(broker.queues.purge('jobs'), 3);
    assert.deepEqual(broker.queues.get('jobs'), { name: 'jobs', depth: 0, consumers: 1, unacknowledged: 2 });
    assert.deepEqual(drops, [
      ['c', 'purged'],
      ['d', 'purged'],
      ['e', 'purged'],
    ]);

    // What the consumer holds is still its to settle: a NACK puts it back, an ACK frees room.
    assert.equal(subscription.nack(got[0]!.deliveryId), true);
    assert.equal(subscription.ack(got[1]!.deliveryId), true);
    publish(broker, 'jobs', 'f');
    assert.deepEqual(
      got.map((d) => d.message.payload.toString()),
      ['a', 'b', 'a', 'f'],
      'the queue goes on after a purge',
    );
    assert.equal(broker.queues.purge('jobs'), 0, 'nothing waits');
  });

  test('an unknown queue answers undefined and is not made', async () => {
    const { broker } = await start();
    assert.equal(broker.queues.purge('nobody'), undefined);
    assert.equal(broker.queues.get('nobody'), undefined);
  });

  test('durable store: purged messages do not come back after a restart; later ones do', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'cicada-queue-purge-'));
    cleanups.push(() => rm(directory, { recursive: true, force: true }));
    const first = await start(new DurableStore({ directory }));
    await Promise.all(['a', 'b', 'c'].map((p) => publish(first.broker, 'jobs', p).persisted));
    assert.equal(first.broker.queues.purge('jobs'), 3);
    await publish(first.broker, 'jobs', 'kept').persisted;
    await first.broker.close();

    const second = await start(new DurableStore({ directory }));
    assert.deepEqual(second.broker.queues.get('jobs'), {
      name: 'jobs',
      depth: 1,
      consumers: 0,
      unacknowledged: 0,
    });
    const { got } = await consume(second.broker, 'jobs', 0);
    assert.deepEqual(
      got.map((d) => d.message.payload.toString()),
      ['kept'],
    );
    assert.deepEqual([...first.errors, ...second.errors], []);
  });
});
