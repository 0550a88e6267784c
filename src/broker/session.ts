import type { ClientInfo, ClientLink, DropReason } from './hooks.js';
import type { Message, QoS } from './message.js';
import type { Subscription } from './routing.js';
import type { StoredDelivery } from './store.js';

/** Session Expiry Interval meaning "never expires" (MQTT 3.1.2.11.2). */
export const NEVER_EXPIRES = 0xffff_ffff;

/** A will held for a session: the message and its MQTT 5 Will Delay Interval in seconds. */
export interface SessionWill {
  message: Message;
  delay: number;
}

/** A delivery in a session's queue or in flight; `seq` orders it and names it in the store. */
export interface QueuedDelivery extends StoredDelivery {
  /** The shared subscription group it was routed through, so it can go to another member if this session ends. */
  shareKey?: string;
  /** Set when it came from a point-to-point queue, which keeps it (not this session's store) until acknowledged. */
  queueReceipt?: QueueReceipt;
}

/** How a session delivery taken from a queue settles with that queue (queue-sessions.ts). */
export interface QueueReceipt {
  /** Acknowledges it to the queue; false when the queue no longer waits for it. */
  ack(): boolean;
  /** It cannot reach this client: expired (dropped) or else (dead-lettered). */
  reject(reason: DropReason): void;
}

/**
 * The state the broker keeps for one client id across its connections (MQTT 4.1): its
 * subscriptions, the messages owed to it (queued, then in flight until acknowledged), the
 * QoS 2 packet ids it sent us that await PUBREL, its will and its expiry. Protocol-neutral:
 * the connection attached as `link` pulls deliveries with `nextDelivery` and reports
 * acknowledgements back.
 */
export class Session {
  expiryInterval: number;
  /** Subscriptions by full filter (`$share/...` included). */
  readonly subscriptions = new Map<string, Subscription>();
  link: ClientLink | undefined;
  client: ClientInfo | undefined;
  will: SessionWill | undefined;
  /** When the last connection ended, in ms since the epoch. */
  disconnectedAt: number | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  willTimer: NodeJS.Timeout | undefined;
  /** Will to publish when `willTimer` fires or the session ends, whichever comes first. */
  pendingWill: Message | undefined;
  /** When the pending will is due, in ms since the epoch. */
  pendingWillAt: number | undefined;
  /** Inbound QoS 2 packet ids received and not yet released (MQTT-4.3.3-9). */
  readonly inboundQoS2 = new Set<number>();
  /** Deliveries sent and awaiting acknowledgement, by packet id, in the order sent. */
  readonly inflight = new Map<number, QueuedDelivery>();

  /** Routing scratch state: which publish last matched this session, and the merged options. */
  routeEpoch = 0;
  routeQoS: QoS = 0;
  routeRetain = false;
  routeIds: number[] | undefined;

  private queue: QueuedDelivery[] = [];
  private queueHead = 0;
  private nextPacketId = 1;
  private nextSeq = 1;

  constructor(
    readonly clientId: string,
    expiryInterval: number,
  ) {
    this.expiryInterval = expiryInterval;
  }

  /** True when the session outlives its connection and so is persisted. */
  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  /** Deliveries waiting to be sent. */
  get queuedCount(): number {
    return this.queue.length - this.queueHead;
  }

  /** Adds a delivery at the back of the queue, giving it the next sequence number. */
  enqueue(
    message: Message,
    qos: QoS,
    retain: boolean,
    subscriptionIds: readonly number[] | undefined,
    shareKey?: string,
  ): QueuedDelivery {
    const queued: QueuedDelivery = { message, qos, retain, subscriptionIds, seq: this.nextSeq++, shareKey };
    this.queue.push(queued);
    return queued;
  }

  /** Removes and returns the oldest queued delivery (for the drop-oldest overflow policy). */
  dropOldest(): QueuedDelivery | undefined {
    return this.shift();
  }

  /** Restores state read from the store at start-up, keeping sequence numbers increasing. */
  restore(deliveries: StoredDelivery[], inboundQoS2: number[]): void {
    for (const d of deliveries) {
      const queued: QueuedDelivery = { ...d };
      if (d.packetId !== undefined) this.inflight.set(d.packetId, queued);
      else this.queue.push(queued);
      if (d.seq >= this.nextSeq) this.nextSeq = d.seq + 1;
    }
    for (const id of inboundQoS2) this.inboundQoS2.add(id);
  }

  /** The next queued delivery, or undefined. QoS 1/2 ones get a packet id and move in flight. */
  nextDelivery(): QueuedDelivery | undefined {
    const next = this.shift();
    if (next !== undefined && next.qos > 0) {
      next.packetId = this.allocatePacketId();
      this.inflight.set(next.packetId, next);
    }
    return next;
  }

  /** Puts a delivery taken with `nextDelivery` back at the front (it could not be sent yet). */
  unshift(delivery: QueuedDelivery): void {
    if (delivery.packetId !== undefined) {
      this.inflight.delete(delivery.packetId);
      delivery.packetId = undefined;
    }
    if (this.queueHead > 0) this.queue[--this.queueHead] = delivery;
    else this.queue.unshift(delivery);
  }

  /** Removes the queued (not yet sent) deliveries `drop` picks and returns them; order is kept. */
  removeQueued(drop: (delivery: QueuedDelivery) => boolean): QueuedDelivery[] {
    const kept: QueuedDelivery[] = [];
    const dropped: QueuedDelivery[] = [];
    for (const delivery of this.queued()) (drop(delivery) ? dropped : kept).push(delivery);
    if (dropped.length > 0) {
      this.queue = kept;
      this.queueHead = 0;
    }
    return dropped;
  }

  /** Every queued (not yet sent) delivery, oldest first. */
  queued(): QueuedDelivery[] {
    return this.queue.slice(this.queueHead);
  }

  /** Removes all queued and in-flight deliveries and returns them. */
  drain(): QueuedDelivery[] {
    const all = [...this.inflight.values(), ...this.queued()];
    this.inflight.clear();
    this.queue = [];
    this.queueHead = 0;
    return all;
  }

  private shift(): QueuedDelivery | undefined {
    if (this.queueHead >= this.queue.length) return undefined;
    const next = this.queue[this.queueHead]!;
    this.queue[this.queueHead++] = undefined as unknown as QueuedDelivery;
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    return next;
  }

  /** MQTT-2.2.1-3: a packet id not in use by another unacknowledged PUBLISH. */
  private allocatePacketId(): number {
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 0xffff ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }
}
