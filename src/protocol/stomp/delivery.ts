import { isExpired, type Message, type QoS } from '../../broker/message.js';
import type { QueuedDelivery } from '../../broker/session.js';
import type { StompConnection } from './connection.js';
import { ACK_LINE, messageTail, putAscii } from './message-frame.js';
import type { PendingDelivery, StompSubscription, TopicSubscription } from './subscriptions.js';

/**
 * Outbound messages (STOMP 1.2 "MESSAGE"): queue deliveries the connection was handed, then
 * the session's topic deliveries, as MESSAGE frames, while the socket takes them (see
 * `StompConnection.write`: a slow reader's QoS 0 messages are dropped, the rest wait) and
 * while the topic messages awaiting acknowledgement stay under `maxUnacknowledged`.
 */
export function drainDeliveries(conn: StompConnection): void {
  if (conn.qos0DropReason !== undefined) return;
  if (!drainQueueDeliveries(conn)) return;
  const session = conn.session!;
  const table = conn.subscriptions;
  const window = conn.options.maxUnacknowledged;
  const now = Date.now();
  while (table.topicUnacked < window) {
    const delivery = session.nextDelivery();
    if (delivery === undefined) break;
    if (isExpired(delivery.message, now)) {
      conn.broker.discard(session, delivery, 'expired');
      continue;
    }
    if (!writeTopicDelivery(conn, delivery)) break;
  }
}

const LF = 0x0a;
const RETAINED = Buffer.from('retained:true\n');
/** Head and tail go out as one buffer up to this size (Buffer's pool serves it); above, as two. */
const JOINED_FRAME_LIMIT = 4096;

/** Writes the queue deliveries handed over; false once the socket is full. */
function drainQueueDeliveries(conn: StompConnection): boolean {
  const outbox = conn.queueOutbox;
  if (outbox.length === 0) return true;
  let taken = 0;
  let open = true;
  while (open && taken < outbox.length) {
    const { subscription, delivery } = outbox[taken]!;
    // The queue delivers as soon as the consumer exists, before the SUBSCRIBE is answered:
    // held until it is (its RECEIPT first, and a handle to acknowledge with).
    if (subscription.handle === undefined && !subscription.closed) break;
    taken++;
    // Ended since: the queue took its unacknowledged deliveries back.
    if (subscription.closed) continue;
    const handle = subscription.handle!;
    const tail = messageTail(delivery.message, conn.version);
    if (tail === null) {
      // This client's version cannot write the destination: back to the queue, which
      // redelivers it to another consumer or, at last, dead-letters it.
      handle.nack(delivery.deliveryId);
      continue;
    }
    const messageId = conn.subscriptions.messageId();
    const extra = delivery.redelivered
      ? Buffer.from(`redelivered:true\ndelivery-count:${delivery.deliveryCount}\n`)
      : undefined;
    if (subscription.ackMode === 'auto') {
      open = writeMessage(conn, subscription, messageId, extra, tail, delivery.message, 1);
      // Acknowledged as written: the queue never waits on a client that asked for none.
      handle.ack(delivery.deliveryId);
    } else {
      conn.subscriptions.awaitAck(messageId, {
        kind: 'queue',
        subscription,
        deliveryId: delivery.deliveryId,
      });
      open = writeMessage(conn, subscription, messageId, extra, tail, delivery.message, 1);
    }
  }
  outbox.splice(0, taken);
  return open;
}

/**
 * One session delivery as a MESSAGE per STOMP subscription it matched (its Subscription
 * Identifiers name them). A QoS 1 delivery is completed with the broker once every MESSAGE
 * of it is acknowledged: at once when no subscription asked for acknowledgements.
 */
function writeTopicDelivery(conn: StompConnection, delivery: QueuedDelivery): boolean {
  const tail = messageTail(delivery.message, conn.version);
  if (tail === null) {
    // A topic this client's version cannot name (a line break, for 1.0): like a message too
    // large for an MQTT client, it is dropped for this client only.
    conn.broker.discard(conn.session!, delivery, 'packet-too-large');
    return true;
  }
  const table = conn.subscriptions;
  const ids = delivery.subscriptionIds;
  let pending: PendingDelivery | undefined;
  let open = true;
  if (ids !== undefined) {
    for (let i = 0; i < ids.length; i++) {
      const target = table.targets.get(ids[i]!);
      if (target === undefined) continue;
      if ('brokerId' in target) {
        const { subscriptions } = target;
        for (let j = 0; j < subscriptions.length; j++) {
          const subscription = subscriptions[j]!;
          if (subscription.ackMode !== 'auto') pending ??= { packetId: delivery.packetId, remaining: 0 };
          if (!writeTopicMessage(conn, subscription, delivery, tail, pending)) open = false;
        }
      } else {
        if (target.ackMode !== 'auto') pending ??= { packetId: delivery.packetId, remaining: 0 };
        if (!writeTopicMessage(conn, target, delivery, tail, pending)) open = false;
      }
    }
  }
  if (pending === undefined && delivery.packetId !== undefined)
    conn.broker.complete(conn.session!, delivery.packetId);
  return open;
}

/** One topic MESSAGE; `pending` is defined when the subscription acknowledges. */
function writeTopicMessage(
  conn: StompConnection,
  subscription: TopicSubscription,
  delivery: QueuedDelivery,
  tail: Buffer,
  pending: PendingDelivery | undefined,
): boolean {
  const messageId = conn.subscriptions.messageId();
  if (subscription.ackMode !== 'auto') {
    pending!.remaining++;
    conn.subscriptions.awaitAck(messageId, { kind: 'topic', subscription, pending: pending! });
  }
  const extra = delivery.retain ? RETAINED : undefined;
  return writeMessage(conn, subscription, messageId, extra, tail, delivery.message, delivery.qos);
}

/**
 * Writes one MESSAGE: the subscription's prefix, the message id (and, STOMP 1.2 "MESSAGE",
 * the `ack` header naming it when acknowledgements are asked for), `extra` header lines,
 * then the message's shared tail. Counted as the traffic metrics count an MQTT PUBLISH.
 */
function writeMessage(
  conn: StompConnection,
  subscription: StompSubscription,
  messageId: string,
  extra: Buffer | undefined,
  tail: Buffer,
  message: Message,
  qos: QoS,
): boolean {
  const { traffic } = conn;
  traffic.messagesSent[qos]++;
  traffic.payloadBytesSent[qos] += message.payload.length;
  const prefix = subscription.messagePrefix;
  const ack = subscription.ackMode !== 'auto' && conn.version === '1.2';
  const idLength = messageId.length;
  const headLength =
    prefix.length + idLength + 1 + (ack ? ACK_LINE.length + idLength + 1 : 0) + (extra?.length ?? 0);
  const joined = headLength + tail.length <= JOINED_FRAME_LIMIT;
  const out = Buffer.allocUnsafe(joined ? headLength + tail.length : headLength);
  out.set(prefix, 0);
  // Message ids are ASCII (SubscriptionTable.messageId).
  let at = putAscii(out, prefix.length, messageId);
  out[at++] = LF;
  if (ack) {
    out.set(ACK_LINE, at);
    at = putAscii(out, at + ACK_LINE.length, messageId);
    out[at++] = LF;
  }
  if (extra !== undefined) {
    out.set(extra, at);
    at += extra.length;
  }
  if (joined) {
    out.set(tail, at);
    return conn.write(out);
  }
  conn.write(out);
  return conn.write(tail);
}
