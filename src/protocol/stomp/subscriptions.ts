import type { QueueSubscription } from '../../broker/queues.js';

/** STOMP 1.2 "SUBSCRIBE ack Header". */
export type StompAckMode = 'auto' | 'client' | 'client-individual';

/** A topic delivery (one broker delivery, maybe several MESSAGE frames) awaiting acknowledgements. */
export interface PendingDelivery {
  /** The session's packet id of a QoS 1 delivery: `Broker.complete` once every MESSAGE is acknowledged. */
  readonly packetId: number | undefined;
  /** MESSAGE frames of it still unacknowledged. */
  remaining: number;
}

interface SubscriptionBase {
  /** The client's `id` header (1.0: the destination when it gave none). */
  readonly id: string;
  readonly destination: string;
  readonly ackMode: StompAckMode;
  /** `MESSAGE\nsubscription:<id>\nmessage-id:`, encoded once for the connection's version (message-frame.ts). */
  readonly messagePrefix: Buffer;
  /** Message ids of its MESSAGE frames awaiting ACK/NACK, oldest first (`client` acks cumulatively). */
  readonly unacked: Set<string>;
}

/** A subscription to `/topic/...`: one broker subscription per distinct filter, shared. */
export interface TopicSubscription extends SubscriptionBase {
  readonly kind: 'topic';
  readonly filter: string;
  /** Its own Subscription Identifier, naming it in retained deliveries meant for it alone. */
  readonly ownId: number;
}

/** A subscription to `/queue/...`: a consumer of that queue. */
export interface QueueConsumerSubscription extends SubscriptionBase {
  readonly kind: 'queue';
  readonly name: string;
  /** Set once the broker made the consumer. */
  handle: QueueSubscription | undefined;
  closed: boolean;
}

export type StompSubscription = TopicSubscription | QueueConsumerSubscription;

/**
 * The broker subscription of one filter. The broker keeps one subscription per filter and
 * session, so STOMP subscriptions with the same destination share it, and each delivery
 * through it becomes one MESSAGE per STOMP subscription (STOMP 1.2 "MESSAGE": `subscription`).
 */
export interface FilterEntry {
  readonly filter: string;
  /** The Subscription Identifier its deliveries carry. */
  readonly brokerId: number;
  readonly subscriptions: TopicSubscription[];
}

/** A MESSAGE frame awaiting ACK or NACK, by its message id. */
export type Unacked =
  | { readonly kind: 'topic'; readonly subscription: TopicSubscription; readonly pending: PendingDelivery }
  | { readonly kind: 'queue'; readonly subscription: QueueConsumerSubscription; readonly deliveryId: string };

/** The largest Subscription Identifier (MQTT 3.3.2.3.8). */
const MAX_SUBSCRIPTION_ID = 268_435_455;

/**
 * Message ids are unique across connections and restarts (STOMP 1.2 "MESSAGE": "a unique
 * identifier for that message"): the process's start time, the table's serial, a counter.
 */
const PROCESS_TAG = Date.now().toString(36);
let tablesMade = 0;

/** A connection's subscriptions and what they await acknowledgement for. */
export class SubscriptionTable {
  /** By the client's subscription id. */
  readonly byId = new Map<string, StompSubscription>();
  readonly filters = new Map<string, FilterEntry>();
  /** What a delivery's Subscription Identifier names: a shared filter, or one subscription. */
  readonly targets = new Map<number, FilterEntry | TopicSubscription>();
  readonly unacked = new Map<string, Unacked>();
  /** Topic MESSAGE frames unacknowledged: bounded, the rest waits in the session queue. */
  topicUnacked = 0;
  private nextSubscriptionId = 1;
  private nextMessageId = 1;
  private readonly messageIdPrefix = `${PROCESS_TAG}.${(tablesMade++).toString(36)}.`;

  /** A Subscription Identifier not in use. */
  allocateId(): number {
    for (;;) {
      const id = this.nextSubscriptionId;
      this.nextSubscriptionId = id === MAX_SUBSCRIPTION_ID ? 1 : id + 1;
      if (!this.targets.has(id)) return id;
    }
  }

  /** The next MESSAGE's message id (it is also its ack id in 1.2). */
  messageId(): string {
    return this.messageIdPrefix + (this.nextMessageId++).toString(36);
  }

  /** Records a MESSAGE that awaits ACK or NACK. */
  awaitAck(messageId: string, entry: Unacked): void {
    this.unacked.set(messageId, entry);
    entry.subscription.unacked.add(messageId);
    if (entry.kind === 'topic') this.topicUnacked++;
  }

  /**
   * Takes the entries an acknowledgement of `messageId` settles: that one, and for a `client`
   * subscription every earlier one (STOMP 1.2 "ACK": cumulative). Empty if it awaits none.
   */
  settle(messageId: string): Unacked[] {
    const entry = this.unacked.get(messageId);
    if (entry === undefined) return [];
    const { subscription } = entry;
    if (subscription.ackMode !== 'client') return [this.forget(messageId)];
    const ids: string[] = [];
    for (const id of subscription.unacked) {
      ids.push(id);
      if (id === messageId) break;
    }
    return ids.map((id) => this.forget(id));
  }

  /** Takes every entry of a subscription that ends. */
  settleAll(subscription: StompSubscription): Unacked[] {
    return [...subscription.unacked].map((id) => this.forget(id));
  }

  private forget(messageId: string): Unacked {
    const entry = this.unacked.get(messageId)!;
    this.unacked.delete(messageId);
    entry.subscription.unacked.delete(messageId);
    if (entry.kind === 'topic') this.topicUnacked--;
    return entry;
  }
}
