import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Message } from '../../src/broker/message.js';
import { MemoryStore, type SessionRecord, type StoredDelivery } from '../../src/store/index.js';
import { runStoreContract } from './contract.js';

runStoreContract('MemoryStore', async () => {
  const store = new MemoryStore();
  return {
    store,
    reopen: async () => {
      await store.close();
      return store;
    },
    cleanup: () => store.close(),
  };
});

const T0 = 1_700_000_000_000;

function message(id: string): Message {
  return {
    id,
    topic: `t/${id}`,
    payload: Buffer.from(id),
    qos: 1,
    retain: false,
    createdAt: T0,
    properties: { userProperties: [['k', 'v']] },
  };
}

function record(): SessionRecord {
  return {
    clientId: 'c',
    expiryInterval: 60,
    subscriptions: [
      ['a/#', { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 3 }],
    ],
    will: { message: message('will'), publishAt: T0 + 1 },
  };
}

describe('MemoryStore specifics', () => {
  // Messages are immutable and shared; everything around them must not be.
  const a = message('a');
  const b = message('b');
  const r = message('r');

  test('mutating the state open() returned does not change the store', async () => {
    const store = new MemoryStore();
    await store.open(T0);
    await store.saveSession(record());
    await store.enqueue('c', [{ seq: 1, message: a, qos: 1, retain: false, subscriptionIds: [3] }]);
    await store.markSent('c', 1, 10);
    await store.addInboundQoS2('c', 4);
    await store.setRetained(r);
    await store.close();
    const expected = {
      sessions: [
        {
          record: record(),
          deliveries: [{ seq: 1, message: a, qos: 1, retain: false, subscriptionIds: [3], packetId: 10 }],
          inboundQoS2: [4],
        },
      ],
      retained: [r],
      expiredWills: [],
    };

    const first = await store.open(T0);
    assert.deepStrictEqual(first, expected);
    const s = first.sessions[0]!;
    s.record.expiryInterval = 1;
    s.record.disconnectedAt = T0;
    s.record.subscriptions[0]![1].qos = 2;
    s.record.subscriptions[0]![1].subscriptionId = 99;
    s.record.subscriptions.push(['b', { qos: 0, noLocal: true, retainAsPublished: true, retainHandling: 2 }]);
    s.record.will!.publishAt = 0;
    s.deliveries[0]!.packetId = 11;
    s.deliveries[0]!.released = true;
    (s.deliveries[0]!.subscriptionIds as number[]).push(7);
    s.deliveries.push({ seq: 2, message: b, qos: 0, retain: false });
    s.inboundQoS2.push(5);
    first.sessions.push({ record: { ...record(), clientId: 'x' }, deliveries: [], inboundQoS2: [] });
    first.retained.length = 0;
    await store.close();

    assert.deepStrictEqual(await store.open(T0), expected);
    await store.close();
  });

  test('mutating objects after passing them in does not change the store', async () => {
    const store = new MemoryStore();
    await store.open(T0);
    const rec = record();
    const d: StoredDelivery & { subscriptionIds: number[] } = {
      seq: 1,
      message: a,
      qos: 1,
      retain: false,
      subscriptionIds: [3],
    };
    const batch: StoredDelivery[] = [d];
    await store.saveSession(rec);
    await store.enqueue('c', batch);
    rec.expiryInterval = 0;
    rec.subscriptions[0]![1].qos = 0;
    rec.subscriptions.length = 0;
    rec.will!.publishAt = 0;
    d.packetId = 5;
    d.subscriptionIds.push(4);
    batch.push({ seq: 2, message: b, qos: 0, retain: false });
    await store.close();

    const state = await store.open(T0);
    assert.deepStrictEqual(state.sessions, [
      {
        record: record(),
        deliveries: [{ seq: 1, message: a, qos: 1, retain: false, subscriptionIds: [3] }],
        inboundQoS2: [],
      },
    ]);
    await store.close();
  });

  test('writes before open reject, and so does opening twice', async () => {
    const store = new MemoryStore();
    await assert.rejects(() => store.saveSession(record()), /not open/);
    await assert.rejects(() => store.setRetained(message('r')), /not open/);
    await store.close(); // closing a store never opened is harmless
    await store.open(T0);
    await assert.rejects(() => store.open(T0), /already open/);
    await store.close();
    await assert.rejects(() => store.enqueue('c', []), /closed/);
  });

  test('deliveries enqueued out of seq order still come back sorted', async () => {
    const store = new MemoryStore();
    await store.open(T0);
    await store.saveSession(record());
    const d = (seq: number): StoredDelivery => ({ seq, message: message(`m${seq}`), qos: 1, retain: false });
    await store.enqueue('c', [d(5), d(2)]);
    await store.enqueue('c', [d(3), d(9), d(1)]);
    await store.close();
    const state = await store.open(T0);
    assert.deepStrictEqual(
      state.sessions[0]!.deliveries.map((x) => x.seq),
      [1, 2, 3, 5, 9],
    );
    await store.close();
  });
});
