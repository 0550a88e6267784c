import { isExpired, type Message, remainingExpiry } from '../../broker/message.js';
import type { QueuedDelivery } from '../../broker/session.js';
import {
  type AckPacket,
  encode,
  PublishTemplate,
  type PublishVariant,
  ReasonCode,
} from '../../codec/mqtt/index.js';
import type { MqttConnection } from './connection.js';

/**
 * Outbound messages (MQTT 4.3, 4.9): turns the session's queued deliveries into PUBLISH
 * packets as far as flow control allows, and moves them along as the client acknowledges.
 */

/** One encoding per message, shared by every subscriber it goes to (kept on the message itself). */
function templateFor(message: Message): PublishTemplate {
  const cached = message.encoded;
  if (cached instanceof PublishTemplate) return cached;
  const template = new PublishTemplate(message.topic, message.payload, message.properties);
  message.encoded = template;
  return template;
}

/** Reused for every send: the template reads it synchronously. */
const variant: PublishVariant = { qos: 0 };

/*
 * Slow consumers: each connection's unsent bytes (`conn.unsentBytes`, see OutboundWriter) are bounded.
 *
 * - Below `outboundSoftLimit` (never less than the stream's own high-water mark) deliveries
 *   move from the session queue to the socket as flow control allows.
 * - Above it the client is a slow consumer: QoS 1/2 deliveries stay in the session queue
 *   (bounded by `maxQueuedMessages`, as for an offline client) and QoS 0 deliveries to it are
 *   dropped as they are routed (the `dropped` event, reason 'slow-consumer'): QoS 0 may be
 *   lost (MQTT 4.3.1), and queueing it for a client that cannot keep up only costs memory.
 *   When the socket has written everything out ('drain') normal delivery resumes.
 * - Above `outboundHardLimit` (never less than the soft limit plus `maxPacketSize`) the
 *   connection is closed with DISCONNECT 0x97 Quota exceeded. Only a client that stopped
 *   reading gets there: past the soft limit no delivery is written, only what answers the
 *   client's own packets (acknowledgements, PINGRESP), so the buffer is the soft limit plus
 *   one delivery plus what the client itself provoked. No client can hold the broker's memory.
 *
 * The connection's OutboundWriter reports crossing either limit (MqttConnection's constructor).
 */

/**
 * Sends queued deliveries until the queue is empty, the in-flight window is full
 * (the client's Receive Maximum, MQTT-4.9.0-2, and our own cap) or the client is a slow
 * consumer (see "Slow consumers" above).
 */
export function drainDeliveries(conn: MqttConnection): void {
  const session = conn.session!;
  if (conn.qos0DropReason !== undefined) return;
  const window = Math.min(conn.clientReceiveMaximum, conn.options.maxInflightMessages);
  const now = Date.now();
  for (;;) {
    const delivery = session.nextDelivery();
    if (delivery === undefined) break;
    if (delivery.qos > 0 && session.inflight.size > window) {
      session.unshift(delivery);
      break;
    }
    // MQTT-3.3.2-5: an expired message is not sent.
    if (isExpired(delivery.message, now)) {
      conn.broker.discard(session, delivery, 'expired');
      continue;
    }
    const bytes = encodeDelivery(conn, delivery, false, now);
    if (bytes === undefined) continue;
    // A queue's QoS 0 delivery is acknowledged to its queue as it goes out (Broker.sent).
    const durable =
      delivery.qos > 0 || delivery.queueReceipt !== undefined
        ? conn.broker.sent(session, delivery)
        : undefined;
    // A QoS 2 PUBLISH waits for its packet id to be stored (see Broker.sent), and what follows it waits too.
    if (durable !== undefined || conn.holdingWrites) {
      conn.writeAfter(durable, bytes);
      continue;
    }
    // The connection corks writes until the next tick: a burst leaves in one syscall.
    if (!conn.write(bytes)) break;
  }
}

/**
 * Encodes one delivery for this connection: its topic alias, subscription identifiers and
 * remaining expiry. Returns undefined, having dropped it, when it exceeds the client's
 * Maximum Packet Size (MQTT-3.1.2-24/25).
 */
function encodeDelivery(
  conn: MqttConnection,
  delivery: QueuedDelivery,
  dup: boolean,
  now: number,
): Buffer | undefined {
  const { message } = delivery;
  const template = templateFor(message);
  const v5 = conn.version === 5;
  variant.qos = delivery.qos;
  variant.packetId = delivery.packetId;
  variant.dup = dup;
  variant.retain = delivery.retain;
  variant.subscriptionIdentifiers = v5 ? delivery.subscriptionIds : undefined;
  variant.messageExpiryInterval = v5 ? remainingExpiry(message, now) : undefined;
  variant.topicAlias = undefined;
  variant.omitTopic = false;
  if (v5 && !dup) {
    const alias = conn.outboundAliases.aliasFor(message.topic);
    if (alias !== 0) {
      variant.topicAlias = alias > 0 ? alias : -alias;
      variant.omitTopic = alias > 0;
    }
  }
  const size = template.encodedLength(conn.version, variant);
  if (size > conn.clientMaxPacketSize) {
    conn.broker.discard(conn.session!, delivery, 'packet-too-large');
    return undefined;
  }
  const { traffic } = conn;
  traffic.messagesSent[delivery.qos]++;
  traffic.payloadBytesSent[delivery.qos] += message.payload.length;
  return template.encode(conn.version, variant);
}

/**
 * MQTT-4.4.0-1: on resuming a session, resend every unacknowledged PUBLISH (with DUP, same
 * packet id) and PUBREL, in their original order.
 */
export function resendInflight(conn: MqttConnection): void {
  const session = conn.session!;
  if (session.inflight.size === 0) return;
  const now = Date.now();
  for (const delivery of [...session.inflight.values()]) {
    // The client may be back within one disk sync of the state being recorded: resend only
    // once it is durable, so what the client is told matches what a crash would keep.
    const durable = conn.broker.resent(session, delivery);
    const bytes = delivery.released
      ? encode({ type: 'pubrel', packetId: delivery.packetId! }, conn.version)
      : encodeDelivery(conn, delivery, true, now);
    if (bytes === undefined) continue;
    if (durable !== undefined || conn.holdingWrites) conn.writeAfter(durable, bytes);
    else conn.write(bytes);
  }
}

/**
 * PUBACK, PUBREC and PUBCOMP from the client (MQTT 4.3.2, 4.3.3). A PUBREC with a failure
 * code ends the exchange like a PUBCOMP (MQTT 4.3.3, 5.0).
 */
export function handleDeliveryAck(
  conn: MqttConnection,
  packet: AckPacket<'puback' | 'pubrec' | 'pubcomp'>,
): void {
  const session = conn.session!;
  const { broker } = conn;
  if (packet.type === 'pubrec' && (packet.reasonCode ?? 0) < 0x80) {
    const released = broker.released(session, packet.packetId);
    const reasonCode = released !== false || conn.version < 5 ? 0 : ReasonCode.PacketIdentifierNotFound;
    const pubrel = (): void => {
      conn.send({ type: 'pubrel', packetId: packet.packetId, reasonCode });
    };
    // Only once the store knows of the PUBREC (see Broker.released); unsaved, the client resends it.
    if (released === false || released === undefined) pubrel();
    else released.then(pubrel, (error: unknown) => conn.fail(error));
    return;
  }
  if (broker.complete(session, packet.packetId)) conn.wake();
}
