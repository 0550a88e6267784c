import type { DropReason } from './hooks.js';
import type { QoS } from './message.js';
import { type ManagedSubscription, type QueueDelivery, type QueueManager, queueNameOf } from './queues.js';
import type { Subscription } from './routing.js';
import type { QueueReceipt, Session } from './session.js';

/**
 * Queues consumed through a session's own subscriptions (an MQTT SUBSCRIBE to `$queue/<name>`):
 * the subscription stays in the session (and its stored record) like any other, but instead of
 * entering the topic tree it makes the session a consumer of the queue while a client is
 * connected. Deliveries go into the session's queue, on the normal delivery path, without being
 * written to the session's store (the queue keeps them), each with a receipt:
 * - QoS 1: acknowledged by PUBACK (`Broker.complete`);
 * - QoS 0: acknowledged as it is written to the client (`Broker.sent`), at most once, and
 *   still at most `defaultPrefetch` ahead of the socket;
 * - when the client goes or unsubscribes, what the session still holds of the queue (waiting
 *   or in flight) goes back to the queue, redelivered to another consumer or on return.
 * QoS 2 is granted as 1: the queue redelivers what a lost consumer had not acknowledged, so it
 * cannot promise exactly once.
 */

/** The highest QoS granted to a `$queue/` subscription. */
export const QUEUE_MAX_QOS: QoS = 1;

/** Why a `$queue/` filter cannot be subscribed to; undefined for any other filter, or a fine one. */
export function queueFilterRefusal(
  filter: string,
): 'wildcards-not-supported' | 'shared-not-supported' | 'unspecified' | undefined {
  const name = queueNameOf(filter);
  if (name === undefined) {
    // A queue has one consumer per message already: sharing it has no meaning.
    if (filter.startsWith('$share/') && filter.includes(`/$queue/`)) return 'shared-not-supported';
    return undefined;
  }
  if (name.length === 0) return 'unspecified';
  if (name.includes('+') || name.includes('#')) return 'wildcards-not-supported';
  return undefined;
}

class Receipt implements QueueReceipt {
  constructor(
    readonly consumer: SessionConsumer,
    readonly deliveryId: string,
  ) {}

  ack(): boolean {
    return this.consumer.subscription?.ack(this.deliveryId) ?? false;
  }

  reject(reason: DropReason): void {
    this.consumer.subscription?.reject(this.deliveryId, reason);
  }
}

class SessionConsumer {
  subscription: ManagedSubscription | undefined;
  private wakeScheduled = false;

  constructor(
    readonly session: Session,
    public qos: QoS,
    public subscriptionIds: readonly number[] | undefined,
  ) {}

  deliver(delivery: QueueDelivery): void {
    const queued = this.session.enqueue(delivery.message, this.qos, false, this.subscriptionIds);
    queued.queueReceipt = new Receipt(this, delivery.deliveryId);
    // Not synchronously: an acknowledgement made while the connection sends (QoS 0) delivers the
    // next message, and waking from there would nest one send loop per message. The running
    // loop takes it from the session queue anyway.
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      this.session.link?.wake();
    });
  }

  /** Takes back what the session still holds of this queue, then closes: the queue redelivers it. */
  stop(): void {
    const session = this.session;
    const mine = (receipt: QueueReceipt | undefined): boolean =>
      receipt instanceof Receipt && receipt.consumer === this;
    session.removeQueued((d) => mine(d.queueReceipt));
    for (const [packetId, d] of session.inflight) if (mine(d.queueReceipt)) session.inflight.delete(packetId);
    this.subscription?.close();
    this.subscription = undefined;
  }
}

/** The consumers made from sessions' `$queue/` subscriptions. */
export class SessionQueues {
  private readonly consumers = new Map<Session, Map<string, SessionConsumer>>();

  constructor(private readonly queues: QueueManager) {}

  /** Consumes for every `$queue/` subscription of a session whose client is now connected. */
  attach(session: Session): void {
    for (const subscription of session.subscriptions.values()) this.start(session, subscription);
  }

  /** Starts (or updates) the consumer of one subscription, if it names a queue and a client is connected. */
  start(session: Session, subscription: Subscription): void {
    const name = queueNameOf(subscription.filter);
    if (name === undefined || session.link === undefined) return;
    // Allowed only in part (a guard): the one topic this subscription can deliver decides.
    if (subscription.guard !== undefined && !subscription.guard(subscription.filter)) return;
    const { qos, subscriptionId } = subscription.options;
    const ids = subscriptionId === undefined ? undefined : [subscriptionId];
    const bySession = this.consumers.get(session) ?? new Map<string, SessionConsumer>();
    const existing = bySession.get(subscription.filter);
    if (existing !== undefined) {
      existing.qos = qos;
      existing.subscriptionIds = ids;
      return;
    }
    this.consumers.set(session, bySession);
    const consumer = new SessionConsumer(session, qos, ids);
    bySession.set(subscription.filter, consumer);
    consumer.subscription = this.queues.consume(
      name,
      { ackMode: 'client-individual', prefetch: 0 },
      consumer,
    );
  }

  /** Stops the consumer of one `$queue/` filter (unsubscribed). */
  stop(session: Session, filter: string): void {
    const bySession = this.consumers.get(session);
    const consumer = bySession?.get(filter);
    if (consumer === undefined) return;
    bySession!.delete(filter);
    if (bySession!.size === 0) this.consumers.delete(session);
    consumer.stop();
  }

  /** Stops every consumer of a session (its client went); the subscriptions stay. */
  detach(session: Session): void {
    const bySession = this.consumers.get(session);
    if (bySession === undefined) return;
    this.consumers.delete(session);
    for (const consumer of bySession.values()) consumer.stop();
  }
}
