/**
 * The write buffer of the durable store: the calls made since the last batch was taken, in
 * call order, coalesced while they wait. No LMDB here: `BatchWriter` (writer.ts) applies a
 * batch in one transaction, and `DurableStore` decides when.
 *
 * Coalescing keeps what applying the batch in order leaves exactly what applying every call in
 * order would leave (a batch is one transaction: nothing in between is ever on disk):
 * - `removeDelivery` of a row enqueued in this batch cancels it (with the `markSent` or
 *   `markReleased` folded into it): it is never written. When the row is *fresh* (its seq is
 *   above every seq enqueued for that client before, so no older row with that key can be on
 *   disk) nothing at all is left to write; otherwise a plain removal stays, for the older row.
 * - `markSent`/`markReleased` of a row enqueued in this batch change the row before it is
 *   written; several of them for one stored row become one update.
 * - `saveSession` again for a client keeps the first position and the last record (what lies
 *   between only needs the session to exist). `deleteSession` ends the coalescing of that client.
 * - For one inbound QoS 2 id, or one retained topic, the last operation replaces the earlier ones.
 *
 * Promises settle when the batch's commit returned, all together; rejected with the commit's
 * error if it failed (then nothing of the batch was applied). A cancelled enqueue resolves then
 * too, not at once, though nothing of it needs to survive: so that a resolved promise still
 * means that every write called before it is durable (the Store's call-order guarantee, which
 * the broker relies on), and at no cost, as the publisher's acknowledgement usually waits for
 * other writes of the same batch. A call whose effect is carried by an operation that may fail
 * on its own (one that reads a stored value first, which may not decode) gets a promise that
 * also rejects with that operation's error. The others (an enqueue of fresh rows, an enqueue
 * and its removal that cancelled out, inbound QoS 2 ids) share the promise of the batch:
 * nothing is allocated per call for them. Promises are created only when a call asks for
 * them, so none rejects unobserved.
 */
import type { Message } from '../../broker/message.js';
import type { StoredDelivery } from '../store.js';

/** A promise with its settle functions. */
class Deferred {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

interface OpBase {
  /** The Store method, for error messages. */
  name: string;
  /** Replaced by this later operation of the batch, which carries its effect: not applied. */
  replacedBy: Op | undefined;
  /** Why applying it failed (it then wrote nothing); undefined if it did not. */
  error: unknown;
  /** The promise of the calls it carries, when it may fail on its own. */
  promise: Promise<void> | undefined;
}

export interface SetRetainedOp extends OpBase {
  kind: 'setRetained';
  key: Buffer;
  message: Message;
}

export interface DeleteRetainedOp extends OpBase {
  kind: 'deleteRetained';
  key: Buffer;
}

export interface SaveSessionOp extends OpBase {
  kind: 'saveSession';
  clientId: string;
  key: Buffer;
  /** The encoded record (codec.encodeRecord). */
  value: unknown[];
}

export interface DeleteSessionOp extends OpBase {
  kind: 'deleteSession';
  clientId: string;
  key: Buffer;
}

/**
 * One delivery row of an enqueue call: the fields of codec.DeliveryRow, and its seq. A call
 * with several rows gives one operation per row, applied together (see `group`).
 */
export interface EnqueueOp extends OpBase {
  kind: 'enqueue';
  clientId: string;
  seq: number;
  message: Message;
  qos: StoredDelivery['qos'];
  retain: boolean;
  subscriptionIds: number[] | undefined;
  packetId: number | undefined;
  released: boolean | undefined;
  /** No row with this seq can be on disk for this client: nothing needs reading or removing. */
  fresh: boolean;
  /** Removed or replaced again within the batch: not written. */
  cancelled: boolean;
  /**
   * The rows of a call with several, in order, applied as one (all or none) when the first
   * is reached; their failure is recorded on the first. Undefined for a call with one row.
   */
  group: EnqueueOp[] | undefined;
  /** The call's rows are all fresh: it cannot fail on its own. */
  callFresh: boolean;
}

export interface UpdateOp extends OpBase {
  kind: 'update';
  clientId: string;
  seq: number;
  packetId: number | undefined;
  released: boolean;
}

export interface RemoveOp extends OpBase {
  kind: 'remove';
  clientId: string;
  seq: number;
}

export interface InboundOp extends OpBase {
  kind: 'inbound';
  clientId: string;
  packetId: number;
  add: boolean;
}

export type Op =
  | SetRetainedOp
  | DeleteRetainedOp
  | SaveSessionOp
  | DeleteSessionOp
  | EnqueueOp
  | UpdateOp
  | RemoveOp
  | InboundOp;

/** What the batch knows about one client's operations. */
export interface ClientState {
  /** The saveSession to fold later ones into (none across a deleteSession). */
  save: SaveSessionOp | undefined;
  /** Rows enqueued in this batch (since its last deleteSession) and not removed, by seq. */
  rows: Map<number, EnqueueOp> | undefined;
  /** Updates of stored rows, by seq. */
  updates: Map<number, UpdateOp> | undefined;
  /** The last operation on each inbound QoS 2 id. */
  inbound: Map<number, InboundOp> | undefined;
  /** Highest seq enqueued in this batch, -Infinity if none. */
  maxSeq: number;
  /** The batch's last deleteSession of this client, if any. */
  deleted: DeleteSessionOp | undefined;
  /** Highest seq enqueued after `deleted`, -Infinity if none. */
  maxSeqSinceDelete: number;
}

export class Batch {
  readonly ops: Op[] = [];
  readonly clients = new Map<string, ClientState>();
  readonly #retained = new Map<string, SetRetainedOp | DeleteRetainedOp>();
  #deferred: Deferred | undefined;
  /** Highest seq enqueued for a client id before this batch (an upper bound), -Infinity if none. */
  readonly #knownMax: (clientId: string) => number;

  constructor(knownMax: (clientId: string) => number) {
    this.#knownMax = knownMax;
  }

  setRetained(topic: string, key: Buffer, message: Message): Promise<void> {
    const op: SetRetainedOp = {
      kind: 'setRetained',
      key,
      message,
      name: 'setRetained',
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    return this.#retain(topic, op);
  }

  deleteRetained(topic: string, key: Buffer): Promise<void> {
    const op: DeleteRetainedOp = {
      kind: 'deleteRetained',
      key,
      name: 'deleteRetained',
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    return this.#retain(topic, op);
  }

  saveSession(clientId: string, key: Buffer, value: unknown[]): Promise<void> {
    const state = this.#client(clientId);
    if (state.save !== undefined) {
      state.save.value = value;
      return this.#promiseOf(state.save);
    }
    const op: SaveSessionOp = {
      kind: 'saveSession',
      clientId,
      key,
      value,
      name: 'saveSession',
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    state.save = op;
    this.ops.push(op);
    return this.#promiseOf(op);
  }

  deleteSession(clientId: string, key: Buffer): Promise<void> {
    const state = this.#client(clientId);
    const op: DeleteSessionOp = {
      kind: 'deleteSession',
      clientId,
      key,
      name: 'deleteSession',
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    state.save = undefined;
    state.rows = undefined;
    state.updates = undefined;
    state.inbound = undefined;
    state.deleted = op;
    state.maxSeqSinceDelete = Number.NEGATIVE_INFINITY;
    this.ops.push(op);
    return this.#promiseOf(op);
  }

  enqueue(clientId: string, deliveries: readonly StoredDelivery[]): Promise<void> {
    const state = this.#client(clientId);
    const known = Math.max(this.#knownMax(clientId), state.maxSeq);
    const group: EnqueueOp[] | undefined = deliveries.length > 1 ? [] : undefined;
    let first: EnqueueOp | undefined;
    let callFresh = true;
    for (const d of deliveries) {
      const seq = d.seq;
      let fresh: boolean;
      const earlier = state.rows?.get(seq);
      if (earlier !== undefined) {
        // The same seq again replaces the row: the earlier one is never written.
        fresh = earlier.fresh;
        earlier.cancelled = true;
      } else {
        fresh = seq > known;
      }
      if (!fresh) callFresh = false;
      if (seq > state.maxSeq) state.maxSeq = seq;
      if (seq > state.maxSeqSinceDelete) state.maxSeqSinceDelete = seq;
      // An update queued before applies to the older row; later ones go into this row.
      state.updates?.delete(seq);
      const row: EnqueueOp = {
        kind: 'enqueue',
        clientId,
        seq,
        message: d.message,
        qos: d.qos,
        retain: d.retain,
        subscriptionIds: d.subscriptionIds === undefined ? undefined : [...d.subscriptionIds],
        packetId: d.packetId,
        released: d.released,
        fresh,
        cancelled: false,
        group,
        callFresh: true,
        name: 'enqueue',
        replacedBy: undefined,
        error: undefined,
        promise: undefined,
      };
      first ??= row;
      state.rows ??= new Map();
      state.rows.set(seq, row);
      group?.push(row);
      this.ops.push(row);
    }
    if (!callFresh) for (const row of group ?? [first!]) row.callFresh = false;
    return this.#promiseOf(first!);
  }

  /** markSent (a packet id) or markReleased (`released`). */
  update(
    name: string,
    clientId: string,
    seq: number,
    packetId: number | undefined,
    released: boolean,
  ): Promise<void> {
    const state = this.clients.get(clientId);
    const row = state?.rows?.get(seq);
    if (row !== undefined) {
      if (packetId !== undefined) row.packetId = packetId;
      if (released) row.released = true;
      return this.#promiseOf(row);
    }
    const update = state?.updates?.get(seq);
    if (update !== undefined) {
      if (packetId !== undefined) update.packetId = packetId;
      if (released) update.released = true;
      return this.#promiseOf(update);
    }
    const op: UpdateOp = {
      kind: 'update',
      clientId,
      seq,
      packetId,
      released,
      name,
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    const s = state ?? this.#client(clientId);
    s.updates ??= new Map();
    s.updates.set(seq, op);
    this.ops.push(op);
    return this.#promiseOf(op);
  }

  removeDelivery(clientId: string, seq: number): Promise<void> {
    const state = this.clients.get(clientId);
    const row = state?.rows?.get(seq);
    if (row !== undefined) {
      row.cancelled = true;
      state!.rows!.delete(seq);
      // Enqueued and removed within the batch, with no older row to remove: nothing to write.
      if (row.fresh) return this.#promise();
    }
    const op: RemoveOp = {
      kind: 'remove',
      clientId,
      seq,
      name: 'removeDelivery',
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    const update = state?.updates?.get(seq);
    if (update !== undefined) {
      update.replacedBy = op;
      state!.updates!.delete(seq);
    }
    this.ops.push(op);
    return this.#promiseOf(op);
  }

  inbound(clientId: string, packetId: number, add: boolean): Promise<void> {
    const state = this.#client(clientId);
    const op: InboundOp = {
      kind: 'inbound',
      clientId,
      packetId,
      add,
      name: add ? 'addInboundQoS2' : 'removeInboundQoS2',
      replacedBy: undefined,
      error: undefined,
      promise: undefined,
    };
    const earlier = state.inbound?.get(packetId);
    if (earlier !== undefined) earlier.replacedBy = op;
    state.inbound ??= new Map();
    state.inbound.set(packetId, op);
    this.ops.push(op);
    return this.#promiseOf(op);
  }

  /**
   * Forgets the operations once applied (the commit may take a while: let the garbage collector
   * have them meanwhile). Only what `settle` and the store still need is kept.
   */
  applied(): void {
    this.ops.length = 0;
    this.#retained.clear();
    for (const state of this.clients.values()) {
      state.save = undefined;
      state.rows = undefined;
      state.updates = undefined;
      state.inbound = undefined;
    }
  }

  /**
   * Settles every promise: with `commitError` when the commit failed (nothing was applied),
   * else those of the `failed` operations with their error, converted by `toError`.
   */
  settle(commitError: Error | undefined, failed: readonly Op[], toError: (op: Op) => Error): void {
    if (commitError === undefined) for (const op of failed) op.error = toError(op);
    if (this.#deferred === undefined) return;
    if (commitError === undefined) this.#deferred.resolve();
    else this.#deferred.reject(commitError);
  }

  #retain(topic: string, op: SetRetainedOp | DeleteRetainedOp): Promise<void> {
    const earlier = this.#retained.get(topic);
    if (earlier !== undefined) earlier.replacedBy = op;
    this.#retained.set(topic, op);
    this.ops.push(op);
    return this.#promiseOf(op);
  }

  #client(clientId: string): ClientState {
    let state = this.clients.get(clientId);
    if (state === undefined) {
      state = {
        save: undefined,
        rows: undefined,
        updates: undefined,
        inbound: undefined,
        maxSeq: Number.NEGATIVE_INFINITY,
        deleted: undefined,
        maxSeqSinceDelete: Number.NEGATIVE_INFINITY,
      };
      this.clients.set(clientId, state);
    }
    return state;
  }

  /** The promise of the batch as a whole. */
  #promise(): Promise<void> {
    this.#deferred ??= new Deferred();
    return this.#deferred.promise;
  }

  /**
   * The promise of the calls `op` carries: the batch's, or for an operation that may fail on
   * its own, one that also rejects with its error (or that of the operation replacing it).
   */
  #promiseOf(op: Op): Promise<void> {
    if (op.kind === 'inbound' || (op.kind === 'enqueue' && op.callFresh)) return this.#promise();
    // The rows of one call share a promise and a fate: those of the first.
    const own = op.kind === 'enqueue' && op.group !== undefined ? op.group[0]! : op;
    own.promise ??= this.#promise().then(() => {
      let carrier: Op = own;
      while (carrier.replacedBy !== undefined) carrier = carrier.replacedBy;
      if (carrier.error !== undefined) throw carrier.error;
    });
    return own.promise;
  }
}
