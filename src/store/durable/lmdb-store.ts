import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { Message } from '../../broker/message.js';
import type { SessionRecord, Store, StoredDelivery, StoredSession, StoredState } from '../store.js';
import {
  CorruptValue,
  type DeliveryRow,
  decodeCount,
  decodeDelivery,
  decodeMessage,
  decodeRecord,
  decodeRetained,
  deliveryKey,
  deliveryRow,
  encodeDelivery,
  encodeMessage,
  encodeRecord,
  FORMAT_VERSION,
  inboundKey,
  MAX_SID,
  nameKey,
  parseSessionKey,
  parseSidKey,
  sidKey,
  toStoredDelivery,
} from './codec.js';
import { StoreError } from './errors.js';
import { checkHeader, type HeaderInfo, verifyInChildProcess } from './integrity.js';

/** Session expiry interval meaning "never expires" (MQTT 3.1.2.11.2). */
const NEVER_EXPIRES = 0xffffffff;

export interface DurableStoreOptions {
  /** Where the data lives (LMDB's data.mdb and lock.mdb); created if missing. */
  directory: string;
  /**
   * Milliseconds to keep collecting writes before a commit starts. 0 (the default) starts
   * it on the next turn of the event loop: the writes issued meanwhile, and all those issued
   * while the previous commit was syncing, share it anyway. A delay above 0 trades latency
   * for fewer, larger commits on slow disks.
   */
  commitDelay?: number;
  /**
   * Before opening, read the whole file in a child process, so that a damaged file crashes
   * that process rather than the broker (LMDB does not checksum its pages). Default true;
   * the cost is a process start plus one read of the data at every `open()`.
   */
  verifyOnOpen?: boolean;
  /**
   * Write the expiry sweep at `open()` (default true). The verifying child turns it off: it
   * only reads, so the wills of expired sessions still reach the broker that opens next.
   */
  commitExpirySweep?: boolean;
}

/** Counters for tuning and benchmarks. */
export interface DurableStoreStats {
  /** Write calls that reached the engine. */
  operations: number;
  /** Commits (each one fdatasync'd) since the store was opened. */
  commits: number;
}

type Table = Database<unknown, Buffer>;

interface Tables {
  root: RootDatabase<unknown, Buffer>;
  meta: Database<unknown, string>;
  sessions: Table;
  records: Table;
  deliveries: Table;
  inbound: Table;
  retained: Table;
  messages: Table;
  refs: Table;
}

const TABLE_NAMES = [
  'meta',
  'sessions',
  'records',
  'deliveries',
  'inbound',
  'retained',
  'messages',
  'refs',
] as const;

type State = 'new' | 'opening' | 'open' | 'closed';

/** Directories open in this process: lmdb shares one environment per path, so one store each. */
const openDirectories = new Set<string>();

/**
 * The durable store: an embedded LMDB database (the `lmdb` package) in one directory.
 *
 * Durability and group commit. Each call becomes one callback of an lmdb asynchronous
 * transaction. A commit starts on the next turn of the event loop (or after `commitDelay`),
 * and every call queued meanwhile, or while the previous commit was syncing, goes into that
 * one LMDB write transaction, committed with fdatasync: LMDB's default, synchronous
 * durability (`overlappingSync` and `noSync` are off). With C writers each awaiting its
 * write, commits carry C writes each (`stats()` counts them; bench/store.ts shows it). A write's
 * promise resolves after that commit returned, so what the broker acknowledged is on disk
 * and survives `kill -9` and power loss. Each call applies entirely or not at all: it reads
 * and validates first and writes only at the end (see `#write`), and one failing call does
 * not undo the others sharing its commit. A commit that fails (disk full, I/O error) rejects
 * the promises of all its writes with a `StoreError` (STORE_WRITE), and none of them is
 * applied; nothing is thrown out of band.
 *
 * Layout (see codec.ts). Message bodies are stored once, keyed by message id, with a
 * reference count of the deliveries and retained entries that point at them; the body is
 * deleted with its last reference. A session's deliveries are keyed by (session number, seq),
 * so they read back in seq order and `deleteSession` deletes one key range. Wills live inside
 * their session record.
 *
 * Opening. The directory's format version (meta `format`) must be 1: a newer or unknown
 * format, or anything that is not a Cicada store, fails with STORE_FORMAT; a damaged file or
 * a value that does not decode fails with STORE_CORRUPT; either way nothing is changed. Then
 * the same expiry rules as MemoryStore apply (see `open`), and reference counts are checked
 * against the references actually held (a leaked or stale count is fixed; a reference to a
 * missing message is STORE_CORRUPT).
 *
 * Semantics otherwise as MemoryStore: writes for an unknown client id or seq are ignored;
 * writes before `open()` or after `close()` reject; `close()` is idempotent and waits for
 * queued writes; a closed store may be opened again. A directory is open in one store at a
 * time within a process (a second open fails with STORE_OPEN); nothing stops another process
 * from opening it too, which must not be done.
 */
export class DurableStore implements Store {
  readonly directory: string;
  readonly #commitDelay: number;
  readonly #verifyOnOpen: boolean;
  readonly #commitExpirySweep: boolean;
  #state: State = 'new';
  #tables: Tables | undefined;
  #operations = 0;
  #commits = 0;

  constructor(options: DurableStoreOptions) {
    this.directory = options.directory;
    this.#commitDelay = options.commitDelay ?? 0;
    this.#verifyOnOpen = options.verifyOnOpen ?? true;
    this.#commitExpirySweep = options.commitExpirySweep ?? true;
  }

  stats(): DurableStoreStats {
    return { operations: this.#operations, commits: this.#commits };
  }

  /**
   * Opens the directory and returns its state, after dropping what expired while the broker
   * was down: sessions whose disconnectedAt + expiryInterval * 1000 <= now (never for
   * 0xFFFFFFFF, nor when disconnectedAt is absent), queued deliveries whose message has
   * expiresAt <= now unless already sent (a packetId: onward delivery has started,
   * MQTT-3.3.2-5, MQTT-4.4.0-1), and retained messages with expiresAt <= now. The drop is
   * committed before `open` resolves.
   */
  async open(now: number): Promise<StoredState> {
    if (this.#state === 'open' || this.#state === 'opening') {
      throw new Error(`DurableStore ${this.directory} is already open`);
    }
    const path = resolve(this.directory);
    if (openDirectories.has(path)) {
      throw new StoreError(
        'STORE_OPEN',
        this.directory,
        'is already open by another DurableStore of this process',
      );
    }
    openDirectories.add(path);
    const previous = this.#state;
    this.#state = 'opening';
    let tables: Tables | undefined;
    try {
      tables = await this.#openTables(now);
      const state = this.#guard(() => this.#load(tables!, now));
      this.#tables = tables;
      this.#commits = 0;
      this.#operations = 0;
      tables.root.on('aftercommit', () => {
        this.#commits++;
      });
      this.#state = 'open';
      return state;
    } catch (error) {
      this.#state = previous;
      if (tables) await tables.root.close().catch(() => undefined);
      openDirectories.delete(path);
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'closed';
    const tables = this.#tables!;
    this.#tables = undefined;
    try {
      await tables.root.close();
    } finally {
      openDirectories.delete(resolve(this.directory));
    }
  }

  setRetained(message: Message): Promise<void> {
    const key = nameKey(message.topic);
    const entry = [message.topic, message.id];
    return this.#write('setRetained', (t, w) => {
      const old = t.retained.get(key);
      const oldId = old === undefined ? undefined : decodeRetained(old)[1];
      if (oldId === message.id) return;
      w.acquire(message);
      if (oldId !== undefined) w.release(oldId);
      w.put(t.retained, key, entry);
    });
  }

  deleteRetained(topic: string): Promise<void> {
    const key = nameKey(topic);
    return this.#write('deleteRetained', (t, w) => {
      const old = t.retained.get(key);
      if (old === undefined) return;
      w.release(decodeRetained(old)[1]);
      w.remove(t.retained, key);
    });
  }

  saveSession(record: SessionRecord): Promise<void> {
    const key = nameKey(record.clientId);
    const value = encodeRecord(record);
    return this.#write('saveSession', (t, w) => {
      let sid = sidOf(t, key);
      if (sid === undefined) {
        const next = t.meta.get('nextSid');
        sid = next === undefined ? 1 : decodeCount(next, 'next session number');
        if (sid > MAX_SID) throw new CorruptValue('session numbers exhausted');
        w.putMeta('nextSid', sid + 1);
        w.put(t.sessions, key, sid);
      }
      w.put(t.records, sidKey(sid), value);
    });
  }

  deleteSession(clientId: string): Promise<void> {
    const key = nameKey(clientId);
    return this.#write('deleteSession', (t, w) => {
      const sid = sidOf(t, key);
      if (sid === undefined) return;
      const range = { start: sidKey(sid), end: sidKey(sid + 1) };
      for (const entry of t.deliveries.getRange(range)) {
        w.release(decodeDelivery(entry.value).messageId);
        w.remove(t.deliveries, Buffer.from(entry.key));
      }
      for (const k of t.inbound.getKeys(range)) w.remove(t.inbound, Buffer.from(k));
      w.remove(t.records, sidKey(sid));
      w.remove(t.sessions, key);
    });
  }

  enqueue(clientId: string, deliveries: readonly StoredDelivery[]): Promise<void> {
    if (deliveries.length === 0) return this.#checkOpen('enqueue');
    const key = nameKey(clientId);
    const rows = deliveries.map((d): [number, DeliveryRow, Message] => [d.seq, deliveryRow(d), d.message]);
    return this.#write('enqueue', (t, w) => {
      const sid = sidOf(t, key);
      if (sid === undefined) return;
      /** Seqs written by this call, for a seq given twice (the first is replaced). */
      const planned = new Map<number, string>();
      for (const [seq, row, message] of rows) {
        const k = deliveryKey(sid, seq);
        const replaced = planned.get(seq) ?? optionalId(t.deliveries.get(k));
        if (replaced !== undefined) w.release(replaced);
        w.acquire(message);
        w.put(t.deliveries, k, encodeDelivery(row));
        planned.set(seq, message.id);
      }
    });
  }

  markSent(clientId: string, seq: number, packetId: number): Promise<void> {
    if (!isPacketId(packetId)) return Promise.reject(new RangeError(`invalid packet identifier ${packetId}`));
    return this.#updateDelivery('markSent', clientId, seq, (row) => {
      row.packetId = packetId;
    });
  }

  markReleased(clientId: string, seq: number): Promise<void> {
    return this.#updateDelivery('markReleased', clientId, seq, (row) => {
      row.released = true;
    });
  }

  removeDelivery(clientId: string, seq: number): Promise<void> {
    const key = nameKey(clientId);
    return this.#write('removeDelivery', (t, w) => {
      const sid = sidOf(t, key);
      if (sid === undefined) return;
      const k = deliveryKey(sid, seq);
      const value = t.deliveries.get(k);
      if (value === undefined) return;
      w.release(decodeDelivery(value).messageId);
      w.remove(t.deliveries, k);
    });
  }

  addInboundQoS2(clientId: string, packetId: number): Promise<void> {
    if (!isPacketId(packetId)) return Promise.reject(new RangeError(`invalid packet identifier ${packetId}`));
    const key = nameKey(clientId);
    return this.#write('addInboundQoS2', (t, w) => {
      const sid = sidOf(t, key);
      if (sid !== undefined) w.put(t.inbound, inboundKey(sid, packetId), true);
    });
  }

  removeInboundQoS2(clientId: string, packetId: number): Promise<void> {
    if (!isPacketId(packetId)) return this.#checkOpen('removeInboundQoS2');
    const key = nameKey(clientId);
    return this.#write('removeInboundQoS2', (t, w) => {
      const sid = sidOf(t, key);
      if (sid !== undefined) w.remove(t.inbound, inboundKey(sid, packetId));
    });
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  #updateDelivery(
    op: string,
    clientId: string,
    seq: number,
    change: (row: DeliveryRow) => void,
  ): Promise<void> {
    const key = nameKey(clientId);
    return this.#write(op, (t, w) => {
      const sid = sidOf(t, key);
      if (sid === undefined) return;
      const k = deliveryKey(sid, seq);
      const value = t.deliveries.get(k);
      if (value === undefined) return;
      const row = decodeDelivery(value);
      change(row);
      w.put(t.deliveries, k, encodeDelivery(row));
    });
  }

  #notOpen(op: string): Error {
    const why = this.#state === 'closed' ? 'closed' : 'not open';
    return new Error(`DurableStore.${op}: the store ${this.directory} is ${why}`);
  }

  #checkOpen(op: string): Promise<void> {
    return this.#state === 'open' ? Promise.resolve() : Promise.reject(this.#notOpen(op));
  }

  /**
   * Queues one store operation into the next commit; resolves once that commit is on disk.
   * `plan` runs later, on this thread, inside lmdb's write transaction: it reads what it
   * needs and records its writes in `w`, which are applied only once it returned. An
   * operation that throws while planning (a value that does not decode) has written nothing,
   * so each operation applies whole or not at all, without the cost of a nested transaction;
   * the others sharing the commit are not affected. `plan` must be synchronous and take the
   * caller's objects from values captured at call time.
   */
  #write(op: string, plan: (t: Tables, w: WriteSet) => void): Promise<void> {
    const tables = this.#tables;
    if (this.#state !== 'open' || tables === undefined) return Promise.reject(this.#notOpen(op));
    this.#operations++;
    let committed: Promise<unknown>;
    try {
      committed = tables.root.transaction(() => {
        const w = new WriteSet(tables);
        plan(tables, w);
        w.apply();
      });
    } catch (error) {
      return Promise.reject(this.#writeError(op, error));
    }
    return committed.then(
      () => undefined,
      async (error: unknown) => {
        throw this.#writeError(op, await commitFailure(error));
      },
    );
  }

  #writeError(op: string, error: unknown): Error {
    if (error instanceof StoreError) return error;
    if (error instanceof CorruptValue) {
      return new StoreError('STORE_CORRUPT', this.directory, `${op}: ${error.message}`, { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new StoreError('STORE_WRITE', this.directory, `${op} was not written: ${message}`, {
      cause: error,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Opening

  async #openTables(now: number): Promise<Tables> {
    const dir = this.directory;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      throw new StoreError('STORE_OPEN', dir, `cannot create the directory: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const header = (): HeaderInfo | undefined => {
      try {
        return checkHeader(dir);
      } catch (error) {
        if (error instanceof StoreError) throw error;
        throw new StoreError('STORE_OPEN', dir, `cannot read the data file: ${(error as Error).message}`, {
          cause: error,
        });
      }
    };
    let info = header();
    if (this.#verifyOnOpen && info !== undefined) {
      await verifyInChildProcess(dir, now);
      info = header(); // re-read: the child opened the file too
    }

    let root: RootDatabase<unknown, Buffer>;
    try {
      root = open<unknown, Buffer>({
        path: dir,
        // A directory even when its name has a dot (lmdb takes 'x.y' for a file by default).
        noSubdir: false,
        // Durable commits: fdatasync inside each commit, before its promises resolve.
        overlappingSync: false,
        noSync: false,
        commitDelay: this.#commitDelay,
        // lmdb's event-turn batching queues a batch-start write whose promise nobody holds: when
        // a commit fails, that promise's rejection goes unhandled and would kill the process.
        // Without it, writes still share commits: everything queued while one commit syncs
        // goes into the next.
        eventTurnBatching: false,
        keyEncoding: 'binary',
        encoding: 'binary',
        maxDbs: 16,
      });
    } catch (error) {
      const message = (error as Error).message;
      const code = /MDB_(INVALID|CORRUPTED|VERSION_MISMATCH|PAGE_NOTFOUND)/.test(message)
        ? 'STORE_CORRUPT'
        : 'STORE_OPEN';
      throw new StoreError(code, dir, `LMDB cannot open it: ${message}`, { cause: error });
    }
    try {
      return this.#guard(() => this.#checkFormat(root, info?.mainEntries ?? 0));
    } catch (error) {
      await root.close().catch(() => undefined);
      throw error;
    }
  }

  /** Runs `read`; an error LMDB raised while reading (a missing page…) means the file is damaged. */
  #guard<T>(read: () => T): T {
    try {
      return read();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new StoreError('STORE_CORRUPT', this.directory, `reading it failed: ${message}`, {
        cause: error,
      });
    }
  }

  /** Checks (or, in a new directory, writes) the format marker and opens the tables. */
  #checkFormat(root: RootDatabase<unknown, Buffer>, mainEntries: number): Tables {
    const dir = this.directory;
    const names: string[] = [];
    // Table names are kept NUL-terminated in the root table.
    for (const key of root.getKeys()) names.push(Buffer.from(key).toString('utf8').replace(/\0$/, ''));
    if (names.length !== mainEntries) {
      // Above all, never take a damaged store for a new, empty one.
      throw new StoreError(
        'STORE_CORRUPT',
        dir,
        `the main table should list ${mainEntries} entries but ${names.length} could be read`,
      );
    }
    const foreign = names.filter((n) => !(TABLE_NAMES as readonly string[]).includes(n));
    if (foreign.length > 0) {
      throw new StoreError(
        'STORE_FORMAT',
        dir,
        `not a Cicada store (its LMDB file holds ${JSON.stringify(foreign.slice(0, 3))}); refusing to use it`,
      );
    }
    let tables: Tables;
    try {
      tables = openTables(root);
    } catch (error) {
      throw new StoreError('STORE_FORMAT', dir, `not a Cicada store: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const format = tables.meta.get('format');
    if (format === FORMAT_VERSION) return tables;
    if (format === undefined) {
      // A new directory, or one whose initialisation was cut short: it must hold nothing.
      for (const name of TABLE_NAMES) {
        if (tables[name].getKeysCount() > 0) {
          throw new StoreError('STORE_FORMAT', dir, `has data but no format marker: not a Cicada store`);
        }
      }
      try {
        root.transactionSync(() => {
          tables.meta.put('format', FORMAT_VERSION);
          tables.meta.put('nextSid', 1);
        });
      } catch (error) {
        throw new StoreError('STORE_WRITE', dir, `cannot initialise: ${(error as Error).message}`, {
          cause: error,
        });
      }
      return tables;
    }
    if (typeof format === 'number' && Number.isInteger(format) && format > FORMAT_VERSION) {
      throw new StoreError(
        'STORE_FORMAT',
        dir,
        `has store format ${format}, written by a newer Cicada; this version reads format ${FORMAT_VERSION}`,
      );
    }
    throw new StoreError(
      'STORE_FORMAT',
      dir,
      `has an unknown store format ${JSON.stringify(format)}; this version reads format ${FORMAT_VERSION}`,
    );
  }

  /** Reads everything, drops what expired, fixes reference counts, and commits that. */
  #load(t: Tables, now: number): StoredState {
    const dir = this.directory;
    const where: { table: string; key: Buffer } = { table: '', key: Buffer.alloc(0) };
    const corrupt = (detail: string, cause?: unknown): StoreError =>
      new StoreError(
        'STORE_CORRUPT',
        dir,
        `${detail} (table ${where.table}, key ${where.key.toString('hex') || '-'})`,
        cause === undefined ? undefined : { cause },
      );
    const decode = <T>(decoder: () => T): T => {
      try {
        return decoder();
      } catch (error) {
        if (error instanceof CorruptValue) throw corrupt(error.message, error);
        throw error;
      }
    };

    // Sessions: the client id index and the records must match one to one.
    where.table = 'sessions';
    const index = new Map<string, number>();
    for (const { key, value } of t.sessions.getRange()) {
      where.key = Buffer.from(key);
      index.set(
        where.key.toString('hex'),
        decode(() => decodeCount(value, 'session number')),
      );
    }
    where.table = 'records';
    interface Loaded extends StoredSession {
      sid: number;
      clientKey: Buffer;
    }
    const sessions = new Map<number, Loaded>();
    let maxSid = 0;
    for (const { key, value } of t.records.getRange()) {
      where.key = Buffer.from(key);
      const sid = decode(() => parseSidKey(key));
      const record = decode(() => decodeRecord(value));
      const clientKey = nameKey(record.clientId);
      const hex = clientKey.toString('hex');
      if (index.get(hex) !== sid)
        throw corrupt(`session '${record.clientId}' is not indexed under its number`);
      index.delete(hex);
      sessions.set(sid, { sid, clientKey, record, deliveries: [], inboundQoS2: [] });
      if (sid > maxSid) maxSid = sid;
    }
    if (index.size > 0) {
      where.table = 'sessions';
      where.key = Buffer.from([...index.keys()][0]!, 'hex');
      throw corrupt('a client id points at a session record that does not exist');
    }

    // Message bodies, decoded once each, on first reference.
    const messages = new Map<string, Message>();
    const messageOf = (id: string): Message => {
      let message = messages.get(id);
      if (message === undefined) {
        const saved = { ...where };
        where.table = 'messages';
        where.key = nameKey(id);
        const value = t.messages.get(where.key);
        if (value === undefined) throw corrupt(`message '${id}' is referenced but missing`);
        message = decode(() => decodeMessage(value));
        if (message.id !== id) throw corrupt(`message '${id}' is stored as '${message.id}'`);
        messages.set(id, message);
        Object.assign(where, saved);
      }
      return message;
    };

    where.table = 'deliveries';
    for (const { key, value } of t.deliveries.getRange()) {
      where.key = Buffer.from(key);
      const [sid, seq] = decode(() => parseSessionKey(key, 'delivery'));
      const session = sessions.get(sid);
      if (session === undefined)
        throw corrupt(`a delivery belongs to session number ${sid}, which does not exist`);
      const row = decode(() => decodeDelivery(value));
      session.deliveries.push(toStoredDelivery(seq, row, messageOf(row.messageId)));
    }
    where.table = 'inbound';
    for (const key of t.inbound.getKeys()) {
      where.key = Buffer.from(key);
      const [sid, packetId] = decode(() => parseSessionKey(key, 'inbound'));
      const session = sessions.get(sid);
      if (session === undefined)
        throw corrupt(`an inbound QoS 2 id belongs to session number ${sid}, which does not exist`);
      session.inboundQoS2.push(packetId);
    }
    where.table = 'retained';
    const retained: { key: Buffer; message: Message }[] = [];
    for (const { key, value } of t.retained.getRange()) {
      where.key = Buffer.from(key);
      const [topic, id] = decode(() => decodeRetained(value));
      if (!nameKey(topic).equals(where.key))
        throw corrupt(`retained topic '${topic}' is stored under another key`);
      const message = messageOf(id);
      if (message.topic !== topic)
        throw corrupt(`retained message '${id}' has topic '${message.topic}', not '${topic}'`);
      retained.push({ key: where.key, message });
    }

    // What expired while the broker was down, and what survives.
    const drop: { table: Table; key: Buffer }[] = [];
    const references = new Map<string, { id: string; count: number }>();
    const reference = (id: string): void => {
      const hex = nameKey(id).toString('hex');
      const entry = references.get(hex);
      if (entry) entry.count++;
      else references.set(hex, { id, count: 1 });
    };
    const state: StoredState = { sessions: [], retained: [], expiredWills: [] };
    for (const session of sessions.values()) {
      const { record, sid } = session;
      const { expiryInterval, disconnectedAt } = record;
      if (
        disconnectedAt !== undefined &&
        expiryInterval !== NEVER_EXPIRES &&
        disconnectedAt + expiryInterval * 1000 <= now
      ) {
        if (record.will !== undefined) state.expiredWills.push(record.will.message);
        drop.push({ table: t.sessions, key: session.clientKey }, { table: t.records, key: sidKey(sid) });
        for (const d of session.deliveries) drop.push({ table: t.deliveries, key: deliveryKey(sid, d.seq) });
        for (const p of session.inboundQoS2) drop.push({ table: t.inbound, key: inboundKey(sid, p) });
        continue;
      }
      const kept: StoredDelivery[] = [];
      for (const d of session.deliveries) {
        if (d.packetId === undefined && isExpiredAt(d.message, now)) {
          drop.push({ table: t.deliveries, key: deliveryKey(sid, d.seq) });
        } else {
          kept.push(d);
          reference(d.message.id);
        }
      }
      state.sessions.push({ record, deliveries: kept, inboundQoS2: session.inboundQoS2 });
    }
    for (const { key, message } of retained) {
      if (isExpiredAt(message, now)) {
        drop.push({ table: t.retained, key });
      } else {
        state.retained.push(message);
        reference(message.id);
      }
    }

    // Reference counts: rewrite those that differ, delete bodies nothing references.
    const put: { table: Table | Database<unknown, string>; key: Buffer | string; value: unknown }[] = [];
    where.table = 'refs';
    for (const { key, value } of t.refs.getRange()) {
      where.key = Buffer.from(key);
      const count = decode(() => decodeCount(value, 'reference count'));
      const hex = where.key.toString('hex');
      const wanted = references.get(hex);
      if (wanted === undefined) drop.push({ table: t.refs, key: where.key });
      else if (wanted.count !== count) put.push({ table: t.refs, key: where.key, value: wanted.count });
    }
    for (const [hex, { count }] of references) {
      if (t.refs.get(Buffer.from(hex, 'hex')) === undefined) {
        put.push({ table: t.refs, key: Buffer.from(hex, 'hex'), value: count });
      }
    }
    for (const key of t.messages.getKeys()) {
      const k = Buffer.from(key);
      if (!references.has(k.toString('hex'))) drop.push({ table: t.messages, key: k });
    }
    if (maxSid > 0) {
      const next = t.meta.get('nextSid');
      if (next === undefined || typeof next !== 'number' || next <= maxSid) {
        put.push({ table: t.meta, key: 'nextSid', value: maxSid + 1 });
      }
    }

    if (this.#commitExpirySweep && (drop.length > 0 || put.length > 0)) {
      try {
        t.root.transactionSync(() => {
          for (const { table, key } of drop) table.remove(key);
          for (const { table, key, value } of put) (table as Table).put(key as Buffer, value);
        });
      } catch (error) {
        throw new StoreError(
          'STORE_WRITE',
          dir,
          `cannot commit the expiry sweep: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    }
    return state;
  }
}

function openTables(root: RootDatabase<unknown, Buffer>): Tables {
  // Plain MessagePack values: msgpackr's record extension off, embedded buffers copied out of
  // LMDB's memory on read.
  const valueOptions = { encoding: 'msgpack', useRecords: false } as const;
  const table = (name: string): Table =>
    root.openDB<unknown, Buffer>({ name, keyEncoding: 'binary', ...valueOptions });
  return {
    root,
    meta: root.openDB<unknown, string>({ name: 'meta', keyEncoding: 'ordered-binary', ...valueOptions }),
    sessions: table('sessions'),
    records: table('records'),
    deliveries: table('deliveries'),
    inbound: table('inbound'),
    retained: table('retained'),
    messages: table('messages'),
    refs: table('refs'),
  };
}

/**
 * When a commit fails, lmdb rejects each write with a generic 'Commit failed' error whose
 * `commitError` is a second promise, rejected with the real cause (EIO, ENOSPC…) and unhandled
 * unless someone listens: left alone it would crash the process as an unhandled rejection.
 * Handles it and returns the real cause when it is there (it is rejected in the same callback
 * as the writes; a turn of the event loop is waited at most).
 */
async function commitFailure(error: unknown): Promise<unknown> {
  const commitError =
    typeof error === 'object' && error !== null ? Reflect.get(error, 'commitError') : undefined;
  if (!(commitError instanceof Promise)) return error;
  const cause: unknown = await Promise.race([
    commitError.then(
      () => undefined,
      (reason: unknown) => reason,
    ),
    new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined))),
  ]);
  if (cause === undefined) return error;
  return cause instanceof Error ? new Error(`commit failed: ${cause.message}`, { cause }) : error;
}

function sidOf(t: Tables, clientKey: Buffer): number | undefined {
  const value = t.sessions.get(clientKey);
  return value === undefined ? undefined : decodeCount(value, 'session number');
}

type Write = [table: Table, key: Buffer, value: unknown] | [table: Table, key: Buffer];

/**
 * The writes of one operation, collected while it plans and applied together at the end.
 * Message references are counted as a net change per message id, so that an operation that
 * both adds and drops references to one message reads and writes its count once.
 */
class WriteSet {
  readonly #t: Tables;
  readonly #writes: Write[] = [];
  #meta: [key: string, value: unknown][] = [];
  readonly #references = new Map<string, { delta: number; message?: Message }>();

  constructor(tables: Tables) {
    this.#t = tables;
  }

  put(table: Table, key: Buffer, value: unknown): void {
    this.#writes.push([table, key, value]);
  }

  remove(table: Table, key: Buffer): void {
    this.#writes.push([table, key]);
  }

  putMeta(key: string, value: unknown): void {
    this.#meta.push([key, value]);
  }

  /** One more reference to `message`: its body is stored with the first. */
  acquire(message: Message): void {
    const entry = this.#references.get(message.id);
    if (entry) {
      entry.delta++;
      entry.message = message;
    } else {
      this.#references.set(message.id, { delta: 1, message });
    }
  }

  /** One reference less to message `id`: its body is deleted with the last. */
  release(id: string): void {
    const entry = this.#references.get(id);
    if (entry) entry.delta--;
    else this.#references.set(id, { delta: -1 });
  }

  /** Reads the reference counts it changes (which may throw), then writes everything. */
  apply(): void {
    const t = this.#t;
    for (const [id, { delta, message }] of this.#references) {
      if (delta === 0) continue;
      const key = nameKey(id);
      const stored = t.refs.get(key);
      const count = stored === undefined ? 0 : decodeCount(stored, 'reference count');
      const next = count + delta;
      if (next <= 0) {
        // A count missing or too low is fixed at the next open; never go below zero.
        if (stored !== undefined) this.#writes.push([t.refs, key], [t.messages, key]);
      } else {
        if (stored === undefined && message !== undefined) {
          this.#writes.push([t.messages, key, encodeMessage(message)]);
        }
        this.#writes.push([t.refs, key, next]);
      }
    }
    for (const [key, value] of this.#meta) t.meta.put(key, value);
    for (const write of this.#writes) {
      if (write.length === 3) write[0].put(write[1], write[2]);
      else write[0].remove(write[1]);
    }
  }
}

/** The message id of a stored delivery row, if there is one. */
function optionalId(value: unknown): string | undefined {
  return value === undefined ? undefined : decodeDelivery(value).messageId;
}

function isPacketId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}

function isExpiredAt(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}
