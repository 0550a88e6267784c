import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type { Message } from '../../broker/message.js';
import type { SessionRecord, Store, StoredDelivery, StoredState } from '../store.js';
import { Batch } from './batch.js';
import { CorruptValue, encodeRecord, FORMAT_VERSION, nameKey } from './codec.js';
import { openFailureCode, StoreError } from './errors.js';
import { checkHeader, type HeaderInfo, verifyInChildProcess } from './integrity.js';
import { loadState } from './load.js';
import { openTables, TABLE_NAMES, type Tables, tableNames } from './tables.js';
import { BatchWriter } from './writer.js';

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
   * the cost is a process start plus one raw read of the data at every `open()`.
   */
  verifyOnOpen?: boolean;
  /**
   * Write the expiry sweep at `open()` (default true). With it off, `open()` only reads: the
   * wills of expired sessions are reported again by the next open.
   */
  commitExpirySweep?: boolean;
  /** Told the duration of each commit that wrote something, in seconds (for metrics). */
  onCommit?: (seconds: number) => void;
}

/** Counters for tuning and benchmarks. */
export interface DurableStoreStats {
  /** Write calls that reached the engine. */
  operations: number;
  /** Commits that wrote something (each one fdatasync'd) since the store was opened. */
  commits: number;
}

type State = 'new' | 'opening' | 'open' | 'closed';

/** Directories open in this process: lmdb shares one environment per path, so one store each. */
const openDirectories = new Set<string>();

/**
 * The durable store: an embedded LMDB database (the `lmdb` package) in one directory.
 *
 * Durability and group commit. Each call is appended, synchronously and in call order, to an
 * in-memory batch (batch.ts), where it may be coalesced with earlier calls of the batch (an
 * enqueue and the removal of that delivery cancel out; see there). A batch is written as ONE
 * LMDB write transaction (writer.ts), committed with fdatasync: LMDB's default, synchronous
 * durability (`overlappingSync` and `noSync` are off). One batch is written at a time: a batch
 * is handed to LMDB as soon as there is something to write and no commit is under way, else
 * when the commit under way has finished, and it takes every call made until LMDB starts its
 * transaction. A write's promise resolves after the commit of its batch returned (the commits
 * of all earlier calls returned before), so what the broker acknowledged is on disk and
 * survives `kill -9` and power loss. Each call applies entirely or not at all (its reads come
 * before its writes), and one failing call (a stored value that does not decode: STORE_CORRUPT)
 * does not undo the others of its batch. A commit that fails (disk full, I/O error) rejects
 * the promises of all the calls of its batch with a `StoreError` (STORE_WRITE), and none of
 * them is applied; nothing is thrown out of band.
 *
 * Layout (see codec.ts). Message bodies are stored once, keyed by message id, with a
 * reference count of the deliveries and retained entries that point at them; the body is
 * deleted with its last reference. A session's deliveries are keyed by (session number, seq),
 * so they read back in seq order and `deleteSession` deletes one key range. Wills live inside
 * their session record. Client id → session number is kept in memory after open.
 *
 * Opening. The directory's format version (meta `format`) must be 1: a newer or unknown
 * format, or anything that is not a Cicada store, fails with STORE_FORMAT; a damaged file or
 * a value that does not decode fails with STORE_CORRUPT; either way nothing is changed. Then
 * the same expiry rules as MemoryStore apply (see `open`), and reference counts are checked
 * against the references actually held (a leaked, stale or undecodable count is fixed; a
 * reference to a missing message is STORE_CORRUPT). See load.ts and integrity.ts.
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
  /**
   * Told the duration of each commit that wrote something, in seconds: from LMDB starting the
   * transaction to its fdatasync returning. May be set after construction (metrics come later).
   */
  onCommit: ((seconds: number) => void) | undefined;
  #state: State = 'new';
  #tables: Tables | undefined;
  #operations = 0;
  #commits = 0;
  /** Client id → session number, as committed. */
  #sids = new Map<string, number>();
  /** The next session number to allocate, as committed. */
  #nextSid = 1;
  /**
   * Client id → an upper bound of the seqs enqueued for it so far (absent: none): a seq above
   * it is fresh, no row with it can be on disk. Raised when a batch is handed to LMDB, lowered
   * when a committed deleteSession emptied the session.
   */
  #maxSeq = new Map<string, number>();
  /** The batch collecting calls, if any. */
  #batch: Batch | undefined;
  /** A batch is with LMDB (its transaction queued, running or committing). */
  #writing = false;
  /** Waiting for every batch to be written (close). */
  #idle: (() => void)[] = [];
  readonly #knownMax = (clientId: string): number => this.#maxSeq.get(clientId) ?? Number.NEGATIVE_INFINITY;

  constructor(options: DurableStoreOptions) {
    this.directory = options.directory;
    this.#commitDelay = options.commitDelay ?? 0;
    this.#verifyOnOpen = options.verifyOnOpen ?? true;
    this.#commitExpirySweep = options.commitExpirySweep ?? true;
    this.onCommit = options.onCommit;
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
      tables = await this.#openTables();
      const t = tables;
      const loaded = this.#guard(() => loadState(t, now, this.directory, this.#commitExpirySweep));
      this.#tables = tables;
      this.#sids = loaded.sids;
      this.#maxSeq = loaded.maxSeq;
      this.#nextSid = loaded.nextSid;
      this.#commits = 0;
      this.#operations = 0;
      this.#state = 'open';
      return loaded.state;
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
    if (this.#writing || this.#batch !== undefined) {
      await new Promise<void>((done) => this.#idle.push(done));
    }
    const tables = this.#tables!;
    this.#tables = undefined;
    this.#sids = new Map();
    this.#maxSeq = new Map();
    try {
      await tables.root.close();
    } finally {
      openDirectories.delete(resolve(this.directory));
    }
  }

  setRetained(message: Message): Promise<void> {
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('setRetained');
    return batch.setRetained(message.topic, nameKey(message.topic), message);
  }

  deleteRetained(topic: string): Promise<void> {
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('deleteRetained');
    return batch.deleteRetained(topic, nameKey(topic));
  }

  saveSession(record: SessionRecord): Promise<void> {
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('saveSession');
    return batch.saveSession(record.clientId, nameKey(record.clientId), encodeRecord(record));
  }

  deleteSession(clientId: string): Promise<void> {
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('deleteSession');
    return batch.deleteSession(clientId, nameKey(clientId));
  }

  enqueue(clientId: string, deliveries: readonly StoredDelivery[]): Promise<void> {
    if (deliveries.length === 0) {
      return this.#state === 'open' ? Promise.resolve() : this.#rejectNotOpen('enqueue');
    }
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('enqueue');
    return batch.enqueue(clientId, deliveries);
  }

  markSent(clientId: string, seq: number, packetId: number): Promise<void> {
    if (!isPacketId(packetId)) return Promise.reject(new RangeError(`invalid packet identifier ${packetId}`));
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('markSent');
    return batch.update('markSent', clientId, seq, packetId, false);
  }

  markReleased(clientId: string, seq: number): Promise<void> {
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('markReleased');
    return batch.update('markReleased', clientId, seq, undefined, true);
  }

  removeDelivery(clientId: string, seq: number): Promise<void> {
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('removeDelivery');
    return batch.removeDelivery(clientId, seq);
  }

  addInboundQoS2(clientId: string, packetId: number): Promise<void> {
    if (!isPacketId(packetId)) return Promise.reject(new RangeError(`invalid packet identifier ${packetId}`));
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('addInboundQoS2');
    return batch.inbound(clientId, packetId, true);
  }

  removeInboundQoS2(clientId: string, packetId: number): Promise<void> {
    if (!isPacketId(packetId)) {
      return this.#state === 'open' ? Promise.resolve() : this.#rejectNotOpen('removeInboundQoS2');
    }
    const batch = this.#append();
    if (batch === undefined) return this.#rejectNotOpen('removeInboundQoS2');
    return batch.inbound(clientId, packetId, false);
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  /** The batch to append a call to (starting a commit if none is under way); undefined if not open. */
  #append(): Batch | undefined {
    if (this.#state !== 'open') return undefined;
    this.#operations++;
    let batch = this.#batch;
    if (batch === undefined) {
      batch = new Batch(this.#knownMax);
      this.#batch = batch;
      if (!this.#writing) this.#write();
    }
    return batch;
  }

  #rejectNotOpen(op: string): Promise<void> {
    const why = this.#state === 'closed' ? 'closed' : 'not open';
    return Promise.reject(new Error(`DurableStore.${op}: the store ${this.directory} is ${why}`));
  }

  /**
   * Hands the current batch to LMDB: a transaction whose callback takes the batch as it is
   * when LMDB runs it (calls made until then are in it) and applies it. The callback runs in
   * a child transaction, so that anything unexpected thrown while applying undoes the whole
   * batch instead of committing part of it.
   */
  #write(): void {
    const tables = this.#tables!;
    this.#writing = true;
    let batch: Batch | undefined;
    let writer: BatchWriter | undefined;
    let committed: Promise<unknown>;
    let startedAt = 0;
    try {
      committed = tables.root.childTransaction(() => {
        startedAt = performance.now();
        batch = this.#batch;
        this.#batch = undefined;
        if (batch === undefined) return;
        this.#raiseMaxSeq(batch);
        writer = new BatchWriter(tables, this.#sids, this.#nextSid);
        for (const op of batch.ops) if (op.replacedBy === undefined) writer.apply(op);
        writer.finish();
        batch.applied();
      });
    } catch (error) {
      committed = Promise.reject(error);
    }
    committed.then(
      () => {
        const seconds = (performance.now() - startedAt) / 1000;
        this.#written(batch, writer, undefined);
        if (writer !== undefined && writer.writes > 0) this.#reportCommit(seconds);
      },
      async (error: unknown) => this.#written(batch, writer, await commitFailure(error)),
    );
  }

  /** An observer's failure must not fail the store (nor go unhandled). */
  #reportCommit(seconds: number): void {
    try {
      this.onCommit?.(seconds);
    } catch {}
  }

  /** A batch's transaction settled: update what is known, settle its promises, go on. */
  #written(batch: Batch | undefined, writer: BatchWriter | undefined, failure: unknown): void {
    if (failure !== undefined && batch === undefined) {
      // LMDB failed before taking the batch: fail what is waiting, rather than retry forever.
      batch = this.#batch;
      this.#batch = undefined;
    }
    if (batch !== undefined) {
      if (failure === undefined && writer !== undefined) {
        for (const [clientId, sid] of writer.overlay) {
          if (sid === undefined) this.#sids.delete(clientId);
          else this.#sids.set(clientId, sid);
        }
        this.#nextSid = writer.nextSid;
        this.#lowerMaxSeq(batch);
        if (writer.writes > 0) this.#commits++;
      }
      const commitError = failure === undefined ? undefined : this.#writeError('a batch of writes', failure);
      batch.settle(commitError, writer?.failed ?? [], (op) => this.#writeError(op.name, op.error));
    }
    this.#writing = false;
    if (this.#batch !== undefined && this.#tables !== undefined) this.#write();
    else if (this.#batch === undefined) {
      const idle = this.#idle;
      this.#idle = [];
      for (const done of idle) done();
    }
  }

  /** A batch goes to LMDB: the seqs it enqueues are no longer fresh. */
  #raiseMaxSeq(batch: Batch): void {
    for (const [clientId, state] of batch.clients) {
      if (state.maxSeq > this.#knownMax(clientId)) this.#maxSeq.set(clientId, state.maxSeq);
    }
  }

  /** A committed deleteSession left only the seqs enqueued after it. */
  #lowerMaxSeq(batch: Batch): void {
    for (const [clientId, state] of batch.clients) {
      if (state.deleted === undefined || state.deleted.error !== undefined) continue;
      if (state.maxSeqSinceDelete === Number.NEGATIVE_INFINITY) this.#maxSeq.delete(clientId);
      else this.#maxSeq.set(clientId, state.maxSeqSinceDelete);
    }
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

  async #openTables(): Promise<Tables> {
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
      await verifyInChildProcess(dir);
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
      throw new StoreError(openFailureCode(message), dir, `LMDB cannot open it: ${message}`, {
        cause: error,
      });
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
    const names = tableNames(root);
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

function isPacketId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}
