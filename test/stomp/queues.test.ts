import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IMessage } from '@stomp/stompjs';
import type { IPublishPacket } from 'mqtt';
import { until } from '../helpers/broker.js';
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

describe('STOMP queues', () => {
  let b: StompTestBroker;
  before(async () => {
    b = await startStompBroker({ queues: { maxRedeliveries: 1 } });
  });
  after(() => b.close());

  /** The queue's depth and unacknowledged count, as the broker sees them. */
  function queueState(name: string): { depth: number; unacknowledged: number } | undefined {
    const summary = b.broker.broker.queues.get(name);
    return summary && { depth: summary.depth, unacknowledged: summary.unacknowledged };
  }

  test('each message goes to one consumer, round-robin, and is gone once acknowledged', async () => {
    const producer = await connectStomp({ port: b.port });
    const one = await connectStomp({ port: b.port });
    const two = await connectStomp({ url: b.wsUrl });
    const a = await subscribe(one, '/queue/jobs', { ack: 'client-individual' });
    const c = await subscribe(two, '/queue/jobs', { ack: 'client-individual' });
    for (let i = 0; i < 10; i++) await sendConfirmed(producer, '/queue/jobs', `job${i}`);
    await until(() => a.messages.length + c.messages.length === 10, 'ten deliveries');
    assert.equal(a.messages.length, 5);
    assert.equal(c.messages.length, 5);
    assert.deepEqual(
      [...a.messages, ...c.messages].map((m) => m.body).sort(),
      Array.from({ length: 10 }, (_, i) => `job${i}`).sort(),
    );
    assert.equal(a.messages[0]!.headers.destination, '/queue/jobs');
    for (const message of [...a.messages, ...c.messages]) message.ack();
    await until(() => queueState('jobs')?.unacknowledged === 0, 'all acknowledged');
    assert.deepEqual(queueState('jobs'), { depth: 0, unacknowledged: 0 });
    for (const client of [producer, one, two]) await closeStomp(client);
  });

  test('NACK redelivers (redelivered, delivery-count), then dead-letters; a lost consumer gives its messages back', async () => {
    const producer = await connectStomp({ port: b.port });
    const consumer = await connectStomp({ port: b.port });
    const inbox = await subscribe(consumer, '/queue/retry', { ack: 'client-individual' });
    await sendConfirmed(producer, '/queue/retry', 'flaky');
    const first = await within(inbox.next(), 'first delivery');
    assert.equal(first.headers.redelivered, undefined);
    first.nack();
    const second = await within(inbox.next(), 'redelivery');
    assert.equal(second.body, 'flaky');
    assert.equal(second.headers.redelivered, 'true');
    assert.equal(second.headers['delivery-count'], '2');
    // maxRedeliveries 1: a second NACK sends it to the dead-letter queue.
    second.nack();
    const dead = await subscribe(consumer, '/queue/DLQ.retry');
    assert.equal((await within(dead.next(), 'dead-lettered')).body, 'flaky');

    // A consumer that goes without acknowledging: its message goes to the next one.
    const lost = await RawStomp.connect(b.port);
    lost.send('SUBSCRIBE', [
      ['id', '0'],
      ['destination', '/queue/handover'],
      ['ack', 'client'],
    ]);
    await sendConfirmed(producer, '/queue/handover', 'h1');
    const delivered = await lost.nextFrame(1);
    assert.equal(delivered.command, 'MESSAGE');
    lost.close();
    const heir = await connectStomp({ url: b.wsUrl });
    const inherited = await subscribe(heir, '/queue/handover', { ack: 'client' });
    const got = await within(inherited.next(), 'the handed-over message');
    assert.equal(got.body, 'h1');
    assert.equal(got.headers.redelivered, 'true');
    for (const client of [producer, consumer, heir]) await closeStomp(client);
  });

  test('prefetch-count bounds what a consumer holds unacknowledged; client acks are cumulative', async () => {
    const producer = await connectStomp({ port: b.port });
    const consumer = await connectStomp({ port: b.port });
    const inbox = await subscribe(consumer, '/queue/slow', { ack: 'client', 'prefetch-count': '2' });
    for (let i = 0; i < 5; i++) await sendConfirmed(producer, '/queue/slow', `s${i}`);
    await within(inbox.next(1), 'two deliveries');
    assert.deepEqual(queueState('slow'), { depth: 3, unacknowledged: 2 });
    assert.equal(inbox.messages.length, 2);
    // Cumulative: acknowledging the second settles both.
    inbox.messages[1]!.ack();
    await within(inbox.next(3), 'two more');
    await until(() => queueState('slow')?.depth === 1, 'one left waiting');
    assert.deepEqual(queueState('slow'), { depth: 1, unacknowledged: 2 });
    for (const client of [producer, consumer]) await closeStomp(client);
  });

  test('auto acknowledgement takes messages off the queue as they are written', async () => {
    const producer = await connectStomp({ port: b.port });
    for (let i = 0; i < 20; i++) producer.publish({ destination: '/queue/auto', body: `a${i}` });
    await sendConfirmed(producer, '/queue/auto', 'last');
    const consumer = await connectStomp({ port: b.port });
    const inbox = await subscribe(consumer, '/queue/auto', { 'prefetch-count': '3' });
    await within(inbox.next(20), 'every message');
    assert.deepEqual(
      inbox.messages.map((m) => m.body),
      [...Array.from({ length: 20 }, (_, i) => `a${i}`), 'last'],
    );
    await until(() => queueState('auto')?.unacknowledged === 0, 'nothing unacknowledged');
    assert.deepEqual(queueState('auto'), { depth: 0, unacknowledged: 0 });
    for (const client of [producer, consumer]) await closeStomp(client);
  });

  test('ACKs inside a transaction: aborted ones do not count, committed ones do', async () => {
    const producer = await connectStomp({ port: b.port });
    const consumer = await connectStomp({ port: b.port });
    const inbox = await subscribe(consumer, '/queue/txq', { ack: 'client-individual' });
    await sendConfirmed(producer, '/queue/txq', 't1');
    const message: IMessage = await within(inbox.next(), 't1');
    const aborted = consumer.begin();
    message.ack({ transaction: aborted.id });
    aborted.abort();
    const committed = consumer.begin();
    const sent = consumer.begin();
    consumer.publish({ destination: '/queue/txq', body: 't2', headers: { transaction: sent.id } });
    await sendConfirmed(consumer, '/topic/sync', 'sync');
    assert.deepEqual(queueState('txq'), { depth: 0, unacknowledged: 1 });
    message.ack({ transaction: committed.id });
    committed.commit();
    sent.commit();
    assert.equal((await within(inbox.next(), 't2')).body, 't2');
    await until(() => queueState('txq')?.unacknowledged === 1, 't1 acknowledged, t2 not yet');
    for (const client of [producer, consumer]) await closeStomp(client);
  });

  test('MQTT reaches the same queues: $queue/<name> both ways', async () => {
    const mqtt = mqttConnect(b.mqttUrl, { protocolVersion: 5, clientId: id('mqtt') });
    const received: IPublishPacket[] = [];
    mqtt.on('message', (_t, _p, packet) => received.push(packet));
    await connackOf(mqtt);
    const stomp = await connectStomp({ port: b.port });
    const inbox = await subscribe(stomp, '/queue/orders', { ack: 'client-individual' });
    await mqtt.publishAsync('$queue/orders', 'from mqtt', {
      qos: 1,
      properties: { userProperties: { order: '17' } },
    });
    const message = await within(inbox.next(), 'the MQTT message');
    assert.equal(message.body, 'from mqtt');
    assert.equal(message.headers.destination, '/queue/orders');
    assert.equal(message.headers.order, '17');
    message.ack();
    await mqtt.subscribeAsync('$queue/invoices', { qos: 1 });
    await sendConfirmed(stomp, '/queue/invoices', 'from stomp', { 'x-k': 'v' });
    await until(() => received.length === 1, 'the STOMP message over MQTT');
    assert.equal(received[0]!.topic, '$queue/invoices');
    assert.deepEqual({ ...received[0]!.properties?.userProperties }, { 'x-k': 'v' });
    await closeStomp(stomp);
    await mqtt.endAsync();
  });

  test('an expired message is not delivered; expires: 0 never expires', async () => {
    const producer = await connectStomp({ port: b.port });
    const expiresAt = Date.now() + 30;
    await sendConfirmed(producer, '/queue/fresh', 'stale', { expires: String(expiresAt) });
    await sendConfirmed(producer, '/queue/fresh', 'kept', { expires: '0' });
    await until(() => Date.now() > expiresAt, 'the expiry time');
    const consumer = await connectStomp({ port: b.port });
    const inbox = await subscribe(consumer, '/queue/fresh');
    assert.equal((await within(inbox.next(), 'the unexpired one')).body, 'kept');
    assert.equal(inbox.messages.length, 1);
    for (const client of [producer, consumer]) await closeStomp(client);
  });
});

describe('STOMP queue limits and durability', () => {
  test('a full queue refuses a SEND with an ERROR', async () => {
    const b = await startStompBroker({ queues: { maxMessages: 2 } });
    try {
      const raw = await RawStomp.connect(b.port);
      for (const n of [1, 2, 3])
        raw.send(
          'SEND',
          [
            ['destination', '/queue/small'],
            ['receipt', `r${n}`],
          ],
          `m${n}`,
        );
      const frames = await raw.untilClosed();
      assert.deepEqual(
        frames.map((f) => f.command),
        ['CONNECTED', 'RECEIPT', 'RECEIPT', 'ERROR'],
      );
      assert.equal(header(frames[3]!, 'message'), '/queue/small is full: message not accepted');
      assert.equal(header(frames[3]!, 'receipt-id'), 'r3');
    } finally {
      await b.close();
    }
  });

  test('a receipted SEND to a queue survives a restart', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'cicada-stomp-'));
    try {
      const first = await startStompBroker({ dataDir });
      const producer = await connectStomp({ port: first.port });
      await sendConfirmed(producer, '/queue/durable', 'kept across restarts');
      await closeStomp(producer);
      await first.close();
      const second = await startStompBroker({ dataDir });
      try {
        const consumer = await connectStomp({ port: second.port });
        const inbox = await subscribe(consumer, '/queue/durable');
        assert.equal((await within(inbox.next(), 'the stored message')).body, 'kept across restarts');
        await closeStomp(consumer);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
