import { isExpired, type QoS } from '../../broker/message.js';
import type { QueuedDelivery } from '../../broker/session.js';
import type { StompConnection } from './connection.js';
import { messageHead, messageTail } from './headers.js';
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
    const headers: [string, string][] = [];
    const messageId = startHeaders(conn, subscription, headers);
    if (delivery.redelivered)
      headers.push(['redelivered', 'true'], ['delivery-count', String(delivery.deliveryCount)]);
    if (subscription.ackMode === 'auto') {
      open = writeMessage(conn, headers, delivery.message, 1);
      // Acknowledged as written: the queue never waits on a client that asked for none.
      subscription.handle!.ack(delivery.deliveryId);
    } else {
      conn.subscriptions.awaitAck(messageId, {
        kind: 'queue',
        subscription,
        deliveryId: delivery.deliveryId,
      });
      open = writeMessage(conn, headers, delivery.message, 1);
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
  const table = conn.subscriptions;
  let pending: PendingDelivery | undefined;
  let open = true;
  const send = (subscription: TopicSubscription): void => {
    const headers: [string, string][] = [];
    const messageId = startHeaders(conn, subscription, headers);
    if (delivery.retain) headers.push(['retained', 'true']);
    if (subscription.ackMode !== 'auto') {
      pending ??= { packetId: delivery.packetId, remaining: 0 };
      pending.remaining++;
      table.awaitAck(messageId, { kind: 'topic', subscription, pending });
    }
    if (!writeMessage(conn, headers, delivery.message, delivery.qos)) open = false;
  };
  for (const id of delivery.subscriptionIds ?? []) {
    const target = table.targets.get(id);
    if (target === undefined) continue;
    if ('brokerId' in target) for (const subscription of target.subscriptions) send(subscription);
    else send(target);
  }
  if (pending === undefined && delivery.packetId !== undefined)
    conn.broker.complete(conn.session!, delivery.packetId);
  return open;
}

/** The headers every MESSAGE starts with; returns its message id. */
function startHeaders(
  conn: StompConnection,
  subscription: StompSubscription,
  headers: [string, string][],
): string {
  const messageId = conn.subscriptions.messageId();
  headers.push(['subscription', subscription.id], ['message-id', messageId]);
  // STOMP 1.2 "MESSAGE": the `ack` header names the message in ACK/NACK when acknowledgements are asked for.
  if (subscription.ackMode !== 'auto' && conn.version === '1.2') headers.push(['ack', messageId]);
  return messageId;
}

/** Writes one MESSAGE, counted as the traffic metrics count an MQTT PUBLISH of that QoS. */
function writeMessage(
  conn: StompConnection,
  headers: readonly (readonly [string, string])[],
  message: QueuedDelivery['message'],
  qos: QoS,
): boolean {
  const { traffic } = conn;
  traffic.messagesSent[qos]++;
  traffic.payloadBytesSent[qos] += message.payload.length;
  const tail = messageTail(message, conn.version);
  conn.write(messageHead(headers, conn.version));
  return conn.write(tail);
}
