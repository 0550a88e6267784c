/**
 * Point-to-point queues: each message goes to one consumer, round-robin among the consumers
 * with room, and is kept until acknowledged. MQTT reaches a queue as the topic `$queue/<name>`,
 * STOMP as `/queue/<name>`; both go through `Broker.publish` and `Broker.consumeQueue`.
 *
 * Persistence reuses the Store interface as it is, deliberately, so every store engine and its
 * contract suite keep working unchanged:
 * - a queue is a session record whose client id is `\u0000queue:<name>`. U+0000 can never be in
 *   an MQTT client id (MQTT-1.5.4-2) and every other protocol's ids start otherwise, so no client
 *   can collide with it. Its expiry interval is NEVER_EXPIRES and it has no subscriptions;
 * - its messages are that record's deliveries (`store.enqueue`, qos 1, retain false, increasing
 *   seq), removed with `store.removeDelivery` once acknowledged, expired or dead-lettered;
 * - a queue delivery has no packet id, so that column records how many times the message was
 *   delivered (`store.markSent(id, seq, count)`), capped at 65535, the column's range.
 * `Broker.start` hands these records to `QueueManager.restore` instead of making sessions of
 * them: they are not in `broker.sessions`, the admin API or the `$SYS` counts.
 *
 * The retain flag of a message published to a queue is ignored: a queue keeps every message
 * until a consumer takes it, which is what retaining would add.
 */

import type { DropReason } from './hooks.js';
import { isExpired, type Message } from './message.js';
import { NEVER_EXPIRES } from './session.js';
import type { Store, StoredSession } from './store.js';

/** The MQTT topic prefix naming a queue: `$queue/<name>`. */
export const QUEUE_TOPIC_PREFIX = '$queue/';

/** The client id prefix of the session records queues are stored as (see the top of this file). */
export const QUEUE_RECORD_PREFIX = '\u0000queue:';

/** The delivery count the store can record (its packet id column). */
const MAX_DELIVERY_COUNT = 0xffff;

export interface QueueOptions {
  /** Most messages one queue holds, waiting or unacknowledged. */
  maxMessages: number;
  /** Redeliveries a message gets; delivered more than once beyond that, it goes to the dead-letter queue. */
  maxRedeliveries: number;
  /** Queue `orders` dead-letters into `<deadLetterPrefix>orders`. */
  deadLetterPrefix: string;
  /** Unacknowledged deliveries per consumer when it asks for no particular number. */
  defaultPrefetch: number;
  /**
   * Most queues: a publish or consumer that would make another is refused, so that clients
   * allowed to name queues cannot make the broker keep records without end. Dead-letter
   * queues are made regardless (they keep what would otherwise be lost).
   */
  maxQueues: number;
}

export const DEFAULT_QUEUE_OPTIONS: Readonly<QueueOptions> = Object.freeze({
  maxMessages: 100_000,
  maxRedeliveries: 5,
  deadLetterPrefix: 'DLQ.',
  defaultPrefetch: 100,
  maxQueues: 10_000,
});

export type AckMode = 'auto' | 'client' | 'client-individual';

export interface QueueDelivery {
  /** The queue's name. */
  readonly queue: string;
  /** Its topic is `$queue/<name>`. */
  readonly message: Message;
  /** Unique; names this delivery in ack and nack. */
  readonly deliveryId: string;
  /** 1 on first delivery. */
  readonly deliveryCount: number;
  /** deliveryCount > 1. */
  readonly redelivered: boolean;
}

export interface QueueConsumer {
  deliver(delivery: QueueDelivery): void;
}

export interface ConsumeOptions {
  ackMode: AckMode;
  /** Most unacknowledged deliveries; 0: the configured default. Ignored by `auto`. */
  prefetch: number;
}

export interface QueueSubscription {
  /** client: acknowledges this and every earlier delivery of this subscription; client-individual: this one. false if unknown. */
  ack(deliveryId: string): boolean;
  /** Redelivers (client: this and every earlier unacknowledged one); after maxRedeliveries goes to the dead-letter queue. */
  nack(deliveryId: string): boolean;
  /** Stops consuming; unacknowledged deliveries go back to the front of the queue, redelivered. */
  close(): void;
  readonly unacknowledged: number;
}

/** Why a publish to a queue was not accepted. */
export type QueueRefusal = 'queue-full' | 'queue-name-invalid' | 'too-many-queues';

/** What a publish to a queue did (the shape of `PublishResult`). */
export interface QueuePublishResult {
  /** 1 when the queue took the message, else 0. */
  matched: number;
  persisted: Promise<void> | undefined;
  refusal?: QueueRefusal;
}

/** One queue, as an operator sees it. */
export interface QueueSummary {
  readonly name: string;
  /** Messages waiting for a consumer. */
  readonly depth: number;
  readonly consumers: number;
  /** Messages delivered and not yet acknowledged. */
  readonly unacknowledged: number;
}

/** What the manager needs of the broker. */
export interface QueueHost {
  readonly store: Store;
  now(): number;
  /** Tracks a store write (closing waits for it) and reports its failure. */
  background(write: Promise<void>): void;
  /** Tracks a store write whose failure the caller handles. */
  track(write: Promise<void>): void;
  /** Emits the broker's `dropped` event. */
  dropped(message: Message, reason: DropReason): void;
  /** A copy of `message` on another topic, with a fresh id (a dead-lettered message). */
  retopic(message: Message, topic: string): Message;
  onError(error: unknown): void;
}

/** Why a name cannot name a queue: empty, or with MQTT wildcards (a queue is one destination). */
export function queueNameFault(name: string): 'empty' | 'wildcards' | undefined {
  if (name.length === 0) return 'empty';
  if (name.includes('+') || name.includes('#')) return 'wildcards';
  return undefined;
}

/** The queue name of a `$queue/<name>` topic or filter, else undefined. */
export function queueNameOf(topic: string): string | undefined {
  return topic.startsWith(QUEUE_TOPIC_PREFIX) ? topic.slice(QUEUE_TOPIC_PREFIX.length) : undefined;
}

/** A queued message; `seq` names it in the store. */
interface Entry {
  readonly message: Message;
  readonly seq: number;
  deliveryCount: number;
}

/** Array-backed FIFO with a moving head; `unshift` is for redeliveries, which are rare. */
class Deque<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  unshift(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

class Queue {
  readonly pending = new Deque<Entry>();
  readonly consumers: ManagedSubscription[] = [];
  /** Round-robin position in `consumers`. */
  cursor = 0;
  nextSeq = 1;
  /** Deliveries unacknowledged, over all consumers. */
  unacknowledged = 0;
  dispatching = false;
  /** Something changed while dispatching: look again. */
  again = false;

  constructor(
    readonly name: string,
    readonly recordId: string,
    /** A dead-letter queue keeps what it cannot deliver: it never dead-letters further. */
    readonly deadLetter: boolean,
  ) {}

  /** What counts against maxMessages. */
  get size(): number {
    return this.pending.length + this.unacknowledged;
  }
}

/** One consumer of one queue. The manager's own methods do the work. */
export class ManagedSubscription implements QueueSubscription {
  /** By delivery id, in delivery order. */
  readonly deliveries = new Map<string, Entry>();
  closed = false;

  constructor(
    private readonly manager: QueueManager,
    readonly queue: Queue,
    readonly ackMode: AckMode,
    readonly prefetch: number,
    readonly consumer: QueueConsumer,
    readonly owner: object | undefined,
  ) {}

  get unacknowledged(): number {
    return this.deliveries.size;
  }

  get hasRoom(): boolean {
    return this.ackMode === 'auto' || this.deliveries.size < this.prefetch;
  }

  ack(deliveryId: string): boolean {
    return this.manager.settle(this, deliveryId, 'ack');
  }

  nack(deliveryId: string): boolean {
    return this.manager.settle(this, deliveryId, 'nack');
  }

  /** Gives up one delivery its consumer cannot take: expired, or undeliverable to it (dead-lettered). */
  reject(deliveryId: string, reason: DropReason): boolean {
    return this.manager.reject(this, deliveryId, reason);
  }

  close(): void {
    this.manager.unsubscribe(this);
  }
}

/**
 * Every queue of a broker: messages in order, consumers, acknowledgements, redelivery,
 * dead-lettering and expiry; each change persisted through the store as described at the top.
 */
export class QueueManager {
  readonly options: QueueOptions;
  private readonly queues = new Map<string, Queue>();
  private readonly owned = new Map<object, Set<ManagedSubscription>>();
  private deliveries = 0;
  /** Set by `close`: the store is closing, so nothing more is written. */
  private closed = false;

  constructor(
    private readonly host: QueueHost,
    options: Partial<QueueOptions> = {},
  ) {
    this.options = { ...DEFAULT_QUEUE_OPTIONS, ...options };
  }

  /** Takes a stored queue record at start-up; false when the record is a client's session. */
  restore(stored: StoredSession): boolean {
    const { clientId } = stored.record;
    if (!clientId.startsWith(QUEUE_RECORD_PREFIX)) return false;
    const queue = this.queue(clientId.slice(QUEUE_RECORD_PREFIX.length), false);
    for (const d of stored.deliveries) {
      queue.pending.push({ message: d.message, seq: d.seq, deliveryCount: d.packetId ?? 0 });
      if (d.seq >= queue.nextSeq) queue.nextSeq = d.seq + 1;
    }
    return true;
  }

  /** Enqueues a message published to `$queue/<name>`. */
  publish(name: string, message: Message): QueuePublishResult {
    if (queueNameFault(name) !== undefined)
      return { matched: 0, persisted: undefined, refusal: 'queue-name-invalid' };
    if (!this.accepts(name)) {
      this.host.dropped(message, 'queue-full');
      return { matched: 0, persisted: undefined, refusal: 'too-many-queues' };
    }
    const queue = this.queue(name, true);
    if (queue.size >= this.options.maxMessages) {
      this.host.dropped(message, 'queue-full');
      return { matched: 0, persisted: undefined, refusal: 'queue-full' };
    }
    if (this.closed) {
      // The store is closing: the message could not be kept, so whoever waits for it is told
      // (an MQTT publisher gets no PUBACK and sends it again); one who does not wait is not bothered.
      const persisted = Promise.reject(new Error('the broker is stopping: the queue cannot take messages'));
      persisted.catch(() => {});
      return { matched: 0, persisted };
    }
    const entry: Entry = { message, seq: queue.nextSeq++, deliveryCount: 0 };
    queue.pending.push(entry);
    const persisted = this.host.store.enqueue(queue.recordId, [
      { message, qos: 1, retain: false, seq: entry.seq },
    ]);
    this.host.track(persisted);
    this.dispatch(queue);
    return { matched: 1, persisted };
  }

  /**
   * Adds a consumer to a queue (made if it does not exist). `owner` (a session) groups the
   * subscriptions that `closeOwned` ends together, when its connection goes.
   */
  consume(
    name: string,
    options: ConsumeOptions,
    consumer: QueueConsumer,
    owner?: object,
  ): ManagedSubscription {
    if (queueNameFault(name) !== undefined)
      throw new RangeError(`invalid queue name ${JSON.stringify(name)}`);
    const queue = this.queue(name, true);
    const prefetch = options.prefetch > 0 ? options.prefetch : this.options.defaultPrefetch;
    const subscription = new ManagedSubscription(this, queue, options.ackMode, prefetch, consumer, owner);
    if (this.closed) {
      subscription.closed = true;
      return subscription;
    }
    queue.consumers.push(subscription);
    if (owner !== undefined) {
      const set = this.owned.get(owner) ?? new Set();
      this.owned.set(owner, set);
      set.add(subscription);
    }
    this.dispatch(queue);
    return subscription;
  }

  /** Closes every subscription `owner` holds (its connection ended). */
  closeOwned(owner: object): void {
    const set = this.owned.get(owner);
    if (set === undefined) return;
    for (const subscription of [...set]) this.unsubscribe(subscription);
  }

  list(): QueueSummary[] {
    return [...this.queues.values()].map(summary);
  }

  /** Whether the queue `name` exists, or may be made without going past `maxQueues`. */
  accepts(name: string): boolean {
    return this.queues.has(name) || this.queues.size < this.options.maxQueues;
  }

  /** How many more messages the queue `name` takes now before it is full. */
  room(name: string): number {
    const queue = this.queues.get(name);
    return Math.max(0, this.options.maxMessages - (queue?.size ?? 0));
  }

  get(name: string): QueueSummary | undefined {
    const queue = this.queues.get(name);
    return queue === undefined ? undefined : summary(queue);
  }

  /**
   * Drops every message of a queue waiting for a consumer, from memory and the store (an
   * operator's purge); delivered, unacknowledged ones stay with their consumers. How many
   * were dropped, or undefined when no queue has that name.
   */
  purge(name: string): number | undefined {
    const queue = this.queues.get(name);
    if (queue === undefined) return undefined;
    let purged = 0;
    for (let entry = queue.pending.shift(); entry !== undefined; entry = queue.pending.shift()) {
      this.remove(queue, entry);
      this.host.dropped(entry.message, 'purged');
      purged++;
    }
    return purged;
  }

  /**
   * The store is about to close: consumers end, their deliveries go back to their queues in
   * memory only (the store already has them, with their delivery counts), and nothing more is written.
   */
  close(): void {
    this.closed = true;
    for (const queue of this.queues.values()) {
      for (const subscription of [...queue.consumers]) this.unsubscribe(subscription);
    }
  }

  // ---- called by ManagedSubscription ----------------------------------------------------

  settle(subscription: ManagedSubscription, deliveryId: string, outcome: 'ack' | 'nack'): boolean {
    if (subscription.closed || !subscription.deliveries.has(deliveryId)) return false;
    const { queue, deliveries } = subscription;
    const settled: Entry[] = [];
    if (subscription.ackMode === 'client') {
      // Cumulative (STOMP 1.2 "ACK"): this delivery and every earlier one.
      for (const [id, entry] of deliveries) {
        deliveries.delete(id);
        settled.push(entry);
        if (id === deliveryId) break;
      }
    } else {
      settled.push(deliveries.get(deliveryId)!);
      deliveries.delete(deliveryId);
    }
    queue.unacknowledged -= settled.length;
    if (outcome === 'ack') for (const entry of settled) this.remove(queue, entry);
    else this.requeue(queue, settled);
    this.dispatch(queue);
    return true;
  }

  reject(subscription: ManagedSubscription, deliveryId: string, reason: DropReason): boolean {
    const entry = subscription.deliveries.get(deliveryId);
    if (subscription.closed || entry === undefined) return false;
    subscription.deliveries.delete(deliveryId);
    const { queue } = subscription;
    queue.unacknowledged--;
    if (reason === 'expired' || queue.deadLetter) {
      this.remove(queue, entry);
      this.host.dropped(entry.message, reason);
    } else {
      this.deadLetter(queue, entry);
    }
    this.dispatch(queue);
    return true;
  }

  unsubscribe(subscription: ManagedSubscription): void {
    if (subscription.closed) return;
    subscription.closed = true;
    const { queue } = subscription;
    const index = queue.consumers.indexOf(subscription);
    if (index >= 0) {
      queue.consumers.splice(index, 1);
      if (queue.cursor > index) queue.cursor--;
    }
    if (subscription.owner !== undefined) {
      const set = this.owned.get(subscription.owner);
      set?.delete(subscription);
      if (set?.size === 0) this.owned.delete(subscription.owner);
    }
    const entries = [...subscription.deliveries.values()];
    subscription.deliveries.clear();
    queue.unacknowledged -= entries.length;
    this.requeue(queue, entries);
    this.dispatch(queue);
  }

  // ---- internals ---------------------------------------------------------------------------

  /** The queue named `name`, made (and its record saved, when `save`) if it does not exist. */
  private queue(name: string, save: boolean): Queue {
    let queue = this.queues.get(name);
    if (queue !== undefined) return queue;
    const { deadLetterPrefix } = this.options;
    queue = new Queue(
      name,
      QUEUE_RECORD_PREFIX + name,
      deadLetterPrefix !== '' && name.startsWith(deadLetterPrefix),
    );
    this.queues.set(name, queue);
    if (save && !this.closed) {
      this.host.background(
        this.host.store.saveSession({
          clientId: queue.recordId,
          expiryInterval: NEVER_EXPIRES,
          subscriptions: [],
        }),
      );
    }
    return queue;
  }

  /** Delivers waiting messages to consumers with room, round-robin. Re-entrant calls just ask for another pass. */
  private dispatch(queue: Queue): void {
    if (this.closed) return;
    if (queue.dispatching) {
      queue.again = true;
      return;
    }
    queue.dispatching = true;
    try {
      do {
        queue.again = false;
        while (queue.pending.length > 0) {
          const subscription = nextWithRoom(queue);
          if (subscription === undefined) break;
          const entry = queue.pending.shift()!;
          if (isExpired(entry.message, this.host.now())) {
            this.remove(queue, entry);
            this.host.dropped(entry.message, 'expired');
            continue;
          }
          // Restored from the store with its count already spent.
          if (this.exhausted(queue, entry)) {
            this.deadLetter(queue, entry);
            continue;
          }
          this.deliver(queue, subscription, entry);
        }
      } while (queue.again);
    } finally {
      queue.dispatching = false;
    }
  }

  private deliver(queue: Queue, subscription: ManagedSubscription, entry: Entry): void {
    entry.deliveryCount = Math.min(entry.deliveryCount + 1, MAX_DELIVERY_COUNT);
    const deliveryId = (this.deliveries++).toString(36);
    if (subscription.ackMode === 'auto') {
      this.remove(queue, entry);
    } else {
      subscription.deliveries.set(deliveryId, entry);
      queue.unacknowledged++;
      this.host.background(this.host.store.markSent(queue.recordId, entry.seq, entry.deliveryCount));
    }
    const { deliveryCount } = entry;
    try {
      subscription.consumer.deliver({
        queue: queue.name,
        message: entry.message,
        deliveryId,
        deliveryCount,
        redelivered: deliveryCount > 1,
      });
    } catch (error) {
      this.host.onError(error);
    }
  }

  /** Delivered more than once beyond maxRedeliveries: for the dead-letter queue. */
  private exhausted(queue: Queue, entry: Entry): boolean {
    return !queue.deadLetter && entry.deliveryCount > this.options.maxRedeliveries;
  }

  /** Puts deliveries back at the front, in their original order, or dead-letters the exhausted ones. */
  private requeue(queue: Queue, entries: Entry[]): void {
    if (entries.length === 0) return;
    entries.sort((a, b) => a.seq - b.seq);
    const exhausted = this.closed ? [] : entries.filter((entry) => this.exhausted(queue, entry));
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i]!;
      if (!exhausted.includes(entry)) queue.pending.unshift(entry);
    }
    for (const entry of exhausted) this.deadLetter(queue, entry);
  }

  /** Moves a message to its queue's dead-letter queue: stored there first, then removed here. */
  private deadLetter(queue: Queue, entry: Entry): void {
    const target = this.queue(this.options.deadLetterPrefix + queue.name, true);
    if (target.size >= this.options.maxMessages) {
      this.remove(queue, entry);
      this.host.dropped(entry.message, 'queue-full');
      return;
    }
    // MQTT-3.3.2-3: what a consumer of the dead-letter queue gets is on the topic it subscribed to.
    const message = this.host.retopic(entry.message, QUEUE_TOPIC_PREFIX + target.name);
    const moved: Entry = { message, seq: target.nextSeq++, deliveryCount: 0 };
    target.pending.push(moved);
    const { store } = this.host;
    this.host.background(
      store
        .enqueue(target.recordId, [{ message, qos: 1, retain: false, seq: moved.seq }])
        .then(() => store.removeDelivery(queue.recordId, entry.seq)),
    );
    this.dispatch(target);
  }

  private remove(queue: Queue, entry: Entry): void {
    if (!this.closed) this.host.background(this.host.store.removeDelivery(queue.recordId, entry.seq));
  }
}

/** The next consumer with room for a delivery, round-robin from the cursor. */
function nextWithRoom(queue: Queue): ManagedSubscription | undefined {
  const { consumers } = queue;
  const n = consumers.length;
  for (let i = 0; i < n; i++) {
    const index = (queue.cursor + i) % n;
    const subscription = consumers[index]!;
    if (subscription.hasRoom) {
      queue.cursor = index + 1;
      return subscription;
    }
  }
  return undefined;
}

function summary(queue: Queue): QueueSummary {
  return {
    name: queue.name,
    depth: queue.pending.length,
    consumers: queue.consumers.length,
    unacknowledged: queue.unacknowledged,
  };
}
