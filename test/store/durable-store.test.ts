import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Database, open as openLmdb, type RootDatabase } from 'lmdb';
import type { Message } from '../../src/broker/message.js';
import { DurableStore, StoreError } from '../../src/store/durable/index.js';
import type { SessionRecord, StoredDelivery, StoredState } from '../../src/store/store.js';
import { runStoreContract } from './contract.js';
import { messageOf, payloadOf } from './durable-kill-child.js';

const T0 = 1_700_000_000_000;

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cicada-durable-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

runStoreContract('DurableStore', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'cicada-durable-contract-'));
  let current = new DurableStore({ directory });
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = new DurableStore({ directory });
      return current;
    },
    cleanup: async () => {
      await current.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
});

// ---------------------------------------------------------------------------------------------
// Helpers

function message(id: string, extra: Partial<Message> = {}): Message {
  return {
    id,
    topic: `t/${id}`,
    payload: Buffer.from(`payload ${id}`),
    qos: 1,
    retain: false,
    createdAt: T0,
    ...extra,
  };
}

function record(clientId: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    clientId,
    expiryInterval: 3600,
    subscriptions: [['a/#', { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }]],
    ...extra,
  };
}

function delivery(seq: number, m: Message, extra: Partial<StoredDelivery> = {}): StoredDelivery {
  return { seq, message: m, qos: 1, retain: false, ...extra };
}

/** Opens a fresh store in a new temporary directory. */
async function freshStore(options: { verifyOnOpen?: boolean } = {}): Promise<[DurableStore, string]> {
  const directory = tempDir();
  const store = new DurableStore({ directory, ...options });
  await store.open(T0);
  return [store, directory];
}

/** Runs `body` on the store's raw LMDB tables (the store must be closed). */
function withRaw<T>(directory: string, body: (db: RawTables) => T): T {
  const root = openLmdb<unknown, Buffer>({
    path: directory,
    noSubdir: false,
    overlappingSync: false,
    keyEncoding: 'binary',
  });
  try {
    const table = (name: string): Database<unknown, Buffer> =>
      root.openDB<unknown, Buffer>({
        name,
        keyEncoding: 'binary',
        encoding: 'msgpack',
        useRecords: false,
      } as {
        name: string;
      });
    const meta = root.openDB<unknown, string>({
      name: 'meta',
      keyEncoding: 'ordered-binary',
      encoding: 'msgpack',
      useRecords: false,
    } as { name: string });
    return body({ root, meta, table });
  } finally {
    void root.close();
  }
}

interface RawTables {
  root: RootDatabase<unknown, Buffer>;
  meta: Database<unknown, string>;
  table: (name: string) => Database<unknown, Buffer>;
}

function count(directory: string, name: string): number {
  return withRaw(directory, (db) => db.table(name).getKeysCount());
}

async function assertOpenFails(
  directory: string,
  code: string,
  pattern: RegExp,
  options: { verifyOnOpen?: boolean } = {},
): Promise<void> {
  const store = new DurableStore({ directory, ...options });
  await assert.rejects(
    () => store.open(T0),
    (error: unknown) => {
      assert.ok(error instanceof StoreError, `a StoreError, got ${String(error)}`);
      assert.equal(error.code, code);
      assert.equal(error.directory, directory);
      assert.ok(error.message.includes(directory), `the message names the directory: ${error.message}`);
      assert.match(error.message, pattern);
      return true;
    },
  );
  // A failed open leaves the store unopened: writes still reject.
  await assert.rejects(() => store.saveSession(record('x')), /not open/);
}

// ---------------------------------------------------------------------------------------------

describe('DurableStore specifics', () => {
  test('a new instance on the same directory sees everything; a missing directory is created', async () => {
    const directory = join(tempDir(), 'nested', 'store');
    const first = new DurableStore({ directory });
    assert.deepStrictEqual(await first.open(T0), { sessions: [], retained: [], expiredWills: [] });
    assert.ok(statSync(directory).isDirectory());
    const shared = message('shared', { properties: { correlationData: Buffer.from([0, 1]) } });
    const will = message('will', { qos: 2, expiresAt: T0 + 1_000_000 });
    await first.saveSession(record('c', { disconnectedAt: T0, will: { message: will, publishAt: T0 + 5 } }));
    await first.enqueue('c', [delivery(1, shared), delivery(2, message('m2'))]);
    await first.markSent('c', 1, 42);
    await first.addInboundQoS2('c', 7);
    await first.setRetained(message('r', { topic: 'retained/x', retain: true }));
    await first.close();
    await first.close();

    const expected: StoredState = {
      sessions: [
        {
          record: record('c', { disconnectedAt: T0, will: { message: will, publishAt: T0 + 5 } }),
          deliveries: [delivery(1, shared, { packetId: 42 }), delivery(2, message('m2'))],
          inboundQoS2: [7],
        },
      ],
      retained: [message('r', { topic: 'retained/x', retain: true })],
      expiredWills: [],
    };
    const second = new DurableStore({ directory });
    assert.deepStrictEqual(await second.open(T0), expected);
    await second.close();

    // The same instance can be opened again after closing, like the memory store.
    assert.deepStrictEqual(await second.open(T0), expected);
    await assert.rejects(() => second.open(T0), /already open/);
    await second.close();
  });

  test('a directory is opened by one store at a time in a process', async () => {
    const [store, directory] = await freshStore();
    await assertOpenFails(directory, 'STORE_OPEN', /already open by another DurableStore/);
    await store.close();
    const again = new DurableStore({ directory });
    await again.open(T0);
    await again.close();
  });

  test('writes before open reject', async () => {
    const store = new DurableStore({ directory: tempDir() });
    await assert.rejects(() => store.saveSession(record('c')), /not open/);
    await assert.rejects(() => store.enqueue('c', []), /not open/);
    await store.close(); // harmless
  });

  test('long client ids, topics and message ids (hashed keys) round trip', async () => {
    const [store, directory] = await freshStore();
    const longId = `client-${'ü'.repeat(3000)}`;
    const longTopic = `topic/${'x'.repeat(70_000)}`;
    const m = message(`id-${'y'.repeat(1000)}`, { topic: longTopic, retain: true });
    await store.saveSession(record(longId));
    await store.saveSession(record(`${longId}2`));
    await store.enqueue(longId, [delivery(1, m)]);
    await store.setRetained(m);
    await store.close();
    const state = await new DurableStore({ directory }).open(T0).then(async (s) => s);
    assert.equal(state.sessions.length, 2);
    const session = state.sessions.find((s) => s.record.clientId === longId)!;
    assert.deepStrictEqual(session.deliveries, [delivery(1, m)]);
    assert.deepStrictEqual(state.retained, [m]);
  });

  test('a message body is stored once and deleted with its last reference', async () => {
    const [store, directory] = await freshStore();
    const shared = message('shared', { payload: Buffer.alloc(10_000, 1), retain: true });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      writes.push(store.saveSession(record(`c${i}`)));
      writes.push(store.enqueue(`c${i}`, [delivery(1, shared), delivery(2, message(`own-${i}`))]));
    }
    writes.push(store.setRetained(shared));
    await Promise.all(writes);
    await store.close();
    assert.equal(count(directory, 'messages'), 51, 'one shared body and 50 own ones');
    assert.equal(
      withRaw(directory, (db) =>
        db.table('refs').get(Buffer.concat([Buffer.from([0]), Buffer.from('shared')])),
      ),
      51,
    );

    await store.open(T0);
    for (let i = 0; i < 50; i += 2) await store.deleteSession(`c${i}`);
    for (let i = 1; i < 50; i += 2) await store.removeDelivery(`c${i}`, 1);
    await store.close();
    assert.equal(count(directory, 'messages'), 26, 'the shared body is kept for the retained entry');

    await store.open(T0);
    await store.deleteRetained(shared.topic);
    for (let i = 1; i < 50; i += 2) await store.removeDelivery(`c${i}`, 2);
    await store.close();
    for (const name of ['messages', 'refs', 'deliveries']) assert.equal(count(directory, name), 0, name);
    assert.equal(count(directory, 'records'), 25);
  });

  test('deleteSession removes its whole key range and nothing of its neighbours', async () => {
    const [store, directory] = await freshStore();
    for (const c of ['a', 'b', 'c']) {
      await store.saveSession(record(c));
      await store.enqueue(
        c,
        Array.from({ length: 100 }, (_, i) => delivery(i - 50, message(`${c}-${i}`))),
      );
      for (const p of [1, 2, 65535]) await store.addInboundQoS2(c, p);
    }
    await store.deleteSession('b');
    await store.close();
    assert.equal(count(directory, 'deliveries'), 200);
    assert.equal(count(directory, 'inbound'), 6);
    assert.equal(count(directory, 'messages'), 200);
    const state = await store.open(T0);
    assert.deepStrictEqual(
      state.sessions.map((s) => [s.record.clientId, s.deliveries.length, s.deliveries[0]!.seq]).sort(),
      [
        ['a', 100, -50],
        ['c', 100, -50],
      ],
    );
    await store.close();
  });

  test('expired sessions and messages leave the file at open, bodies included', async () => {
    const [store, directory] = await freshStore();
    await store.saveSession(record('gone', { expiryInterval: 10, disconnectedAt: T0 }));
    await store.saveSession(record('kept', { disconnectedAt: T0 }));
    await store.enqueue('gone', [delivery(1, message('g1')), delivery(2, message('both'))]);
    await store.enqueue('kept', [
      delivery(1, message('both')),
      delivery(2, message('old', { expiresAt: T0 + 5 })),
    ]);
    await store.setRetained(message('r-old', { topic: 'r', expiresAt: T0 + 5 }));
    await store.close();

    const state = await store.open(T0 + 60_000);
    assert.deepStrictEqual(
      state.sessions.map((s) => [s.record.clientId, s.deliveries.map((d) => d.message.id)]),
      [['kept', ['both']]],
    );
    assert.deepStrictEqual(state.retained, []);
    await store.close();
    assert.equal(count(directory, 'messages'), 1);
    assert.equal(count(directory, 'deliveries'), 1);
    assert.equal(count(directory, 'records'), 1);
  });

  test('writes issued together share commits (group commit)', async () => {
    const [store] = await freshStore();
    await store.saveSession(record('c'));
    const before = store.stats();
    const n = 2000;
    await Promise.all(
      Array.from({ length: n }, (_, i) => store.enqueue('c', [delivery(i + 1, message(`g${i}`))])),
    );
    const after = store.stats();
    const operations = after.operations - before.operations;
    const commits = after.commits - before.commits;
    assert.equal(operations, n);
    assert.ok(commits >= 1 && commits <= 20, `${n} writes in ${commits} commits`);
    await store.close();
  });

  describe('write buffer: calls coalesced before their batch is written', () => {
    const rows = (directory: string): number => count(directory, 'deliveries');

    test('an enqueue removed again before its batch is written leaves nothing, and costs no commit', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      await store.enqueue('c', [delivery(1, message('kept'))]);
      const before = store.stats();
      const writes: Promise<void>[] = [];
      for (let seq = 2; seq <= 101; seq++) {
        writes.push(store.enqueue('c', [delivery(seq, message(`gone-${seq}`))]));
        writes.push(store.markSent('c', seq, seq));
        writes.push(store.removeDelivery('c', seq));
      }
      await Promise.all(writes);
      assert.equal(store.stats().commits, before.commits, 'nothing was left to write');
      await store.close();
      assert.equal(rows(directory), 1);
      assert.equal(count(directory, 'messages'), 1);
      assert.equal(count(directory, 'refs'), 1);
      const state = await store.open(T0);
      assert.deepStrictEqual(state.sessions[0]!.deliveries, [delivery(1, message('kept'))]);
      await store.close();
    });

    test('markSent and markReleased of a row still in the buffer are written with it', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      const m = message('q2', { qos: 2 });
      await Promise.all([
        store.enqueue('c', [delivery(1, m, { qos: 2 }), delivery(2, message('q1'))]),
        store.markSent('c', 1, 10),
        store.markReleased('c', 1),
        store.markSent('c', 2, 11),
        store.markSent('c', 2, 12),
      ]);
      await store.close();
      const state = await new DurableStore({ directory }).open(T0);
      assert.deepStrictEqual(state.sessions[0]!.deliveries, [
        delivery(1, m, { qos: 2, packetId: 10, released: true }),
        delivery(2, message('q1'), { packetId: 12 }),
      ]);
    });

    test('an enqueue that replaces a stored seq, removed in the same batch, removes the stored row', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      await store.enqueue('c', [delivery(5, message('old'))]);
      // Seq 5 is not fresh: the stored row (and its body) must go with the removal.
      await Promise.all([store.enqueue('c', [delivery(5, message('new'))]), store.removeDelivery('c', 5)]);
      await store.close();
      for (const name of ['deliveries', 'messages', 'refs']) assert.equal(count(directory, name), 0, name);
    });

    test('after deleteSession, a new session reusing low seqs is not confused with the old one', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      await store.enqueue(
        'c',
        [1, 2, 3].map((seq) => delivery(seq, message(`old-${seq}`))),
      );
      // Deleted and created again in one batch: the old rows must not survive, nor the new ones
      // be taken for fresh while the old ones may still be on disk.
      await Promise.all([
        store.deleteSession('c'),
        store.saveSession(record('c')),
        store.enqueue('c', [delivery(1, message('new-1')), delivery(2, message('new-2'))]),
        store.removeDelivery('c', 1),
      ]);
      // The delete is committed now: low seqs are fresh again and cancel out.
      const before = store.stats().commits;
      await Promise.all([store.enqueue('c', [delivery(3, message('new-3'))]), store.removeDelivery('c', 3)]);
      assert.equal(store.stats().commits, before);
      await store.close();
      const state = await store.open(T0);
      assert.deepStrictEqual(state.sessions[0]!.deliveries, [delivery(2, message('new-2'))]);
      await store.close();
      assert.equal(count(directory, 'messages'), 1);
    });

    test('consecutive saveSession calls keep the last record; inbound ids keep the last operation', async () => {
      const [store, directory] = await freshStore();
      await Promise.all([
        store.saveSession(record('c', { expiryInterval: 1 })),
        store.addInboundQoS2('c', 1),
        store.saveSession(record('c', { expiryInterval: 2 })),
        store.addInboundQoS2('c', 2),
        store.removeInboundQoS2('c', 1),
        store.saveSession(record('c', { expiryInterval: 3 })),
        store.removeInboundQoS2('c', 2),
        store.addInboundQoS2('c', 2),
      ]);
      await store.close();
      const state = await new DurableStore({ directory }).open(T0);
      assert.deepStrictEqual(state.sessions, [
        { record: record('c', { expiryInterval: 3 }), deliveries: [], inboundQoS2: [2] },
      ]);
    });

    test('delivery rows written as raw bytes read back exactly, whatever their size', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      const ids = [
        '',
        'a',
        'x'.repeat(10),
        'x'.repeat(11),
        'y'.repeat(85),
        'y'.repeat(86),
        'z'.repeat(30_000),
      ];
      ids.push('ü', 'ü'.repeat(40), '🐝 id', `${'a'.repeat(63)}é`);
      const shapes: Partial<StoredDelivery>[] = [
        {},
        { subscriptionIds: [] },
        { subscriptionIds: [0, 127, 128, 255, 256, 65535, 65536, 268_435_455] },
        { subscriptionIds: Array.from({ length: 16 }, (_, i) => i * 1000) },
        { packetId: 1 },
        { packetId: 300, released: true },
        { packetId: 65535, qos: 2, retain: true },
      ];
      const expected: StoredDelivery[] = [];
      let seq = 0;
      for (const id of ids) {
        for (const shape of shapes) {
          const m = message(`${id}#${seq}`);
          expected.push(delivery(++seq, m, shape));
        }
      }
      // One call per row (the raw encoder), then markSent on stored rows (decode and re-encode).
      await Promise.all(expected.map((d) => store.enqueue('c', [d])));
      await Promise.all(expected.map((d) => store.markSent('c', d.seq, d.packetId ?? 9)));
      await store.close();
      const state = await new DurableStore({ directory }).open(T0);
      assert.deepStrictEqual(
        state.sessions[0]!.deliveries,
        expected.map((d) => ({ ...d, packetId: d.packetId ?? 9 })),
      );
    });

    test('a call that fails on its own (a stored row that does not decode) fails alone', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      await store.enqueue('c', [delivery(1, message('m1')), delivery(2, message('m2'))]);
      // Damage row 2 behind the store's back (the same process shares LMDB's environment).
      withRaw(directory, (db) => {
        const table = db.table('deliveries');
        const keys = [...table.getKeys()].map((k) => Buffer.from(k));
        table.putSync(keys[1]!, ['not', 'a', 'row']);
      });
      const results = await Promise.allSettled([
        store.markSent('c', 2, 7),
        store.enqueue('c', [delivery(3, message('m3'))]),
        store.markSent('c', 1, 8),
        store.removeDelivery('c', 2),
      ]);
      assert.deepStrictEqual(
        results.map((r) => r.status),
        ['rejected', 'fulfilled', 'fulfilled', 'rejected'],
      );
      for (const result of [results[0], results[3]]) {
        // The markSent was folded into the removal of that row, which fails for both.
        const reason = (result as PromiseRejectedResult).reason as StoreError;
        assert.ok(reason instanceof StoreError);
        assert.equal(reason.code, 'STORE_CORRUPT');
        assert.match(reason.message, /removeDelivery: delivery is not a tuple/);
      }
      await store.close();
      withRaw(directory, (db) => {
        const values = [...db.table('deliveries').getRange()].map((e) => e.value);
        assert.deepStrictEqual(values, [
          ['m1', 1, false, null, 8, null],
          ['not', 'a', 'row'],
          ['m3', 1, false, null, null, null],
        ]);
      });
    });
  });

  test('invalid packet identifiers are rejected without touching the store', async () => {
    const [store] = await freshStore();
    await store.saveSession(record('c'));
    await assert.rejects(() => store.markSent('c', 1, 70_000), RangeError);
    await assert.rejects(() => store.addInboundQoS2('c', -1), RangeError);
    await store.close();
  });

  describe('format', () => {
    test('a newer format version is refused, naming the directory, and nothing is changed', async () => {
      const [store, directory] = await freshStore();
      await store.saveSession(record('c'));
      await store.close();
      withRaw(directory, (db) => db.meta.putSync('format', 2));
      const bytes = readFileSync(join(directory, 'data.mdb'));
      await assertOpenFails(directory, 'STORE_FORMAT', /format 2.*newer Cicada.*reads format 1/);
      assert.ok(readFileSync(join(directory, 'data.mdb')).equals(bytes), 'the file is unchanged');

      withRaw(directory, (db) => db.meta.putSync('format', 'banana'));
      await assertOpenFails(directory, 'STORE_FORMAT', /unknown store format "banana"/);

      // Back at format 1, everything is still there.
      withRaw(directory, (db) => db.meta.putSync('format', 1));
      const state = await new DurableStore({ directory }).open(T0);
      assert.deepStrictEqual(
        state.sessions.map((s) => s.record),
        [record('c')],
      );
    });

    test('an LMDB file that is not a Cicada store is refused', async () => {
      const foreign = tempDir();
      const root = openLmdb({ path: foreign, noSubdir: false, overlappingSync: false });
      root.putSync('hello', 'world');
      await root.close();
      await assertOpenFails(foreign, 'STORE_FORMAT', /not a Cicada store/);

      // Cicada's table names but data without a format marker.
      const [store, unmarked] = await freshStore();
      await store.saveSession(record('c'));
      await store.close();
      withRaw(unmarked, (db) => db.meta.removeSync('format'));
      await assertOpenFails(unmarked, 'STORE_FORMAT', /no format marker/);
    });
  });

  describe('corruption', () => {
    async function populated(): Promise<string> {
      const [store, directory] = await freshStore();
      for (let i = 0; i < 200; i++) {
        await store.saveSession(record(`c${i}`));
        await store.enqueue(`c${i}`, [delivery(1, message(`m${i}`, { payload: Buffer.alloc(500, i) }))]);
      }
      await store.close();
      return directory;
    }

    function damage(directory: string, change: (file: Buffer) => Buffer): void {
      const file = join(directory, 'data.mdb');
      writeFileSync(file, change(readFileSync(file)));
    }

    test('a garbage header is reported, not crashed on', async () => {
      const directory = await populated();
      damage(directory, (b) => b.fill(0x5a, 0, 64));
      await assertOpenFails(directory, 'STORE_CORRUPT', /data\.mdb is damaged: .*meta page/, {
        verifyOnOpen: false,
      });
    });

    test('a truncated file is reported', async () => {
      const directory = await populated();
      damage(directory, (b) => b.subarray(0, Math.floor(b.length / 2)));
      await assertOpenFails(directory, 'STORE_CORRUPT', /truncated/, { verifyOnOpen: false });
    });

    test('garbage in the data pages is caught in a child process, whatever LMDB makes of it', async () => {
      const damages: [string, (b: Buffer) => Buffer][] = [
        ['pages overwritten', (b) => b.fill(0x5a, 2 * 4096)], // crashes LMDB (SIGSEGV)
        ['pages zeroed', (b) => b.fill(0, 2 * 4096)],
        [
          'page headers overwritten',
          (b) => {
            for (let p = 2; p < b.length / 4096; p++) b.fill(0xee, p * 4096, p * 4096 + 24);
            return b;
          },
        ],
      ];
      for (const [what, change] of damages) {
        const directory = await populated();
        damage(directory, change);
        await assertOpenFails(
          directory,
          'STORE_CORRUPT',
          /crashed the verifying process|reading it failed|could be read/,
        );
        void what;
      }
    });

    test('a value that does not decode is reported with its table, and left alone', async () => {
      const directory = await populated();
      withRaw(directory, (db) => {
        const deliveries = db.table('deliveries');
        const first = [...deliveries.getKeys({ limit: 1 })][0]!;
        deliveries.putSync(Buffer.from(first), ['not', 'a', 'delivery']);
      });
      const bytes = readFileSync(join(directory, 'data.mdb'));
      await assertOpenFails(directory, 'STORE_CORRUPT', /delivery.*table deliveries, key [0-9a-f]+/);
      assert.ok(readFileSync(join(directory, 'data.mdb')).equals(bytes), 'nothing was discarded');
    });

    test('a delivery whose message is missing is reported', async () => {
      const directory = await populated();
      withRaw(directory, (db) => {
        db.table('messages').removeSync(Buffer.concat([Buffer.from([0]), Buffer.from('m7')]));
      });
      await assertOpenFails(directory, 'STORE_CORRUPT', /message 'm7' is referenced but missing/);
    });

    test('wrong reference counts and orphan bodies are repaired at open', async () => {
      const directory = await populated();
      const key = (id: string) => Buffer.concat([Buffer.from([0]), Buffer.from(id)]);
      withRaw(directory, (db) => {
        db.table('refs').putSync(key('m1'), 5);
        db.table('refs').removeSync(key('m2'));
        // Counts are derived data: one that does not decode is rebuilt, not reported.
        db.table('refs').putSync(key('m3'), 'banana');
        db.table('refs').putSync(key('no-such-message'), 2);
        db.table('messages').putSync(key('orphan'), [
          'orphan',
          't',
          Buffer.alloc(1),
          0,
          false,
          T0,
          null,
          null,
          null,
        ]);
        db.table('refs').putSync(key('orphan'), 1);
      });
      const store = new DurableStore({ directory });
      const state = await store.open(T0);
      assert.equal(state.sessions.length, 200);
      await store.close();
      withRaw(directory, (db) => {
        assert.equal(db.table('refs').get(key('m1')), 1);
        assert.equal(db.table('refs').get(key('m2')), 1);
        assert.equal(db.table('refs').get(key('m3')), 1);
        assert.equal(db.table('refs').get(key('no-such-message')), undefined);
        assert.equal(db.table('messages').get(key('orphan')), undefined);
        assert.equal(db.table('refs').get(key('orphan')), undefined);
      });
      // m1 is deleted with its one real reference.
      await store.open(T0);
      await store.removeDelivery('c1', 1);
      await store.close();
      withRaw(directory, (db) => assert.equal(db.table('messages').get(key('m1')), undefined));
    });
  });

  test('a failing write (file size limit reached) rejects its promise; the process lives on', async () => {
    const directory = tempDir();
    const script = fileURLToPath(new URL('./durable-full-child.js', import.meta.url));
    const result = await new Promise<{ code: number | null; signal: string | null; out: string }>(
      (resolve) => {
        // RLIMIT_FSIZE of 2 MiB: writes past it fail with EFBIG, like a full disk.
        const child = spawn(
          'sh',
          ['-c', `ulimit -f 4096 && exec "${process.execPath}" "${script}" "${directory}"`],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
        });
        child.stderr.on('data', (chunk: Buffer) => {
          out += chunk.toString();
        });
        child.on('exit', (code, signal) => resolve({ code, signal, out }));
      },
    );
    assert.equal(result.signal, null, result.out);
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /rejected STORE_WRITE/);
    assert.match(result.out, /still usable/);
  });
});

// ---------------------------------------------------------------------------------------------
// Crash test

interface Acked {
  enqueued: Set<number>;
  removed: Set<number>;
  last: number;
}

/** Runs the child until it has acknowledged `killAfter` writes, then SIGKILLs it. */
function runAndKill(
  directory: string,
  writers: number,
  firstSeq: number,
  killAfter: number,
): Promise<{ acked: Map<string, Acked>; lines: number }> {
  const script = fileURLToPath(new URL('./durable-kill-child.js', import.meta.url));
  const child = spawn(process.execPath, [script, directory, String(writers), '1000000', String(firstSeq)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked = new Map<string, Acked>();
  let lines = 0;
  let killed = false;
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    // Every line the child printed is an acknowledged write, including those still in the pipe
    // when it was killed: all of them are read.
    rl.on('line', (line) => {
      if (line === 'ready') return;
      if (line.startsWith('error') || line === 'done') {
        reject(new Error(`child: ${line}`));
        return;
      }
      const [who, seqText] = line.split(' ');
      const removed = who!.startsWith('-');
      const client = removed ? who!.slice(1) : who!;
      const seq = Number(seqText);
      let entry = acked.get(client);
      if (!entry) {
        entry = { enqueued: new Set(), removed: new Set(), last: firstSeq - 1 };
        acked.set(client, entry);
      }
      if (removed) entry.removed.add(seq);
      else {
        entry.enqueued.add(seq);
        entry.last = Math.max(entry.last, seq);
      }
      if (++lines >= killAfter && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited without being killed (${signal})`));
      else resolve({ acked, lines });
    });
  });
}

test('every acknowledged write survives kill -9 at a random point, three crashes in a row', async () => {
  const directory = tempDir();
  const writers = 4;
  /** What must be there, per client: seq → kept. */
  const expected = new Map<string, Set<number>>();
  let firstSeq = 1;
  for (let round = 0; round < 3; round++) {
    const killAfter = 100 + Math.floor(Math.random() * 1500);
    const { acked, lines } = await runAndKill(directory, writers, firstSeq, killAfter);
    assert.ok(lines >= killAfter);

    const store = new DurableStore({ directory }); // verifies the file in a child process too
    const state = await store.open(T0);
    await store.close();
    let maxSeq = firstSeq;
    for (const session of state.sessions) {
      const client = session.record.clientId;
      const a = acked.get(client) ?? {
        enqueued: new Set<number>(),
        removed: new Set<number>(),
        last: firstSeq - 1,
      };
      const must = expected.get(client) ?? new Set<number>();
      for (const s of a.enqueued) if (!a.removed.has(s)) must.add(s);
      const present = new Set(session.deliveries.map((d) => d.seq));
      const seqs = session.deliveries.map((d) => d.seq);
      assert.deepStrictEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
        'seq order',
      );
      for (const s of must) {
        // An acknowledged enqueue whose removal was in flight may be gone.
        const removalInFlight = s === a.last && s % 5 === 0 && !a.removed.has(s);
        if (!removalInFlight)
          assert.ok(present.has(s), `round ${round}: acknowledged ${client} ${s} is present`);
      }
      for (const s of a.removed) assert.ok(!present.has(s), `round ${round}: removed ${client} ${s} is gone`);
      for (const d of session.deliveries) {
        // Nothing else: only acknowledged seqs, or the one write in flight.
        assert.ok(must.has(d.seq) || d.seq === a.last + 1, `round ${round}: ${client} ${d.seq} was written`);
        assert.deepStrictEqual(d.message, messageOf(client, d.seq));
        assert.ok(d.message.payload.equals(payloadOf(client, d.seq)));
        maxSeq = Math.max(maxSeq, d.seq);
      }
      // From now on the state read back is what must survive the next crash.
      expected.set(client, new Set(present));
      maxSeq = Math.max(maxSeq, a.last);
    }
    assert.equal(state.sessions.length, writers);
    firstSeq = maxSeq + 10;
  }
});
