/**
 * Applies a batch (batch.ts) inside one LMDB write transaction.
 *
 * Each operation reads what it needs first and writes only after its reads succeeded, so one
 * that fails (a stored value that does not decode) has written nothing and the others go on.
 * Message references are summed over the whole batch and written at the end (`finish`): a body
 * is written once however many sessions it was queued for, and a message enqueued and released
 * within the batch never touches the `refs` or `messages` tables.
 *
 * Session numbers come from memory: `sids` is what the committed data holds (loaded at open);
 * the numbers this batch creates or deletes go into `overlay`, which the store merges into
 * `sids` once the commit succeeded (and drops if it failed).
 */
import type { Message } from '../../broker/message.js';
import type { EnqueueOp, Op } from './batch.js';
import {
  CorruptValue,
  decodeCount,
  decodeDelivery,
  decodeRetained,
  deliveryKeyInto,
  deliveryMessageId,
  encodeMessage,
  inboundKey,
  MAX_SID,
  nameKey,
  SID_BYTES,
  sidKey,
} from './codec.js';
import { DeliveryRowEncoder, rawDeliveryMessageId } from './row-bytes.js';
import type { Table, Tables } from './tables.js';

interface Reference {
  delta: number;
  message: Message | undefined;
}

export class BatchWriter {
  readonly #t: Tables;
  readonly #sids: ReadonlyMap<string, number>;
  /** Session numbers this batch created (a number) or deleted (undefined), by client id. */
  readonly overlay = new Map<string, number | undefined>();
  /** The next session number to allocate. */
  nextSid: number;
  readonly #initialNextSid: number;
  readonly #references = new Map<string, Reference>();
  /** Puts and removes done. */
  writes = 0;
  /** Operations that failed (see `apply`). */
  readonly failed: Op[] = [];
  /** The operation being applied has written something. */
  #opWrote = false;
  /** Scratch deliveries key: LMDB copies a key when it is used, so one buffer serves every row. */
  readonly #key = Buffer.alloc(SID_BYTES + 8);
  readonly #rows = new DeliveryRowEncoder();

  constructor(tables: Tables, sids: ReadonlyMap<string, number>, nextSid: number) {
    this.#t = tables;
    this.#sids = sids;
    this.nextSid = nextSid;
    this.#initialNextSid = nextSid;
  }

  /**
   * Applies one operation. If it fails before writing anything (a stored value that does not
   * decode), records why in `op.error`: the others go on. A failure after it started writing
   * (an LMDB error) is thrown: the whole batch must then be undone.
   */
  apply(op: Op): void {
    this.#opWrote = false;
    try {
      switch (op.kind) {
        case 'enqueue':
          // A call with several rows: all of them when its first is reached.
          if (op.group === undefined) this.#enqueue(op.clientId, op);
          else if (op === op.group[0]) this.#enqueue(op.clientId, ...op.group);
          break;
        case 'update':
          this.#update(op.clientId, op.seq, op.packetId, op.released);
          break;
        case 'remove':
          this.#removeDelivery(op.clientId, op.seq);
          break;
        case 'saveSession':
          this.#saveSession(op.clientId, op.key, op.value);
          break;
        case 'deleteSession':
          this.#deleteSession(op.clientId, op.key);
          break;
        case 'inbound':
          this.#inbound(op.clientId, op.packetId, op.add);
          break;
        case 'setRetained':
          this.#setRetained(op.key, op.message);
          break;
        case 'deleteRetained':
          this.#deleteRetained(op.key);
          break;
      }
    } catch (error) {
      if (this.#opWrote) throw error;
      op.error = error;
      this.failed.push(op);
    }
  }

  /**
   * Writes the reference counts and message bodies, and the next session number. A count
   * that does not decode is left alone (the next open rebuilds every count) and its body kept.
   */
  finish(): void {
    const t = this.#t;
    for (const [id, { delta, message }] of this.#references) {
      if (delta === 0) continue;
      const key = nameKey(id);
      let stored: unknown;
      let count = 0;
      try {
        stored = t.refs.get(key);
        if (stored !== undefined) count = decodeCount(stored, 'reference count');
      } catch {
        if (delta > 0 && message !== undefined && !t.messages.doesExist(key)) {
          this.#put(t.messages, key, encodeMessage(message));
        }
        continue;
      }
      const next = count + delta;
      if (next <= 0) {
        // A count missing or too low is fixed at the next open; never go below zero.
        if (stored !== undefined) {
          this.#remove(t.refs, key);
          this.#remove(t.messages, key);
        }
      } else {
        if (stored === undefined && message !== undefined) this.#put(t.messages, key, encodeMessage(message));
        this.#put(t.refs, key, next);
      }
    }
    if (this.nextSid !== this.#initialNextSid) {
      t.meta.put('nextSid', this.nextSid);
      this.writes++;
    }
  }

  #sidOf(clientId: string): number | undefined {
    return this.overlay.has(clientId) ? this.overlay.get(clientId) : this.#sids.get(clientId);
  }

  #put(table: Table, key: Buffer, value: unknown): void {
    this.#opWrote = true;
    table.put(key, value);
    this.writes++;
  }

  #remove(table: Table, key: Buffer): void {
    this.#opWrote = true;
    table.remove(key);
    this.writes++;
  }

  #deliveryKey(sid: number, seq: number): Buffer {
    return deliveryKeyInto(this.#key, sid, seq);
  }

  /** One more reference to `message`: its body is stored with the first. */
  #acquire(message: Message): void {
    const entry = this.#references.get(message.id);
    if (entry === undefined) this.#references.set(message.id, { delta: 1, message });
    else {
      entry.delta++;
      entry.message = message;
    }
  }

  /** One reference less to message `id`: its body is deleted with the last. */
  #release(id: string): void {
    const entry = this.#references.get(id);
    if (entry === undefined) this.#references.set(id, { delta: -1, message: undefined });
    else entry.delta--;
  }

  #enqueue(clientId: string, ...rows: EnqueueOp[]): void {
    const sid = this.#sidOf(clientId);
    if (sid === undefined) return;
    const t = this.#t;
    // Reads first: rows this one replaces (only possible for a seq that is not fresh).
    let replaced: string[] | undefined;
    for (const r of rows) {
      if (r.cancelled || r.fresh) continue;
      const old = t.deliveries.getBinaryFast(this.#deliveryKey(sid, r.seq));
      if (old !== undefined) {
        replaced ??= [];
        replaced.push(rawDeliveryMessageId(old));
      }
    }
    for (const r of rows) {
      if (r.cancelled) continue;
      this.#acquire(r.message);
      const value = this.#rows.encode(
        r.message.id,
        r.qos,
        r.retain,
        r.subscriptionIds,
        r.packetId,
        r.released,
      );
      this.#put(t.deliveries, this.#deliveryKey(sid, r.seq), value);
    }
    if (replaced !== undefined) for (const id of replaced) this.#release(id);
  }

  #update(clientId: string, seq: number, packetId: number | undefined, released: boolean): void {
    const sid = this.#sidOf(clientId);
    if (sid === undefined) return;
    const t = this.#t;
    const key = this.#deliveryKey(sid, seq);
    const value = t.deliveries.get(key);
    if (value === undefined) return;
    const row = decodeDelivery(value);
    if (packetId !== undefined) row.packetId = packetId;
    if (released) row.released = true;
    const encoded = this.#rows.encode(
      row.messageId,
      row.qos,
      row.retain,
      row.subscriptionIds,
      row.packetId,
      row.released,
    );
    this.#put(t.deliveries, key, encoded);
  }

  #removeDelivery(clientId: string, seq: number): void {
    const sid = this.#sidOf(clientId);
    if (sid === undefined) return;
    const t = this.#t;
    const key = this.#deliveryKey(sid, seq);
    const value = t.deliveries.getBinaryFast(key);
    if (value === undefined) return;
    this.#release(rawDeliveryMessageId(value));
    this.#remove(t.deliveries, key);
  }

  #saveSession(clientId: string, key: Buffer, value: unknown[]): void {
    const t = this.#t;
    let sid = this.#sidOf(clientId);
    if (sid === undefined) {
      sid = this.nextSid;
      if (sid > MAX_SID) throw new CorruptValue('session numbers exhausted');
      this.nextSid++;
      this.#put(t.sessions, key, sid);
      this.overlay.set(clientId, sid);
    }
    this.#put(t.records, sidKey(sid), value);
  }

  #deleteSession(clientId: string, key: Buffer): void {
    const sid = this.#sidOf(clientId);
    if (sid === undefined) return;
    const t = this.#t;
    const range = { start: sidKey(sid), end: sidKey(sid + 1) };
    const ids: string[] = [];
    const deliveries: Buffer[] = [];
    for (const entry of t.deliveries.getRange(range)) {
      ids.push(deliveryMessageId(entry.value));
      deliveries.push(Buffer.from(entry.key));
    }
    const inbound: Buffer[] = [];
    for (const k of t.inbound.getKeys(range)) inbound.push(Buffer.from(k));
    for (const id of ids) this.#release(id);
    for (const k of deliveries) this.#remove(t.deliveries, k);
    for (const k of inbound) this.#remove(t.inbound, k);
    this.#remove(t.records, sidKey(sid));
    this.#remove(t.sessions, key);
    this.overlay.set(clientId, undefined);
  }

  #inbound(clientId: string, packetId: number, add: boolean): void {
    const sid = this.#sidOf(clientId);
    if (sid === undefined) return;
    if (add) this.#put(this.#t.inbound, inboundKey(sid, packetId), true);
    else this.#remove(this.#t.inbound, inboundKey(sid, packetId));
  }

  #setRetained(key: Buffer, message: Message): void {
    const t = this.#t;
    const old = t.retained.get(key);
    const oldId = old === undefined ? undefined : decodeRetained(old)[1];
    if (oldId === message.id) return;
    this.#acquire(message);
    if (oldId !== undefined) this.#release(oldId);
    this.#put(t.retained, key, [message.topic, message.id]);
  }

  #deleteRetained(key: Buffer): void {
    const t = this.#t;
    const old = t.retained.get(key);
    if (old === undefined) return;
    this.#release(decodeRetained(old)[1]);
    this.#remove(t.retained, key);
  }
}
