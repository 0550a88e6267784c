/**
 * Durable store benchmark: how many QoS 1 deliveries per second an engine can persist and
 * then forget, every write fsync'd before its promise resolves, with group commit.
 *
 *   npm run build && node dist/bench/store.js              # every engine that loads, ~1 min
 *   node dist/bench/store.js --quick                       # smoke run
 *   node dist/bench/store.js --ms 3000 --concurrency 1,64,1024 --filter lmdb
 *   STORE_BENCH_MODULES=/tmp/candidates node dist/bench/store.js
 *
 * One delivery is what the broker does for a QoS 1 message to one persistent session:
 * `enqueue` (write the message body and the delivery record, await durability: only then
 * may the broker send PUBACK to the publisher) and, once the subscriber's PUBACK came back,
 * `remove` (delete both, await durability). C workers run that loop concurrently, like C
 * publishing clients; writes issued while a commit is on disk share the next one, so the
 * ops per commit column shows the group commit at work. At C = 1 every write waits for its
 * own fsync: that row is the disk's sync latency.
 *
 * Engines are loaded at run time, from this project's node_modules or else from the
 * directory in STORE_BENCH_MODULES (a scratch `npm install` of the candidates: only lmdb is
 * a dependency), and skipped when they do not load. `cicada DurableStore` is the real store
 * (src/store/durable) through the Store interface: its figures include its session lookup,
 * reference counting and encoding, run inside the write transaction. Data goes to a fresh
 * directory under os.tmpdir(), removed afterwards. The machine's other load moves these
 * figures a lot: compare rows of one run, not runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Message } from '../src/broker/message.js';
import { DurableStore } from '../src/store/durable/lmdb-store.js';
import { formatRate, median, renderTable } from './stats.js';

interface Options {
  ms: number;
  rounds: number;
  concurrency: number[];
  filter: string | undefined;
  payload: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { ms: 2000, rounds: 3, concurrency: [1, 16, 256], filter: undefined, payload: 64 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') {
      opts.ms = 300;
      opts.rounds = 1;
      opts.concurrency = [1, 64];
    } else if (arg === '--ms') opts.ms = Number(value());
    else if (arg === '--rounds') opts.rounds = Number(value());
    else if (arg === '--concurrency') opts.concurrency = value().split(',').map(Number);
    else if (arg === '--filter') opts.filter = value();
    else if (arg === '--payload') opts.payload = Number(value());
    else throw new Error(`unknown option ${arg}`);
  }
  return opts;
}

/** One engine under test, opened on a fresh directory. */
interface Engine {
  /** Persists message `i` and its delivery; resolves once both are on disk. */
  enqueue(i: number): Promise<void>;
  /** Deletes delivery and message `i`; resolves once that is on disk. */
  remove(i: number): Promise<void>;
  /** Commits (fsync'd transactions or batches) so far. */
  commits(): number;
  close(): Promise<void>;
}

interface Candidate {
  name: string;
  /** Why its figures mean what they mean. */
  note: string;
  /** Opens the engine in `dir`, or returns a reason it is not available here. */
  open(dir: string, payload: Buffer): Promise<Engine | string>;
}

// ---------------------------------------------------------------------------------------------
// Loading engines that may not be installed

const moduleBase = process.env['STORE_BENCH_MODULES'];

/** Imports `name` from this project, else from STORE_BENCH_MODULES; the reason it failed otherwise. */
async function load(name: string): Promise<any> {
  let reason = '';
  try {
    return await import(name);
  } catch (error) {
    reason = (error as Error).message.split('\n')[0]!;
  }
  if (moduleBase !== undefined) {
    try {
      const require = createRequire(join(moduleBase, 'node_modules', 'noop.js'));
      return await import(pathToFileURL(require.resolve(name)).href);
    } catch (error) {
      reason = (error as Error).message.split('\n')[0]!;
    }
  }
  return `${name} does not load: ${reason}`;
}

function bodyOf(i: number, payload: Buffer): Buffer {
  // What a stored message costs: topic, payload and a few fields, ~payload + 60 bytes.
  const header = Buffer.from(JSON.stringify({ id: `m-${i}`, topic: `bench/topic/${i % 100}`, qos: 1 }));
  return Buffer.concat([header, payload]);
}

/** A delivery record: message id, qos, flags. */
function deliveryOf(i: number): Buffer {
  return Buffer.from(`m-${i}\u0000\u0001\u0000`);
}

// ---------------------------------------------------------------------------------------------
// Candidates

/**
 * Group commit for engines without their own: operations issued while a batch is being
 * written wait and go together into the next one (one fsync per batch).
 */
class GroupCommitter<Op> {
  #pending: { ops: Op[]; waiters: { resolve: () => void; reject: (e: unknown) => void }[] } = {
    ops: [],
    waiters: [],
  };
  #writing = false;
  #scheduled = false;
  commits = 0;

  constructor(private readonly write: (ops: Op[]) => Promise<void>) {}

  submit(ops: Op[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.ops.push(...ops);
      this.#pending.waiters.push({ resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#writing || this.#pending.ops.length === 0) return;
    const batch = this.#pending;
    this.#pending = { ops: [], waiters: [] };
    this.#writing = true;
    try {
      await this.write(batch.ops);
      this.commits++;
      for (const w of batch.waiters) w.resolve();
    } catch (error) {
      for (const w of batch.waiters) w.reject(error);
    } finally {
      this.#writing = false;
      if (this.#pending.ops.length > 0) this.#schedule();
    }
  }
}

function lmdbCandidate(overlappingSync: boolean): Candidate {
  return {
    name: overlappingSync ? 'lmdb (overlappingSync, await flushed)' : 'lmdb (sync commit)',
    note: overlappingSync
      ? 'commit, then fsync while the next txn runs; promise awaited until flushed'
      : 'fdatasync inside each commit (LMDB default durability)',
    async open(dir, payload) {
      const lmdb = await load('lmdb');
      if (typeof lmdb === 'string') return lmdb;
      const root = lmdb.open({ path: dir, overlappingSync, encoding: 'binary' });
      let commits = 0;
      root.on('aftercommit', () => {
        commits++;
      });
      const write = (p: Promise<unknown>): Promise<void> => {
        if (!overlappingSync) return p.then(() => undefined);
        // Captured now, while the write is in the transaction this flush belongs to.
        const flushed = new Promise<void>((resolve, reject) => root.flushed.then(resolve, reject));
        return p.then(() => flushed);
      };
      return {
        enqueue(i) {
          root.put(`m/${i}`, bodyOf(i, payload));
          return write(root.put(`d/${i % 1000}/${i}`, deliveryOf(i)));
        },
        remove(i) {
          root.remove(`d/${i % 1000}/${i}`);
          return write(root.remove(`m/${i}`));
        },
        commits: () => commits,
        close: () => root.close(),
      };
    },
  };
}

const classicLevel: Candidate = {
  name: 'classic-level',
  note: 'LevelDB write batch with sync: true per group',
  async open(dir, payload) {
    const mod = await load('classic-level');
    if (typeof mod === 'string') return mod;
    const db = new mod.ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.open();
    type Op = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };
    const group = new GroupCommitter<Op>((ops) => db.batch(ops, { sync: true }));
    return {
      enqueue: (i) =>
        group.submit([
          { type: 'put', key: `m/${i}`, value: bodyOf(i, payload) },
          { type: 'put', key: `d/${i % 1000}/${i}`, value: deliveryOf(i) },
        ]),
      remove: (i) =>
        group.submit([
          { type: 'del', key: `d/${i % 1000}/${i}` },
          { type: 'del', key: `m/${i}` },
        ]),
      commits: () => group.commits,
      close: () => db.close(),
    };
  },
};

const betterSqlite: Candidate = {
  name: 'better-sqlite3',
  note: 'WAL, synchronous=FULL, one transaction per group (blocks the event loop while syncing)',
  async open(dir, payload) {
    const mod = await load('better-sqlite3');
    if (typeof mod === 'string') return mod;
    let db: any;
    try {
      db = new mod.default(join(dir, 'bench.db'));
    } catch (error) {
      return `better-sqlite3 does not load: ${(error as Error).message.split('\n')[0]}`;
    }
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID');
    const put = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
    const del = db.prepare('DELETE FROM kv WHERE k = ?');
    type Op = [key: string, value: Buffer | undefined];
    const apply = db.transaction((ops: Op[]) => {
      for (const [k, v] of ops) {
        if (v === undefined) del.run(k);
        else put.run(k, v);
      }
    });
    const group = new GroupCommitter<Op>(async (ops) => apply(ops));
    return {
      enqueue: (i) =>
        group.submit([
          [`m/${i}`, bodyOf(i, payload)],
          [`d/${i % 1000}/${i}`, deliveryOf(i)],
        ]),
      remove: (i) =>
        group.submit([
          [`d/${i % 1000}/${i}`, undefined],
          [`m/${i}`, undefined],
        ]),
      commits: () => group.commits,
      close: async () => db.close(),
    };
  },
};

const T0 = Date.now();

const cicada: Candidate = {
  name: 'cicada DurableStore',
  note: 'the real store: Store API, 1000 sessions, refcounted message bodies, reads in the write txn',
  async open(dir, payload) {
    const store = new DurableStore({ directory: dir });
    await store.open(T0);
    const sessions = 1000;
    for (let s = 0; s < sessions; s++) {
      await store.saveSession({ clientId: `client-${s}`, expiryInterval: 3600, subscriptions: [] });
    }
    const message = (i: number): Message => ({
      id: `m-${i}`,
      topic: `bench/topic/${i % 100}`,
      payload,
      qos: 1,
      retain: false,
      createdAt: T0,
    });
    return {
      enqueue: (i) =>
        store.enqueue(`client-${i % sessions}`, [{ seq: i, message: message(i), qos: 1, retain: false }]),
      remove: (i) => store.removeDelivery(`client-${i % sessions}`, i),
      commits: () => store.stats().commits,
      close: () => store.close(),
    };
  },
};

const candidates: Candidate[] = [
  lmdbCandidate(false),
  lmdbCandidate(true),
  classicLevel,
  betterSqlite,
  cicada,
];

// ---------------------------------------------------------------------------------------------
// Running

interface Sample {
  deliveriesPerSecond: number;
  opsPerCommit: number;
  meanLatencyMs: number;
}

async function measure(engine: Engine, concurrency: number, ms: number, start: number): Promise<Sample> {
  let next = start;
  let done = 0;
  let latency = 0;
  const commits0 = engine.commits();
  const t0 = performance.now();
  const deadline = t0 + ms;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const i = next++;
      const a = performance.now();
      await engine.enqueue(i);
      const b = performance.now();
      await engine.remove(i);
      latency += b - a + (performance.now() - b);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const commits = engine.commits() - commits0;
  return {
    deliveriesPerSecond: done / seconds,
    opsPerCommit: commits === 0 ? Number.NaN : (done * 2) / commits,
    meanLatencyMs: latency / (done * 2),
  };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const payload = Buffer.alloc(opts.payload, 0x61);
  console.log(
    `Durable QoS 1 deliveries (enqueue + remove, each fsync'd), payload ${opts.payload} B, ` +
      `${opts.ms} ms x ${opts.rounds} rounds, median; node ${process.version}, ${cpus().length} cpus, ` +
      `data in ${tmpdir()}`,
  );
  const rows: string[][] = [];
  const skipped: string[] = [];
  let base = 0;
  for (const candidate of candidates) {
    if (opts.filter !== undefined && !candidate.name.includes(opts.filter)) continue;
    for (const concurrency of opts.concurrency) {
      const samples: Sample[] = [];
      for (let round = 0; round < opts.rounds; round++) {
        const dir = mkdtempSync(join(tmpdir(), 'cicada-store-bench-'));
        try {
          const engine = await candidate.open(dir, payload);
          if (typeof engine === 'string') {
            skipped.push(`${candidate.name}: ${engine}`);
            break;
          }
          try {
            await measure(engine, concurrency, Math.min(200, opts.ms / 5), base); // warm-up
            base += 10_000_000;
            samples.push(await measure(engine, concurrency, opts.ms, base));
            base += 10_000_000;
          } finally {
            await engine.close();
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      if (samples.length === 0) break;
      rows.push([
        candidate.name,
        String(concurrency),
        `${formatRate(median(samples.map((s) => s.deliveriesPerSecond)))}/s`,
        `${formatRate(median(samples.map((s) => s.deliveriesPerSecond * 2)))}/s`,
        median(samples.map((s) => s.opsPerCommit)).toFixed(1),
        `${median(samples.map((s) => s.meanLatencyMs)).toFixed(2)} ms`,
      ]);
      console.log(rows.at(-1)!.join('  '));
    }
  }
  console.log();
  console.log(
    renderTable(['engine', 'C', 'deliveries', 'durable writes', 'ops/commit', 'mean write latency'], rows, [
      'left',
      'right',
      'right',
      'right',
      'right',
      'right',
    ]),
  );
  console.log();
  for (const c of candidates) console.log(`- ${c.name}: ${c.note}`);
  for (const s of skipped) console.log(`skipped ${s}`);
}

await main();
