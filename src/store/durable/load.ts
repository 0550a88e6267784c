/**
 * Reading a whole store at open: every table read once, in key order, values validated as
 * they are decoded (codec.ts); then what expired while the broker was down is dropped and the
 * reference counts are checked against the references actually held, and those changes are
 * committed (the "sweep").
 */
import type { Message } from '../../broker/message.js';
import type { SessionRecord, StoredSession, StoredState } from '../store.js';
import {
  CorruptValue,
  decodeCount,
  decodeMessage,
  decodeRecord,
  decodeRetained,
  decodeStoredDelivery,
  deliveryKey,
  inboundKey,
  isNameKey,
  nameKey,
  parseSessionKey,
  parseSidKey,
  readDeliverySeq,
  readSid,
  sidKey,
} from './codec.js';
import { StoreError } from './errors.js';
import type { Table, Tables } from './tables.js';

/** Session expiry interval meaning "never expires" (MQTT 3.1.2.11.2). */
const NEVER_EXPIRES = 0xffffffff;

export interface Loaded {
  state: StoredState;
  /** Client id → session number, for every session in the file once the sweep is done. */
  sids: Map<string, number>;
  /** Client id → the highest seq of its deliveries in the file (sessions with none are absent). */
  maxSeq: Map<string, number>;
  /** The next session number to allocate. */
  nextSid: number;
}

interface LoadedSession extends StoredSession {
  sid: number;
  clientKey: Buffer;
  /** Highest seq read, -Infinity if none. */
  maxSeq: number;
}

type Change = { table: Table; key: Buffer; value?: unknown };

/**
 * Reads everything, drops what expired at `now`, repairs the reference counts, and commits
 * that unless `commitSweep` is false. Throws STORE_CORRUPT (naming table and key) for a value
 * that does not decode or a reference to something missing; nothing is changed then.
 */
export function loadState(t: Tables, now: number, directory: string, commitSweep: boolean): Loaded {
  /** What is being read, for error messages. */
  const where: { table: string; key: Uint8Array } = { table: '', key: new Uint8Array(0) };
  const corrupt = (detail: string, cause?: unknown): StoreError =>
    new StoreError(
      'STORE_CORRUPT',
      directory,
      `${detail} (table ${where.table}, key ${Buffer.from(where.key).toString('hex') || '-'})`,
      cause === undefined ? undefined : { cause },
    );
  /** A CorruptValue thrown while reading `where` becomes STORE_CORRUPT naming it. */
  const rethrow = (error: unknown): never => {
    if (error instanceof CorruptValue) throw corrupt(error.message, error);
    throw error;
  };

  // Sessions: the client id index and the records must match one to one.
  const clients = new Map<string, number>();
  const sessions = new Map<number, LoadedSession>();
  let maxSid = 0;
  try {
    where.table = 'sessions';
    for (const { key, value } of t.sessions.getRange()) {
      where.key = key;
      clients.set(Buffer.from(key).toString('latin1'), decodeCount(value, 'session number'));
    }
    where.table = 'records';
    for (const { key, value } of t.records.getRange()) {
      where.key = key;
      const sid = parseSidKey(key);
      const record: SessionRecord = decodeRecord(value);
      const clientKey = nameKey(record.clientId);
      const indexKey = clientKey.toString('latin1');
      if (clients.get(indexKey) !== sid)
        throw corrupt(`session '${record.clientId}' is not indexed under its number`);
      clients.delete(indexKey);
      sessions.set(sid, {
        sid,
        clientKey,
        record,
        deliveries: [],
        inboundQoS2: [],
        maxSeq: Number.NEGATIVE_INFINITY,
      });
      if (sid > maxSid) maxSid = sid;
    }
  } catch (error) {
    rethrow(error);
  }
  if (clients.size > 0) {
    where.table = 'sessions';
    where.key = Buffer.from([...clients.keys()][0]!, 'latin1');
    throw corrupt('a client id points at a session record that does not exist');
  }

  // Message bodies, read in one pass, numbered in key order (that of the refs table too), with
  // the number of references read for each.
  const index = new Map<string, number>();
  const bodies: Message[] = [];
  try {
    where.table = 'messages';
    for (const { key, value } of t.messages.getRange()) {
      where.key = key;
      const message = decodeMessage(value);
      if (!isNameKey(key, message.id)) throw corrupt(`message '${message.id}' is stored under another key`);
      index.set(message.id, bodies.length);
      bodies.push(message);
    }
  } catch (error) {
    rethrow(error);
  }
  const counts = new Uint32Array(bodies.length);
  /** The message `id`, counting one more reference to it. */
  const messageOf = (id: string): Message => {
    const n = index.get(id);
    if (n === undefined) {
      where.table = 'messages';
      where.key = nameKey(id);
      throw corrupt(`message '${id}' is referenced but missing`);
    }
    counts[n]!++;
    return bodies[n]!;
  };
  /** One reference less: it was dropped. */
  const release = (message: Message): void => {
    counts[index.get(message.id)!]!--;
  };

  const retained: { key: Buffer; message: Message }[] = [];
  try {
    where.table = 'deliveries';
    let session: LoadedSession | undefined;
    for (const { key, value } of t.deliveries.getRange()) {
      where.key = key;
      const seq = readDeliverySeq(key);
      const sid = readSid(key);
      if (session?.sid !== sid) {
        session = sessions.get(sid);
        if (session === undefined)
          throw corrupt(`a delivery belongs to session number ${sid}, which does not exist`);
      }
      session.deliveries.push(decodeStoredDelivery(seq, value, messageOf));
      session.maxSeq = seq;
    }
    where.table = 'inbound';
    for (const key of t.inbound.getKeys()) {
      where.key = key;
      const [sid, packetId] = parseSessionKey(key, 'inbound');
      const owner = sessions.get(sid);
      if (owner === undefined)
        throw corrupt(`an inbound QoS 2 id belongs to session number ${sid}, which does not exist`);
      owner.inboundQoS2.push(packetId);
    }
    where.table = 'retained';
    for (const { key, value } of t.retained.getRange()) {
      where.key = key;
      const [topic, id] = decodeRetained(value);
      if (!isNameKey(key, topic)) throw corrupt(`retained topic '${topic}' is stored under another key`);
      const message = messageOf(id);
      if (message.topic !== topic) {
        where.table = 'retained';
        where.key = key;
        throw corrupt(`retained message '${id}' has topic '${message.topic}', not '${topic}'`);
      }
      where.table = 'retained';
      retained.push({ key, message });
    }
  } catch (error) {
    rethrow(error);
  }

  // What expired while the broker was down, and what survives.
  const changes: Change[] = [];
  const drop = (table: Table, key: Buffer): void => {
    changes.push({ table, key });
  };
  const state: StoredState = { sessions: [], retained: [], expiredWills: [] };
  const sids = new Map<string, number>();
  const maxSeq = new Map<string, number>();
  for (const s of sessions.values()) {
    const { record, sid } = s;
    const { expiryInterval, disconnectedAt } = record;
    const expired =
      disconnectedAt !== undefined &&
      expiryInterval !== NEVER_EXPIRES &&
      disconnectedAt + expiryInterval * 1000 <= now;
    if (!expired || !commitSweep) {
      // What stays in the file: the writes that follow need to know it.
      sids.set(record.clientId, sid);
      if (s.maxSeq !== Number.NEGATIVE_INFINITY) maxSeq.set(record.clientId, s.maxSeq);
    }
    if (expired) {
      if (record.will !== undefined) state.expiredWills.push(record.will.message);
      drop(t.sessions, s.clientKey);
      drop(t.records, sidKey(sid));
      for (const d of s.deliveries) {
        release(d.message);
        drop(t.deliveries, deliveryKey(sid, d.seq));
      }
      for (const p of s.inboundQoS2) drop(t.inbound, inboundKey(sid, p));
      continue;
    }
    let kept = s.deliveries;
    for (let i = 0; i < s.deliveries.length; i++) {
      const d = s.deliveries[i]!;
      if (d.packetId === undefined && isExpiredAt(d.message, now)) {
        if (kept === s.deliveries) kept = s.deliveries.slice(0, i);
        release(d.message);
        drop(t.deliveries, deliveryKey(sid, d.seq));
      } else if (kept !== s.deliveries) {
        kept.push(d);
      }
    }
    state.sessions.push({ record, deliveries: kept, inboundQoS2: s.inboundQoS2 });
  }
  for (const { key, message } of retained) {
    if (isExpiredAt(message, now)) {
      release(message);
      drop(t.retained, key);
    } else {
      state.retained.push(message);
    }
  }

  // Reference counts against the references held, walking `refs` and the bodies in step (both
  // in key order): a count that differs or does not decode (derived data) is rewritten, one
  // missing is written, one for no message dropped; a body nothing references is dropped.
  const settle = (n: number, stored: Buffer | undefined, count: number | undefined): void => {
    const wanted = counts[n]!;
    if (wanted === 0) {
      drop(t.messages, nameKey(bodies[n]!.id));
      if (stored !== undefined) drop(t.refs, stored);
    } else if (count !== wanted) {
      changes.push({ table: t.refs, key: stored ?? nameKey(bodies[n]!.id), value: wanted });
    }
  };
  let next = 0;
  for (const { key, value } of t.refs.getRange()) {
    // Bodies before this key have no count.
    while (
      next < bodies.length &&
      !isNameKey(key, bodies[next]!.id) &&
      Buffer.compare(nameKey(bodies[next]!.id), key) < 0
    ) {
      settle(next++, undefined, undefined);
    }
    if (next < bodies.length && isNameKey(key, bodies[next]!.id)) {
      let count: number | undefined;
      try {
        count = decodeCount(value, 'reference count');
      } catch {
        count = undefined;
      }
      settle(next++, key, count);
    } else {
      drop(t.refs, key); // a count for no message
    }
  }
  while (next < bodies.length) settle(next++, undefined, undefined);

  let nextSid = maxSid + 1;
  let storedNext: number | undefined;
  try {
    const value = t.meta.get('nextSid');
    storedNext = value === undefined ? undefined : decodeCount(value, 'next session number');
  } catch {
    storedNext = undefined;
  }
  if (storedNext !== undefined && storedNext > nextSid) nextSid = storedNext;
  const writeNextSid = storedNext !== nextSid;

  if (commitSweep && (changes.length > 0 || writeNextSid)) {
    try {
      t.root.transactionSync(() => {
        for (const change of changes) {
          if (change.value === undefined) change.table.remove(change.key);
          else change.table.put(change.key, change.value);
        }
        if (writeNextSid) t.meta.put('nextSid', nextSid);
      });
    } catch (error) {
      throw new StoreError(
        'STORE_WRITE',
        directory,
        `cannot commit the expiry sweep: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
  return { state, sids, maxSeq, nextSid };
}

function isExpiredAt(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}
