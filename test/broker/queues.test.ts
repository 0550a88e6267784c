import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import type { ClientInfo, DropReason } from '../../src/broker/hooks.js';
import type { AckMode, QueueDelivery, QueueSubscription } from '../../src/broker/queues.js';
import { Session } from '../../src/broker/session.js';
import type { Store } from '../../src/broker/store.js';
import { DurableStore } from '../../src/store/durable/index.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';

/**
 * The queue manager through the broker core's API (`broker.publish` of `$queue/<name>`,
 * `broker.consumeQueue`), with the memory store, and across restarts with the durable one.
 */

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  broker: Broker;
  store: Store;
  errors: unknown[];
  drops: [payload: string, reason: DropReason][];
}

async function start(
  options: Partial<BrokerOptions> = {},
  store: Store = new MemoryStore(),
): Promise<Harness> {
  const errors: unknown[] = [];
  const broker = new Broker({ store, onError: (error) => errors.push(error), ...options });
  const drops: Harness['drops'] = [];
  broker.on('dropped', (message, _clientId, reason) => drops.push([message.payload.toString(), reason]));
  await broker.start();
  cleanups.push(() => broker.close());
  return { broker, store, errors, drops };
}

function publish(broker: Broker, queue: string, payload: string, expiryInterval?: number) {
  const message = broker.createMessage({
    topic: `$queue/${queue}`,
    payload: Buffer.from(payload),
    qos: 1,
    retain: false,
    ...(expiryInterval === undefined ? {} : { expiryInterval }),
  });
  return broker.publish(message);
}

/** A consumer that records what it gets. */
class Recorder {
  readonly got: QueueDelivery[] = [];
  deliver(delivery: QueueDelivery): void {
    this.got.push(delivery);
  }
  get payloads(): string[] {
    return this.got.map((d) => d.message.payload.toString());
  }
  last(): QueueDelivery {
    return this.got.at(-1)!;
  }
}

let sessions = 0;
async function consume(
  broker: Broker,
  queue: string,
  ackMode: AckMode,
  prefetch = 0,
  session = new Session(`s${sessions++}`, 0),
): Promise<{ subscription: QueueSubscription; recorder: Recorder }> {
  const recorder = new Recorder();
  const subscription = await broker.consumeQueue(session, queue, { ackMode, prefetch }, recorder);
  assert.equal(typeof subscription, 'object', `consuming ${queue}: ${String(subscription)}`);
  return { subscription: subscription as QueueSubscription, recorder };
}

describe('queues: dispatch', () => {
  test('each message goes to one consumer, round-robin', async () => {
    const { broker } = await start();
    const a = await consume(broker, 'jobs', 'client-individual');
    const b = await consume(broker, 'jobs', 'client-individual');
    for (let i = 0; i < 6; i++) assert.equal(publish(broker, 'jobs', `m${i}`).matched, 1);
    assert.deepEqual(a.recorder.payloads, ['m0', 'm2', 'm4']);
    assert.deepEqual(b.recorder.payloads, ['m1', 'm3', 'm5']);
    const first = a.recorder.got[0]!;
    assert.equal(first.queue, 'jobs');
    assert.equal(first.message.topic, '$queue/jobs');
    assert.equal(first.deliveryCount, 1);
    assert.equal(first.redelivered, false);
    const ids = [...a.recorder.got, ...b.recorder.got].map((d) => d.deliveryId);
    assert.equal(new Set(ids).size, 6, 'delivery ids are unique');
  });

  test('messages wait for a consumer, and are not routed to topic subscribers', async () => {
    const { broker } = await start();
    publish(broker, 'jobs', 'early');
    assert.deepEqual(broker.queues.get('jobs'), { name: 'jobs', depth: 1, consumers: 0, unacknowledged: 0 });
    const { recorder } = await consume(broker, 'jobs', 'client-individual');
    assert.deepEqual(recorder.payloads, ['early']);
    assert.deepEqual(broker.queues.list(), [{ name: 'jobs', depth: 0, consumers: 1, unacknowledged: 1 }]);
    assert.equal(broker.sessions.size, 0, 'a queue is not a session');
  });

  test('prefetch bounds the unacknowledged deliveries of a consumer', async () => {
    const { broker } = await start();
    const { subscription, recorder } = await consume(broker, 'jobs', 'client-individual', 2);
    for (let i = 0; i < 5; i++) publish(broker, 'jobs', `m${i}`);
    assert.deepEqual(recorder.payloads, ['m0', 'm1']);
    assert.equal(subscription.unacknowledged, 2);
    assert.equal(broker.queues.get('jobs')?.depth, 3);
    assert.equal(subscription.ack(recorder.got[1]!.deliveryId), true);
    assert.deepEqual(recorder.payloads, ['m0', 'm1', 'm2']);
    assert.equal(subscription.ack(recorder.got[1]!.deliveryId), false, 'already acknowledged');
  });

  test('a full consumer is passed over; the default prefetch applies to prefetch 0', async () => {
    const { broker } = await start({ queues: { defaultPrefetch: 1 } });
    const a = await consume(broker, 'jobs', 'client-individual');
    const b = await consume(broker, 'jobs', 'client-individual', 5);
    for (let i = 0; i < 4; i++) publish(broker, 'jobs', `m${i}`);
    assert.deepEqual(a.recorder.payloads, ['m0']);
    assert.deepEqual(b.recorder.payloads, ['m1', 'm2', 'm3']);
  });
});

describe('queues: acknowledgements', () => {
  test('auto acknowledges on delivery: nothing is left, even after a restart', async () => {
    const store = new MemoryStore();
    const first = await start({}, store);
    const { subscription, recorder } = await consume(first.broker, 'jobs', 'auto', 1);
    for (let i = 0; i < 3; i++) publish(first.broker, 'jobs', `m${i}`);
    assert.deepEqual(recorder.payloads, ['m0', 'm1', 'm2'], 'auto is not bounded by prefetch');
    assert.equal(subscription.unacknowledged, 0);
    assert.equal(subscription.ack(recorder.got[0]!.deliveryId), false);
    await first.broker.close();
    const second = await start({}, store);
    assert.equal(second.broker.queues.get('jobs')?.depth, 0);
  });

  test('client acknowledges cumulatively: the delivery and every earlier one', async () => {
    const { broker } = await start();
    const { subscription, recorder } = await consume(broker, 'jobs', 'client', 3);
    for (let i = 0; i < 4; i++) publish(broker, 'jobs', `m${i}`);
    assert.deepEqual(recorder.payloads, ['m0', 'm1', 'm2']);
    assert.equal(subscription.ack(recorder.got[1]!.deliveryId), true);
    assert.equal(subscription.unacknowledged, 2, 'm2, and m3 delivered into the room made');
    assert.deepEqual(recorder.payloads, ['m0', 'm1', 'm2', 'm3']);
    assert.equal(
      subscription.ack(recorder.got[0]!.deliveryId),
      false,
      'already acknowledged by the later one',
    );
  });

  test('client nack redelivers the delivery and every earlier one, in order, counted', async () => {
    const { broker } = await start();
    const { subscription, recorder } = await consume(broker, 'jobs', 'client', 3);
    for (let i = 0; i < 3; i++) publish(broker, 'jobs', `m${i}`);
    assert.equal(subscription.nack(recorder.got[1]!.deliveryId), true);
    assert.deepEqual(recorder.payloads, ['m0', 'm1', 'm2', 'm0', 'm1']);
    assert.deepEqual(
      recorder.got.slice(3).map((d) => [d.deliveryCount, d.redelivered]),
      [
        [2, true],
        [2, true],
      ],
    );
  });

  test('client-individual acknowledges one delivery; its nack goes to the next consumer', async () => {
    const { broker } = await start();
    const a = await consume(broker, 'jobs', 'client-individual');
    const b = await consume(broker, 'jobs', 'client-individual');
    publish(broker, 'jobs', 'm0');
    publish(broker, 'jobs', 'm1');
    publish(broker, 'jobs', 'm2');
    assert.deepEqual(a.recorder.payloads, ['m0', 'm2']);
    assert.equal(a.subscription.ack(a.recorder.got[1]!.deliveryId), true);
    assert.equal(a.subscription.unacknowledged, 1, 'm0 is still unacknowledged');
    assert.equal(a.subscription.nack(a.recorder.got[0]!.deliveryId), true);
    assert.deepEqual(b.recorder.payloads, ['m1', 'm0']);
    assert.equal(b.recorder.last().deliveryCount, 2);
    assert.equal(b.recorder.last().redelivered, true);
    assert.equal(a.subscription.nack(a.recorder.got[0]!.deliveryId), false, 'no longer this consumer’s');
  });

  test('closing a consumer puts its unacknowledged deliveries back at the front, in order', async () => {
    const { broker } = await start();
    const a = await consume(broker, 'jobs', 'client-individual', 2);
    for (let i = 0; i < 3; i++) publish(broker, 'jobs', `m${i}`);
    assert.deepEqual(a.recorder.payloads, ['m0', 'm1']);
    a.subscription.close();
    a.subscription.close();
    assert.equal(a.subscription.ack(a.recorder.got[0]!.deliveryId), false, 'closed');
    assert.deepEqual(broker.queues.get('jobs'), { name: 'jobs', depth: 3, consumers: 0, unacknowledged: 0 });
    const b = await consume(broker, 'jobs', 'client-individual');
    assert.deepEqual(b.recorder.payloads, ['m0', 'm1', 'm2']);
    assert.deepEqual(
      b.recorder.got.map((d) => d.deliveryCount),
      [2, 2, 1],
    );
  });
});

describe('queues: dead letters, expiry, bounds', () => {
  test('a message delivered more than maxRedeliveries + 1 times goes to the dead-letter queue', async () => {
    const { broker } = await start({ queues: { maxRedeliveries: 2 } });
    const { subscription, recorder } = await consume(broker, 'orders', 'client-individual');
    publish(broker, 'orders', 'poison');
    for (let i = 0; i < 3; i++) assert.equal(subscription.nack(recorder.last().deliveryId), true);
    assert.deepEqual(
      recorder.got.map((d) => d.deliveryCount),
      [1, 2, 3],
    );
    assert.equal(broker.queues.get('orders')?.depth, 0);
    assert.equal(broker.queues.get('DLQ.orders')?.depth, 1);
    const dead = await consume(broker, 'DLQ.orders', 'client-individual');
    const delivery = dead.recorder.last();
    assert.equal(delivery.message.payload.toString(), 'poison');
    assert.equal(delivery.message.topic, '$queue/DLQ.orders');
    assert.equal(delivery.deliveryCount, 1);
    // A dead-letter queue keeps what its consumers refuse: no DLQ.DLQ.orders.
    for (let i = 0; i < 5; i++) assert.equal(dead.subscription.nack(dead.recorder.last().deliveryId), true);
    assert.equal(dead.recorder.last().deliveryCount, 6);
    assert.equal(broker.queues.get('DLQ.DLQ.orders'), undefined);
  });

  test('losing the consumer counts as a delivery too: dead-lettered past the bound', async () => {
    const { broker } = await start({ queues: { maxRedeliveries: 0, deadLetterPrefix: 'dead:' } });
    const a = await consume(broker, 'jobs', 'client');
    publish(broker, 'jobs', 'm0');
    a.subscription.close();
    assert.equal(broker.queues.get('jobs')?.depth, 0);
    assert.equal(broker.queues.get('dead:jobs')?.depth, 1);
  });

  test('an expired message is dropped when met, with the dropped event', async () => {
    let clock = 1_000_000;
    const { broker, drops } = await start({ now: () => clock });
    publish(broker, 'jobs', 'stale', 1);
    publish(broker, 'jobs', 'fresh', 60);
    clock += 2_000;
    const { recorder } = await consume(broker, 'jobs', 'client-individual');
    assert.deepEqual(recorder.payloads, ['fresh']);
    assert.deepEqual(drops, [['stale', 'expired']]);
  });

  test('a full queue refuses the message', async () => {
    const { broker, drops } = await start({ queues: { maxMessages: 2 } });
    const { subscription, recorder } = await consume(broker, 'jobs', 'client-individual', 1);
    assert.equal(publish(broker, 'jobs', 'm0').refusal, undefined);
    assert.equal(publish(broker, 'jobs', 'm1').refusal, undefined);
    const refused = publish(broker, 'jobs', 'm2');
    assert.deepEqual(refused, { matched: 0, persisted: undefined, refusal: 'queue-full' });
    assert.deepEqual(drops, [['m2', 'queue-full']]);
    // Unacknowledged messages count: acknowledging one makes room.
    subscription.ack(recorder.last().deliveryId);
    assert.equal(publish(broker, 'jobs', 'm3').refusal, undefined);
  });

  test('queues.maxQueues: a publish, consumer or subscription that would make one more queue is refused', async () => {
    const { broker, drops } = await start({ queues: { maxQueues: 2 } });
    assert.equal(publish(broker, 'a', 'm0').refusal, undefined);
    await consume(broker, 'b', 'client-individual');
    const refused = publish(broker, 'c', 'm1');
    assert.deepEqual(refused, { matched: 0, persisted: undefined, refusal: 'too-many-queues' });
    assert.deepEqual(drops, [['m1', 'queue-full']]);
    const options = { ackMode: 'auto', prefetch: 0 } as const;
    const session = new Session('capped', 0);
    assert.equal(await broker.consumeQueue(session, 'c', options, new Recorder()), 'quota-exceeded');
    const [result] = await broker.subscribe(session, [
      {
        filter: '$queue/c',
        options: { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      },
    ]);
    assert.deepEqual(result && !result.ok ? result.refusal : result, 'quota-exceeded');
    // The queues there still take messages and consumers.
    assert.equal(publish(broker, 'b', 'm2').refusal, undefined);
    assert.equal(typeof (await broker.consumeQueue(session, 'a', options, new Recorder())), 'object');
    assert.equal(broker.queues.get('c'), undefined);
  });

  test('a publish while the broker stops is not taken: its persisted promise rejects', async () => {
    const { broker } = await start();
    const closing = broker.close();
    const result = publish(broker, 'jobs', 'late');
    assert.equal(result.matched, 0);
    await assert.rejects(result.persisted!, /stopping/);
    await closing;
    assert.equal(broker.queues.get('jobs')?.depth ?? 0, 0);
  });

  test('queue names: empty or with wildcards are refused', async () => {
    const { broker } = await start();
    assert.equal(publish(broker, '', 'x').refusal, 'queue-name-invalid');
    const session = new Session('s', 0);
    const consumer = new Recorder();
    const options = { ackMode: 'auto', prefetch: 0 } as const;
    assert.equal(await broker.consumeQueue(session, 'a+', options, consumer), 'wildcards-not-supported');
    assert.equal(await broker.consumeQueue(session, 'a/#', options, consumer), 'wildcards-not-supported');
    assert.equal(await broker.consumeQueue(session, '', options, consumer), 'unspecified');
  });

  test('consuming is authorized as a subscription to $queue/<name>', async () => {
    const asked: string[] = [];
    const { broker } = await start({
      hooks: {
        authorizeSubscribe: (_client, filter, options) => {
          asked.push(`${filter} qos${options.qos}`);
          if (filter === '$queue/partial') return (topic) => topic !== '$queue/partial';
          return filter !== '$queue/secret';
        },
      },
    });
    const session = new Session('c', 0);
    session.client = {
      clientId: 'c',
      protocol: 'stomp',
      protocolVersion: 12,
      keepAlive: 0,
      connectedAt: 0,
    } as ClientInfo;
    const options = { ackMode: 'client', prefetch: 0 } as const;
    assert.equal(await broker.consumeQueue(session, 'secret', options, new Recorder()), 'not-authorized');
    assert.equal(await broker.consumeQueue(session, 'partial', options, new Recorder()), 'not-authorized');
    assert.equal(typeof (await broker.consumeQueue(session, 'open', options, new Recorder())), 'object');
    assert.deepEqual(asked, ['$queue/secret qos1', '$queue/partial qos1', '$queue/open qos1']);
    // A session without a client (the broker's own) is not asked about.
    await consume(broker, 'secret', 'auto');
    assert.equal(asked.length, 3);
  });

  test('a disconnected session loses its consumers: unacknowledged go back', async () => {
    const { broker } = await start();
    const link = { wake: () => {}, close: () => {} };
    const outcome = await broker.connect(
      {
        clientId: 'stomp:1',
        clean: true,
        expiryInterval: 0,
        client: { clientId: 'stomp:1', protocol: 'stomp', protocolVersion: 12, keepAlive: 0, connectedAt: 0 },
      },
      link,
    );
    assert.ok(outcome.ok);
    const { subscription, recorder } = await consume(broker, 'jobs', 'client', 0, outcome.session);
    publish(broker, 'jobs', 'm0');
    assert.equal(recorder.got.length, 1);
    broker.disconnect(outcome.session, link, { reason: 'socket-closed', sendWill: false });
    assert.equal(subscription.unacknowledged, 0);
    assert.deepEqual(broker.queues.get('jobs'), { name: 'jobs', depth: 1, consumers: 0, unacknowledged: 0 });
  });
});

describe('queues: persistence', () => {
  for (const kind of ['memory', 'durable'] as const) {
    test(`${kind} store: messages, order and delivery counts survive a restart`, async () => {
      let open: () => Store;
      if (kind === 'memory') {
        const store = new MemoryStore();
        open = () => store;
      } else {
        const directory = await mkdtemp(join(tmpdir(), 'cicada-queues-'));
        cleanups.push(() => rm(directory, { recursive: true, force: true }));
        open = () => new DurableStore({ directory });
      }
      const first = await start({}, open());
      const { subscription, recorder } = await consume(first.broker, 'jobs', 'client-individual', 2);
      const results = ['a', 'b', 'c', 'd'].map((p) => publish(first.broker, 'jobs', p));
      await Promise.all(results.map((r) => r.persisted));
      assert.deepEqual(recorder.payloads, ['a', 'b']);
      subscription.ack(recorder.got[1]!.deliveryId);
      assert.equal(subscription.nack(recorder.got[2]!.deliveryId), true, 'c goes back, counted');
      // a (delivered once) and c (twice) stay unacknowledged through the stop.
      assert.deepEqual(recorder.payloads, ['a', 'b', 'c', 'c']);
      await first.broker.close();
      assert.deepEqual(first.errors, [], 'no write after the store closed');

      const second = await start({}, open());
      assert.equal(second.broker.sessions.size, 0, 'queue records are not sessions');
      assert.deepEqual(second.broker.queues.get('jobs'), {
        name: 'jobs',
        depth: 3,
        consumers: 0,
        unacknowledged: 0,
      });
      const again = await consume(second.broker, 'jobs', 'client-individual');
      assert.deepEqual(
        again.recorder.got.map((d) => [d.message.payload.toString(), d.deliveryCount, d.redelivered]),
        [
          ['a', 2, true],
          ['c', 3, true],
          ['d', 1, false],
        ],
      );
      for (const d of again.recorder.got) again.subscription.ack(d.deliveryId);
      await second.broker.close();
      const third = await start({}, open());
      assert.equal(third.broker.queues.get('jobs')?.depth, 0, 'acknowledged messages are gone');
      await third.broker.close();
      assert.deepEqual([...second.errors, ...third.errors], []);
    });
  }

  test('a dead-lettered message is stored in its dead-letter queue, no longer in its own', async () => {
    const store = new MemoryStore();
    const first = await start({ queues: { maxRedeliveries: 0 } }, store);
    const { subscription, recorder } = await consume(first.broker, 'orders', 'client-individual');
    await publish(first.broker, 'orders', 'poison').persisted;
    subscription.nack(recorder.last().deliveryId);
    await first.broker.close();
    const second = await start({ queues: { maxRedeliveries: 0 } }, store);
    assert.equal(second.broker.queues.get('orders')?.depth, 0);
    const dead = await consume(second.broker, 'DLQ.orders', 'auto');
    assert.deepEqual(dead.recorder.payloads, ['poison']);
    assert.equal(dead.recorder.last().message.topic, '$queue/DLQ.orders');
  });
});
