/**
 * The contract every Store implementation must pass (see src/store/store.ts). Run it from an
 * implementation's test file with `runStoreContract(name, create)`.
 *
 * What the suite expects beyond the interface's own comments:
 * - `create()` gives a fresh, empty store that has not been opened yet.
 * - `reopen()` closes the store last handed out and returns a not-yet-opened store over the
 *   same data (the same instance for the memory store, a new one on the same directory for a
 *   durable store): that is a broker restart.
 * - `cleanup()` closes whatever is still open and removes the data; `close()` is idempotent.
 * - Values come back as they went in (`assert.deepStrictEqual`): optional fields that were
 *   absent stay absent (not `undefined`), buffers come back as `Buffer`s with the same bytes,
 *   subscription and user-property order is kept. Sessions, retained messages and inbound
 *   QoS 2 ids come back in any order; deliveries come back in seq order.
 * - Delivery and inbound QoS 2 writes for a client id with no saved session, and writes for an
 *   unknown seq, are ignored (the session may have been deleted while the write was queued).
 * - On open, a session is dropped when disconnectedAt + expiryInterval * 1000 <= now (never for
 *   0xFFFFFFFF, nor when disconnectedAt is absent); queued deliveries whose message has
 *   expiresAt <= now are dropped, but sent ones (with a packetId) are kept because onward
 *   delivery has started (MQTT-3.3.2-5, MQTT-4.4.0-1); retained messages with expiresAt <= now
 *   are dropped. What is dropped is gone for good.
 * - Writes other than open/close reject once the store is closed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Message, QoS, SubscriptionOptions } from '../../src/broker/message.js';
import type {
  SessionRecord,
  Store,
  StoredDelivery,
  StoredSession,
  StoredState,
} from '../../src/store/store.js';

export interface StoreHarness {
  /** A fresh, empty store, not yet opened. */
  store: Store;
  /** Closes the current store and returns a not-yet-opened store over the same data. */
  reopen: () => Promise<Store>;
  /** Closes whatever is open and removes the data. */
  cleanup: () => Promise<void>;
}

/** Start time of every test, in ms since the epoch. */
const T0 = 1_700_000_000_000;

interface Fixture {
  /** The store in use: replaced by each restart. */
  store: Store;
  /** Simulates a broker restart: reopens the store and opens it at `now`. */
  restart(now?: number): Promise<StoredState>;
}

let nextId = 0;

/** A message with unique id and topic unless overridden. */
function msg(overrides: Partial<Message> = {}): Message {
  nextId++;
  return {
    id: `m-${nextId}`,
    topic: `t/${nextId}`,
    payload: Buffer.from(`payload ${nextId}`),
    qos: 1,
    retain: false,
    createdAt: T0 - 1000,
    ...overrides,
  };
}

function opts(qos: QoS, extra: Partial<SubscriptionOptions> = {}): SubscriptionOptions {
  return { qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

function record(clientId: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return { clientId, expiryInterval: 3600, subscriptions: [['a/#', opts(1)]], ...extra };
}

function delivery(seq: number, message: Message, extra: Partial<StoredDelivery> = {}): StoredDelivery {
  return { seq, message, qos: message.qos, retain: false, ...extra };
}

function sessionOf(state: StoredState, clientId: string): StoredSession {
  const found = state.sessions.filter((s) => s.record.clientId === clientId);
  assert.equal(found.length, 1, `expected exactly one session '${clientId}'`);
  return found[0]!;
}

function clientIds(state: StoredState): string[] {
  return state.sessions.map((s) => s.record.clientId).sort();
}

function seqs(session: StoredSession): number[] {
  return session.deliveries.map((d) => d.seq);
}

function sortedRetained(state: StoredState): Message[] {
  return [...state.retained].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
}

function sortedInbound(session: StoredSession): number[] {
  return [...session.inboundQoS2].sort((a, b) => a - b);
}

/** Checks a message came back byte-exact and with Buffers where Buffers went in. */
function assertSameMessage(actual: Message, expected: Message): void {
  assert.ok(Buffer.isBuffer(actual.payload), 'payload is a Buffer');
  assert.ok(actual.payload.equals(expected.payload), `payload of ${expected.id} is byte-exact`);
  if (expected.properties?.correlationData !== undefined) {
    assert.ok(Buffer.isBuffer(actual.properties?.correlationData), 'correlationData is a Buffer');
  }
  assert.deepStrictEqual(actual, expected);
}

export function runStoreContract(name: string, create: () => Promise<StoreHarness>): void {
  /** Runs `body` on a fresh, opened store and cleans up whatever happens. */
  async function withStore(body: (f: Fixture) => Promise<void>): Promise<void> {
    const harness = await create();
    const fixture: Fixture = {
      store: harness.store,
      async restart(now = T0) {
        fixture.store = await harness.reopen();
        return fixture.store.open(now);
      },
    };
    try {
      assert.deepStrictEqual(await harness.store.open(T0), { sessions: [], retained: [], expiredWills: [] });
      await body(fixture);
    } finally {
      await harness.cleanup();
    }
  }

  describe(`Store contract: ${name}`, () => {
    test('a fresh store opens empty, and stays empty across a restart', () =>
      withStore(async (f) => {
        assert.deepStrictEqual(await f.restart(), { sessions: [], retained: [], expiredWills: [] });
      }));

    describe('retained messages', () => {
      test('set, replace and delete survive restarts', () =>
        withStore(async (f) => {
          const a1 = msg({ topic: 'a/1', retain: true });
          const a2 = msg({ topic: 'a/2', retain: true });
          const a1b = msg({ topic: 'a/1', retain: true, payload: Buffer.from('replacement') });
          const b = msg({ topic: 'b', retain: true });
          await f.store.setRetained(a1);
          await f.store.setRetained(a2);
          await f.store.setRetained(a1b);
          await f.store.deleteRetained('a/2');
          await f.store.setRetained(b);
          await f.store.deleteRetained('no/such/topic');

          let state = await f.restart();
          assert.deepStrictEqual(sortedRetained(state), [a1b, b]);

          await f.store.deleteRetained('a/1');
          const c = msg({ topic: 'c', retain: true });
          await f.store.setRetained(c);
          state = await f.restart();
          assert.deepStrictEqual(sortedRetained(state), [b, c]);

          state = await f.restart();
          assert.deepStrictEqual(sortedRetained(state), [b, c]);
        }));

      test('topics are told apart exactly (case, unicode, separators)', () =>
        withStore(async (f) => {
          const topics = ['x', 'X', 'x/', '/x', 'x//y', 'ü/🐝', 'a b', '$SYS/x'];
          const messages = topics.map((topic) => msg({ topic, retain: true }));
          for (const m of messages) await f.store.setRetained(m);
          const state = await f.restart();
          assert.deepStrictEqual(
            sortedRetained(state),
            sortedRetained({ sessions: [], retained: messages, expiredWills: [] }),
          );
        }));
    });

    describe('session records', () => {
      test('records round trip with subscriptions, options, disconnect time, will and live will', () =>
        withStore(async (f) => {
          const will = msg({
            topic: 'wills/ü',
            qos: 2,
            retain: true,
            origin: 'full',
            expiresAt: T0 + 86_400_000,
            properties: {
              contentType: 'text/plain',
              responseTopic: 'r',
              correlationData: Buffer.from([0, 1, 0]),
              userProperties: [['k', 'v']],
            },
          });
          const full: SessionRecord = {
            clientId: 'full/ü 1',
            expiryInterval: 3600,
            subscriptions: [
              ['a/+/c', opts(0)],
              [
                '$share/g1/x/#',
                {
                  qos: 2,
                  noLocal: true,
                  retainAsPublished: true,
                  retainHandling: 2,
                  subscriptionId: 268_435_455,
                },
              ],
              [
                '#',
                { qos: 1, noLocal: false, retainAsPublished: true, retainHandling: 1, subscriptionId: 1 },
              ],
              ['z', opts(2, { noLocal: true })],
            ],
            disconnectedAt: T0 - 1000,
            will: { message: will, publishAt: T0 + 5000 },
          };
          const minimal: SessionRecord = {
            clientId: 'minimal',
            expiryInterval: 0xffffffff,
            subscriptions: [],
          };
          // A connected client's will, kept in case the broker stops without closing it.
          const liveWill = msg({ topic: 'wills/live', qos: 1 });
          const connected: SessionRecord = {
            clientId: 'connected',
            expiryInterval: 60,
            subscriptions: [],
            liveWill: { message: liveWill, delay: 30 },
          };
          await f.store.saveSession(full);
          await f.store.saveSession(minimal);
          await f.store.saveSession(connected);

          const state = await f.restart();
          assert.deepStrictEqual(clientIds(state), ['connected', 'full/ü 1', 'minimal']);
          assert.deepStrictEqual(sessionOf(state, 'connected').record, connected);
          assertSameMessage(sessionOf(state, 'connected').record.liveWill!.message, liveWill);
          assert.deepStrictEqual(sessionOf(state, 'full/ü 1').record, full);
          assertSameMessage(sessionOf(state, 'full/ü 1').record.will!.message, will);
          assert.deepStrictEqual(sessionOf(state, 'minimal'), {
            record: minimal,
            deliveries: [],
            inboundQoS2: [],
          });
        }));

      test('saving again replaces the record but keeps deliveries and inbound QoS 2', () =>
        withStore(async (f) => {
          const m = msg();
          await f.store.saveSession(
            record('c', {
              disconnectedAt: T0 - 5,
              will: { message: msg({ topic: 'w' }), publishAt: T0 + 1 },
            }),
          );
          await f.store.enqueue('c', [delivery(1, m)]);
          await f.store.addInboundQoS2('c', 7);
          const replacement = record('c', {
            expiryInterval: 10,
            subscriptions: [['new/topic', opts(2, { subscriptionId: 9 })]],
          });
          await f.store.saveSession(replacement);

          let state = await f.restart();
          let s = sessionOf(state, 'c');
          assert.deepStrictEqual(s.record, replacement);
          assert.deepStrictEqual(s.deliveries, [delivery(1, m)]);
          assert.deepStrictEqual(s.inboundQoS2, [7]);

          // A reconnected client's record (no disconnectedAt) written after a restart.
          const reconnected = record('c', { expiryInterval: 20 });
          await f.store.saveSession(reconnected);
          state = await f.restart();
          s = sessionOf(state, 'c');
          assert.deepStrictEqual(s.record, reconnected);
          assert.deepStrictEqual(s.deliveries, [delivery(1, m)]);
        }));

      test('deleteSession removes the record, its deliveries and its inbound QoS 2 ids', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('gone'));
          await f.store.saveSession(record('kept'));
          const m = msg();
          await f.store.enqueue('gone', [delivery(1, m), delivery(2, msg())]);
          await f.store.enqueue('kept', [delivery(1, m)]);
          await f.store.markSent('gone', 1, 11);
          await f.store.addInboundQoS2('gone', 3);
          await f.store.addInboundQoS2('kept', 3);
          await f.store.deleteSession('gone');
          await f.store.deleteSession('never-existed');

          let state = await f.restart();
          assert.deepStrictEqual(clientIds(state), ['kept']);
          assert.deepStrictEqual(sessionOf(state, 'kept').deliveries, [delivery(1, m)]);
          assert.deepStrictEqual(sessionOf(state, 'kept').inboundQoS2, [3]);

          // A new session under the same client id starts empty.
          await f.store.saveSession(record('gone'));
          state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'gone'), {
            record: record('gone'),
            deliveries: [],
            inboundQoS2: [],
          });
        }));
    });

    describe('deliveries', () => {
      test('enqueued deliveries come back in seq order with their fields', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('c'));
          await f.store.saveSession(record('other'));
          const d = [
            delivery(1, msg({ qos: 0 }), { qos: 0 }),
            delivery(2, msg({ qos: 2 }), { qos: 1, retain: true }),
            delivery(3, msg({ qos: 2 }), { qos: 2, subscriptionIds: [1, 268_435_455] }),
            delivery(4, msg(), { subscriptionIds: [] }),
            delivery(7, msg()),
            delivery(9, msg(), { retain: true, subscriptionIds: [5] }),
            delivery(12, msg()),
          ];
          await f.store.enqueue('c', d.slice(0, 3));
          await f.store.enqueue('other', [delivery(1, msg())]);
          await f.store.enqueue('c', [d[3]!]);
          await f.store.enqueue('c', []);
          await f.store.enqueue('c', d.slice(4));

          let state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, d);

          const later = [delivery(13, msg()), delivery(100, msg())];
          await f.store.enqueue('c', later);
          state = await f.restart();
          assert.deepStrictEqual(seqs(sessionOf(state, 'c')), [1, 2, 3, 4, 7, 9, 12, 13, 100]);
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, [...d, ...later]);
          assert.deepStrictEqual(seqs(sessionOf(state, 'other')), [1]);
        }));

      test('markSent sets the packet id, markReleased the released flag', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('c'));
          const d = [1, 2, 3, 4].map((seq) => delivery(seq, msg({ qos: 2 }), { qos: 2 }));
          await f.store.enqueue('c', d);
          await f.store.markSent('c', 2, 1);
          await f.store.markSent('c', 3, 65535);

          let state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, [
            d[0],
            { ...d[1]!, packetId: 1 },
            { ...d[2]!, packetId: 65535 },
            d[3],
          ]);

          await f.store.markReleased('c', 3);
          await f.store.markSent('c', 4, 2);
          state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, [
            d[0],
            { ...d[1]!, packetId: 1 },
            { ...d[2]!, packetId: 65535, released: true },
            { ...d[3]!, packetId: 2 },
          ]);
        }));

      test('removeDelivery removes queued, in-flight and released deliveries', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('c'));
          const d = [1, 2, 3, 4, 5].map((seq) => delivery(seq, msg()));
          await f.store.enqueue('c', d);
          await f.store.markSent('c', 2, 20);
          await f.store.markSent('c', 3, 30);
          await f.store.markReleased('c', 3);
          await f.store.removeDelivery('c', 1);
          await f.store.removeDelivery('c', 2);
          await f.store.removeDelivery('c', 3);

          let state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, [d[3], d[4]]);

          await f.store.removeDelivery('c', 5);
          state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, [d[3]]);
          await f.store.removeDelivery('c', 4);
          state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, []);
        }));

      test('one message (one id) queued for two sessions comes back for both', () =>
        withStore(async (f) => {
          const shared = msg({ qos: 2, retain: true, properties: { userProperties: [['x', 'y']] } });
          await f.store.saveSession(record('s1'));
          await f.store.saveSession(record('s2'));
          await f.store.setRetained(shared);
          await f.store.enqueue('s1', [delivery(1, shared, { qos: 1, subscriptionIds: [4] })]);
          await f.store.enqueue('s2', [delivery(1, msg()), delivery(5, shared, { qos: 2, retain: true })]);

          let state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 's1').deliveries, [
            delivery(1, shared, { qos: 1, subscriptionIds: [4] }),
          ]);
          assertSameMessage(sessionOf(state, 's2').deliveries[1]!.message, shared);
          assert.deepStrictEqual(
            sessionOf(state, 's2').deliveries[1],
            delivery(5, shared, { qos: 2, retain: true }),
          );

          // Dropping it elsewhere leaves the remaining copy intact.
          await f.store.deleteSession('s1');
          await f.store.deleteRetained(shared.topic);
          state = await f.restart();
          assert.deepStrictEqual(state.retained, []);
          assertSameMessage(sessionOf(state, 's2').deliveries[1]!.message, shared);

          await f.store.removeDelivery('s2', 5);
          state = await f.restart();
          assert.deepStrictEqual(seqs(sessionOf(state, 's2')), [1]);
        }));
    });

    test('inbound QoS 2 ids are added and removed', () =>
      withStore(async (f) => {
        await f.store.saveSession(record('c'));
        await f.store.saveSession(record('d'));
        await f.store.addInboundQoS2('c', 1);
        await f.store.addInboundQoS2('c', 65535);
        await f.store.addInboundQoS2('c', 300);
        await f.store.addInboundQoS2('c', 1);
        await f.store.addInboundQoS2('d', 300);
        await f.store.removeInboundQoS2('c', 300);
        await f.store.removeInboundQoS2('c', 42);

        let state = await f.restart();
        assert.deepStrictEqual(sortedInbound(sessionOf(state, 'c')), [1, 65535]);
        assert.deepStrictEqual(sortedInbound(sessionOf(state, 'd')), [300]);

        await f.store.removeInboundQoS2('c', 1);
        await f.store.addInboundQoS2('c', 2);
        state = await f.restart();
        assert.deepStrictEqual(sortedInbound(sessionOf(state, 'c')), [2, 65535]);
      }));

    test('message fields round trip byte-exact through retained, queues and wills', () =>
      withStore(async (f) => {
        const allBytes = Buffer.alloc(256);
        for (let i = 0; i < 256; i++) allBytes[i] = i;
        const big = Buffer.alloc(256 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
        const messages: Message[] = [
          {
            id: 'empty',
            topic: 'empty',
            payload: Buffer.alloc(0),
            qos: 0,
            retain: false,
            createdAt: T0,
          },
          {
            id: 'binary',
            topic: 'binary',
            payload: Buffer.concat([Buffer.from([0, 0, 0]), allBytes, Buffer.from([0])]),
            qos: 1,
            retain: true,
            createdAt: T0 - 123_456,
            expiresAt: T0 + 3_600_000,
            origin: 'publisher-ü',
            properties: {
              payloadFormatIndicator: false,
              contentType: 'application/octet-stream',
              responseTopic: 'reply/ü/1',
              correlationData: Buffer.from([0, 0xff, 0, 0x0a, 0x0d, 0]),
              userProperties: [
                ['b', '2'],
                ['a', '1'],
                ['b', '1'],
                ['', ''],
                ['ключ', 'значение 🐝'],
                ['nul', 'a\u0000b'],
              ],
            },
          },
          {
            id: 'utf8 id with spaces/ü',
            topic: 'utf8/🐝/x y',
            payload: Buffer.from('héllo 🐝 wörld', 'utf8'),
            qos: 2,
            retain: false,
            createdAt: T0 - 1,
            properties: { payloadFormatIndicator: true, correlationData: Buffer.alloc(0) },
          },
          { id: 'big', topic: 'big', payload: big, qos: 1, retain: false, createdAt: T0 },
          {
            id: 'slice',
            topic: 'slice',
            // A view into a larger buffer: only the viewed bytes belong to the message.
            payload: Buffer.from('xxxxHELLOyyyy').subarray(4, 9),
            qos: 0,
            retain: true,
            createdAt: T0,
            properties: { userProperties: [['only', 'one']] },
          },
        ];
        await f.store.saveSession(record('c'));
        for (const m of messages) await f.store.setRetained(m);
        await f.store.enqueue(
          'c',
          messages.map((m, i) => delivery(i + 1, m)),
        );
        for (const m of messages) {
          await f.store.saveSession(record(`will-${m.id}`, { will: { message: m, publishAt: T0 + 1 } }));
        }

        const state = await f.restart();
        const retained = new Map(state.retained.map((m) => [m.topic, m]));
        const queued = sessionOf(state, 'c').deliveries;
        assert.equal(retained.size, messages.length);
        assert.equal(queued.length, messages.length);
        messages.forEach((m, i) => {
          assertSameMessage(retained.get(m.topic)!, m);
          assertSameMessage(queued[i]!.message, m);
          assertSameMessage(sessionOf(state, `will-${m.id}`).record.will!.message, m);
        });
        assert.equal(retained.get('slice')!.payload.toString(), 'HELLO');
      }));

    describe('expiry on open', () => {
      const T1 = T0 + 60_000;

      test('sessions expired while the broker was down are gone, the others stay', () =>
        withStore(async (f) => {
          const m = msg();
          const will = msg();
          await f.store.saveSession(
            record('expired', {
              expiryInterval: 30,
              disconnectedAt: T0,
              will: { message: will, publishAt: T0 + 10_000 },
            }),
          );
          await f.store.enqueue('expired', [delivery(1, m), delivery(2, msg())]);
          await f.store.markSent('expired', 1, 5);
          await f.store.addInboundQoS2('expired', 9);
          await f.store.saveSession(record('boundary', { expiryInterval: 60, disconnectedAt: T0 }));
          await f.store.saveSession(record('alive', { expiryInterval: 61, disconnectedAt: T0 }));
          await f.store.enqueue('alive', [delivery(1, m)]);
          await f.store.saveSession(
            record('never', { expiryInterval: 0xffffffff, disconnectedAt: T0 - 10 * 365 * 86_400_000 }),
          );
          // Still marked connected when the broker stopped: counts as disconnected at open.
          await f.store.saveSession(record('connected', { expiryInterval: 1 }));

          let state = await f.restart(T1);
          assert.deepStrictEqual(clientIds(state), ['alive', 'connected', 'never']);
          // The expired session's will is due: it comes back to be published.
          assert.deepStrictEqual(state.expiredWills, [will]);
          assert.deepStrictEqual(sessionOf(state, 'alive').deliveries, [delivery(1, m)]);
          assert.deepStrictEqual(
            sessionOf(state, 'connected').record,
            record('connected', { expiryInterval: 1 }),
          );

          // The expired session is gone for good: a new one under its id starts empty.
          await f.store.saveSession(record('expired'));
          state = await f.restart(T1);
          assert.deepStrictEqual(sessionOf(state, 'expired'), {
            record: record('expired'),
            deliveries: [],
            inboundQoS2: [],
          });
          assert.deepStrictEqual(clientIds(state), ['alive', 'connected', 'expired', 'never']);
        }));

      test('an expiry interval of 0xFFFFFFFF never expires', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('never', { expiryInterval: 0xffffffff, disconnectedAt: T0 }));
          await f.store.saveSession(record('almost', { expiryInterval: 0xfffffffe, disconnectedAt: T0 }));
          // Far enough ahead that 0xFFFFFFFF seconds, taken as a plain number, would have passed.
          const state = await f.restart(T0 + 0xffffffff * 1000 + 1);
          assert.deepStrictEqual(clientIds(state), ['never']);
        }));

      test('expired queued and retained messages are dropped; sent deliveries are kept', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('c', { disconnectedAt: T0 }));
          const d = [
            delivery(1, msg({ expiresAt: T1 - 1 })), // expired: dropped
            delivery(2, msg({ expiresAt: T1 })), // expires exactly now: dropped
            delivery(3, msg({ expiresAt: T1 + 1 })), // kept
            delivery(4, msg()), // never expires: kept
            delivery(5, msg({ expiresAt: T0 })), // expired but in flight: kept
            delivery(6, msg({ expiresAt: T0, qos: 2 }), { qos: 2 }), // expired, PUBREL stage: kept
          ];
          await f.store.enqueue('c', d);
          await f.store.markSent('c', 5, 50);
          await f.store.markSent('c', 6, 60);
          await f.store.markReleased('c', 6);
          const r = [
            msg({ topic: 'r/1', expiresAt: T1 }),
            msg({ topic: 'r/2', expiresAt: T1 + 1 }),
            msg({ topic: 'r/3' }),
            msg({ topic: 'r/4', expiresAt: T0 + 1 }),
          ];
          for (const m of r) await f.store.setRetained(m);

          let state = await f.restart(T1);
          assert.deepStrictEqual(sessionOf(state, 'c').deliveries, [
            d[2],
            d[3],
            { ...d[4]!, packetId: 50 },
            { ...d[5]!, packetId: 60, released: true },
          ]);
          assert.deepStrictEqual(sortedRetained(state), [r[1], r[2]]);

          // Later still, the next one expires too.
          state = await f.restart(T1 + 1);
          assert.deepStrictEqual(seqs(sessionOf(state, 'c')), [4, 5, 6]);
          assert.deepStrictEqual(sortedRetained(state), [r[2]]);
        }));
    });

    describe('writes for unknown sessions and seqs', () => {
      test('are ignored', () =>
        withStore(async (f) => {
          const m = msg();
          await f.store.saveSession(record('known'));
          await f.store.enqueue('known', [delivery(1, m)]);
          await f.store.addInboundQoS2('known', 1);

          await f.store.enqueue('ghost', [delivery(1, msg())]);
          await f.store.markSent('ghost', 1, 1);
          await f.store.markReleased('ghost', 1);
          await f.store.removeDelivery('ghost', 1);
          await f.store.addInboundQoS2('ghost', 2);
          await f.store.removeInboundQoS2('ghost', 2);

          await f.store.markSent('known', 99, 3);
          await f.store.markReleased('known', 99);
          await f.store.removeDelivery('known', 99);
          await f.store.removeInboundQoS2('known', 99);

          let state = await f.restart();
          assert.deepStrictEqual(clientIds(state), ['known']);
          assert.deepStrictEqual(sessionOf(state, 'known'), {
            record: record('known'),
            deliveries: [delivery(1, m)],
            inboundQoS2: [1],
          });

          // Saving the ghost later shows nothing of the earlier writes.
          await f.store.saveSession(record('ghost'));
          state = await f.restart();
          assert.deepStrictEqual(sessionOf(state, 'ghost').deliveries, []);
          assert.deepStrictEqual(sessionOf(state, 'ghost').inboundQoS2, []);
        }));

      test('are ignored after the session was deleted', () =>
        withStore(async (f) => {
          await f.store.saveSession(record('c'));
          await f.store.enqueue('c', [delivery(1, msg())]);
          await f.store.deleteSession('c');
          await f.store.enqueue('c', [delivery(2, msg())]);
          await f.store.markSent('c', 1, 1);
          await f.store.addInboundQoS2('c', 4);
          const state = await f.restart();
          assert.deepStrictEqual(state.sessions, []);
        }));
    });

    test('writes for one client are applied in call order without awaiting each', () =>
      withStore(async (f) => {
        const m = [msg(), msg(), msg(), msg()];
        const s = f.store;
        await Promise.all([
          s.saveSession(record('c', { expiryInterval: 1 })),
          s.enqueue('c', [delivery(1, m[0]!), delivery(2, m[1]!)]),
          s.addInboundQoS2('c', 5),
          s.deleteSession('c'),
          s.saveSession(record('c', { expiryInterval: 2 })),
          s.enqueue('c', [delivery(3, m[2]!), delivery(4, m[3]!)]),
          s.markSent('c', 3, 7),
          s.markReleased('c', 3),
          s.markSent('c', 4, 8),
          s.removeDelivery('c', 4),
          s.addInboundQoS2('c', 6),
          s.removeInboundQoS2('c', 6),
          s.addInboundQoS2('c', 9),
          s.saveSession(record('c', { expiryInterval: 3 })),
        ]);
        const state = await f.restart();
        assert.deepStrictEqual(sessionOf(state, 'c'), {
          record: record('c', { expiryInterval: 3 }),
          deliveries: [delivery(3, m[2]!, { packetId: 7, released: true })],
          inboundQoS2: [9],
        });
      }));

    test('1000 sessions with 10 deliveries each round trip', () =>
      withStore(async (f) => {
        const shared = Array.from({ length: 5 }, (_, i) => msg({ topic: `shared/${i}` }));
        const expected = new Map<string, StoredSession>();
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 1000; i++) {
          const clientId = `client-${i}`;
          const rec = record(clientId, {
            disconnectedAt: T0 - i,
            subscriptions: [[`c/${i}/#`, opts((i % 3) as QoS, { subscriptionId: i + 1 })]],
          });
          const deliveries = Array.from({ length: 10 }, (_, j) =>
            delivery(j + 1, j < 5 ? shared[j]! : msg(), { subscriptionIds: [i + 1] }),
          );
          writes.push(f.store.saveSession(rec));
          writes.push(f.store.enqueue(clientId, deliveries.slice(0, 4)));
          writes.push(f.store.enqueue(clientId, deliveries.slice(4)));
          writes.push(f.store.markSent(clientId, 1, (i % 65535) + 1));
          writes.push(f.store.removeDelivery(clientId, 2));
          writes.push(f.store.addInboundQoS2(clientId, i + 1));
          const kept = deliveries.filter((d) => d.seq !== 2);
          kept[0] = { ...kept[0]!, packetId: (i % 65535) + 1 };
          expected.set(clientId, { record: rec, deliveries: kept, inboundQoS2: [i + 1] });
        }
        await Promise.all(writes);

        const state = await f.restart();
        assert.equal(state.sessions.length, 1000);
        for (const session of state.sessions) {
          assert.deepStrictEqual(session, expected.get(session.record.clientId));
        }
      }));

    test('writes reject once the store is closed', () =>
      withStore(async (f) => {
        await f.store.saveSession(record('c'));
        await f.store.close();
        await f.store.close(); // idempotent
        const s = f.store;
        const m = msg();
        const calls: [string, () => Promise<void>][] = [
          ['setRetained', () => s.setRetained(m)],
          ['deleteRetained', () => s.deleteRetained(m.topic)],
          ['saveSession', () => s.saveSession(record('d'))],
          ['deleteSession', () => s.deleteSession('c')],
          ['enqueue', () => s.enqueue('c', [delivery(1, m)])],
          ['markSent', () => s.markSent('c', 1, 1)],
          ['markReleased', () => s.markReleased('c', 1)],
          ['removeDelivery', () => s.removeDelivery('c', 1)],
          ['addInboundQoS2', () => s.addInboundQoS2('c', 1)],
          ['removeInboundQoS2', () => s.removeInboundQoS2('c', 1)],
        ];
        for (const [op, call] of calls) {
          await assert.rejects(call, Error, `${op} after close`);
        }
        // Nothing was written.
        const state = await f.restart();
        assert.deepStrictEqual(state, {
          sessions: [{ record: record('c'), deliveries: [], inboundQoS2: [] }],
          retained: [],
          expiredWills: [],
        });
      }));
  });
}
