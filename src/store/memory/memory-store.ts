import type { Message, SubscriptionOptions } from '../../broker/message.js';
import type {
  SessionRecord,
  Store,
  StoredDelivery,
  StoredSession,
  StoredState,
  StoredWill,
} from '../store.js';

/** Session expiry interval meaning "never expires" (MQTT 3.1.2.11.2). */
const NEVER_EXPIRES = 0xffffffff;

/** One session as the memory store holds it. */
interface SessionEntry {
  record: SessionRecord;
  /** Keyed by seq; a Map iterates in insertion order, which is seq order while seqs increase. */
  deliveries: Map<number, StoredDelivery>;
  /** Highest seq enqueued so far, to notice (and tolerate) a caller breaking the increasing order. */
  lastSeq: number;
  /** True once a seq arrived out of order: `open()` must sort this session's deliveries. */
  unordered: boolean;
  inboundQoS2: Set<number>;
}

type StoreState = 'new' | 'open' | 'closed';

/**
 * The store for `--memory` runs: everything lives in Maps and dies with the process.
 *
 * - `close()` keeps the data, so `open()` again on the same instance simulates a broker
 *   restart: the state comes back as a durable store would return it, with expired sessions
 *   and messages dropped.
 * - Records and deliveries are copied on the way in and on the way out, so neither the objects
 *   a caller passed nor those `open()` returned are aliased to the store's own state. Messages
 *   are immutable (`readonly`) and shared, as one copy serves every queue that holds it; their
 *   payload and properties are never copied.
 * - Delivery and inbound QoS 2 writes (`enqueue`, `markSent`, `markReleased`, `removeDelivery`,
 *   `addInboundQoS2`, `removeInboundQoS2`) for a client id with no saved session are ignored:
 *   the session may have been deleted (taken over, expired) while the write was on its way.
 *   Likewise `markSent`, `markReleased` and `removeDelivery` for an unknown seq do nothing.
 *   A session must therefore be saved before anything is queued for it.
 * - Calls other than `open()` and `close()` reject unless the store is open. `close()` is
 *   idempotent; `open()` on an open store rejects.
 */
export class MemoryStore implements Store {
  readonly #sessions = new Map<string, SessionEntry>();
  readonly #retained = new Map<string, Message>();
  #state: StoreState = 'new';

  async open(now: number): Promise<StoredState> {
    if (this.#state === 'open') throw new Error('MemoryStore is already open');
    this.#state = 'open';
    const expiredWills = this.#dropExpired(now);

    const sessions: StoredSession[] = [];
    for (const entry of this.#sessions.values()) {
      const deliveries: StoredDelivery[] = [];
      for (const delivery of entry.deliveries.values()) deliveries.push(copyDelivery(delivery));
      if (entry.unordered) deliveries.sort((a, b) => a.seq - b.seq);
      sessions.push({
        record: copyRecord(entry.record),
        deliveries,
        inboundQoS2: [...entry.inboundQoS2],
      });
    }
    return { sessions, retained: [...this.#retained.values()], expiredWills };
  }

  async close(): Promise<void> {
    if (this.#state === 'open') this.#state = 'closed';
  }

  async setRetained(message: Message): Promise<void> {
    this.#assertOpen('setRetained');
    this.#retained.set(message.topic, message);
  }

  async deleteRetained(topic: string): Promise<void> {
    this.#assertOpen('deleteRetained');
    this.#retained.delete(topic);
  }

  async saveSession(record: SessionRecord): Promise<void> {
    this.#assertOpen('saveSession');
    const entry = this.#sessions.get(record.clientId);
    if (entry) {
      entry.record = copyRecord(record);
    } else {
      this.#sessions.set(record.clientId, {
        record: copyRecord(record),
        deliveries: new Map(),
        lastSeq: -Infinity,
        unordered: false,
        inboundQoS2: new Set(),
      });
    }
  }

  async deleteSession(clientId: string): Promise<void> {
    this.#assertOpen('deleteSession');
    this.#sessions.delete(clientId);
  }

  async enqueue(clientId: string, deliveries: readonly StoredDelivery[]): Promise<void> {
    this.#assertOpen('enqueue');
    const entry = this.#sessions.get(clientId);
    if (!entry) return;
    for (const delivery of deliveries) {
      const { seq } = delivery;
      if (seq > entry.lastSeq) {
        entry.lastSeq = seq;
      } else {
        // Not the promised increasing order; keep it anyway and sort when opening.
        entry.unordered = true;
        entry.deliveries.delete(seq);
      }
      entry.deliveries.set(seq, copyDelivery(delivery));
    }
  }

  async markSent(clientId: string, seq: number, packetId: number): Promise<void> {
    this.#assertOpen('markSent');
    const delivery = this.#sessions.get(clientId)?.deliveries.get(seq);
    if (delivery) delivery.packetId = packetId;
  }

  async markReleased(clientId: string, seq: number): Promise<void> {
    this.#assertOpen('markReleased');
    const delivery = this.#sessions.get(clientId)?.deliveries.get(seq);
    if (delivery) delivery.released = true;
  }

  async removeDelivery(clientId: string, seq: number): Promise<void> {
    this.#assertOpen('removeDelivery');
    this.#sessions.get(clientId)?.deliveries.delete(seq);
  }

  async addInboundQoS2(clientId: string, packetId: number): Promise<void> {
    this.#assertOpen('addInboundQoS2');
    this.#sessions.get(clientId)?.inboundQoS2.add(packetId);
  }

  async removeInboundQoS2(clientId: string, packetId: number): Promise<void> {
    this.#assertOpen('removeInboundQoS2');
    this.#sessions.get(clientId)?.inboundQoS2.delete(packetId);
  }

  #assertOpen(operation: string): void {
    if (this.#state !== 'open') {
      throw new Error(
        `MemoryStore.${operation}: the store is ${this.#state === 'new' ? 'not open' : 'closed'}`,
      );
    }
  }

  /**
   * Forgets what expired while the broker was down (returning the wills of expired sessions,
   * which are now due): sessions past their expiry interval, queued
   * messages past their expiry and expired retained messages. A session still marked connected
   * (no `disconnectedAt`: the broker stopped without recording the disconnect) counts as
   * disconnected now, so it does not expire here. A delivery already sent (it has a packetId)
   * is kept even when its message expired: onward delivery has started, and the PUBLISH must
   * be resent or the QoS 2 exchange completed (MQTT-3.3.2-5, MQTT-4.4.0-1).
   */
  #dropExpired(now: number): Message[] {
    const expiredWills: Message[] = [];
    for (const [clientId, entry] of this.#sessions) {
      const { expiryInterval, disconnectedAt } = entry.record;
      if (
        disconnectedAt !== undefined &&
        expiryInterval !== NEVER_EXPIRES &&
        disconnectedAt + expiryInterval * 1000 <= now
      ) {
        this.#sessions.delete(clientId);
        if (entry.record.will !== undefined) expiredWills.push(entry.record.will.message);
        continue;
      }
      for (const [seq, delivery] of entry.deliveries) {
        if (delivery.packetId === undefined && isExpiredAt(delivery.message, now)) {
          entry.deliveries.delete(seq);
        }
      }
    }
    for (const [topic, message] of this.#retained) {
      if (isExpiredAt(message, now)) this.#retained.delete(topic);
    }
    return expiredWills;
  }
}

function isExpiredAt(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}

/** Copies a record down to its subscription options; optional fields stay absent when absent. */
function copyRecord(record: SessionRecord): SessionRecord {
  const copy: SessionRecord = {
    clientId: record.clientId,
    expiryInterval: record.expiryInterval,
    subscriptions: record.subscriptions.map(([filter, options]) => [filter, copyOptions(options)]),
  };
  if (record.disconnectedAt !== undefined) copy.disconnectedAt = record.disconnectedAt;
  if (record.will !== undefined) copy.will = copyWill(record.will);
  if (record.liveWill !== undefined)
    copy.liveWill = { message: record.liveWill.message, delay: record.liveWill.delay };
  return copy;
}

function copyOptions(options: SubscriptionOptions): SubscriptionOptions {
  const copy: SubscriptionOptions = {
    qos: options.qos,
    noLocal: options.noLocal,
    retainAsPublished: options.retainAsPublished,
    retainHandling: options.retainHandling,
  };
  if (options.subscriptionId !== undefined) copy.subscriptionId = options.subscriptionId;
  return copy;
}

function copyWill(will: StoredWill): StoredWill {
  return { message: will.message, publishAt: will.publishAt };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function copyDelivery(delivery: StoredDelivery): StoredDelivery {
  const copy: Mutable<StoredDelivery> = {
    message: delivery.message,
    qos: delivery.qos,
    retain: delivery.retain,
    seq: delivery.seq,
  };
  if (delivery.subscriptionIds !== undefined) copy.subscriptionIds = [...delivery.subscriptionIds];
  if (delivery.packetId !== undefined) copy.packetId = delivery.packetId;
  if (delivery.released !== undefined) copy.released = delivery.released;
  return copy;
}
