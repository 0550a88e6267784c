import type { MessageInit } from '../../broker/broker.js';
import type { Message, QoS } from '../../broker/message.js';
import type { QueueRefusal } from '../../broker/queues.js';
import type { StompFrame } from '../../codec/stomp/index.js';
import { describeTopicFault, topicFault } from '../../limits/topic-limits.js';
import type { StompConnection } from './connection.js';
import { QUEUE_TOPIC_PREFIX, sendDestination } from './destinations.js';
import { missingHeader, StompViolation } from './errors.js';
import { sendProperties } from './headers.js';

/**
 * SEND (STOMP 1.2 "SEND"): the frame becomes a message on the destination's MQTT topic,
 * authorized as a publish by this client; inside a transaction it is held until COMMIT.
 * QoS 1 unless `persistent:false` says 0, so MQTT QoS 1 subscribers get it reliably; the
 * receipt waits until the message is durable (a queue's, or a persistent session's copy).
 */
export function handleSend(conn: StompConnection, frame: StompFrame): void | Promise<void> {
  // The headers that steer the frame, read in one pass; STOMP 1.2 "Repeated Header Entries":
  // the first occurrence counts. Any other header makes message properties (headers.ts).
  const { headers } = frame;
  let destination: string | undefined;
  let transaction: string | undefined;
  let receipt: string | undefined;
  let expires: string | undefined;
  let persistent: string | undefined;
  let retain: string | undefined;
  let carriesProperties = false;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    const value = header[1];
    switch (header[0]) {
      case 'destination':
        destination ??= value;
        break;
      case 'transaction':
        transaction ??= value;
        break;
      case 'receipt':
        receipt ??= value;
        break;
      case 'expires':
        expires ??= value;
        break;
      case 'persistent':
        persistent ??= value;
        break;
      case 'retain':
        retain ??= value;
        break;
      case 'content-length':
        break;
      default:
        carriesProperties = true;
    }
  }
  if (destination === undefined || destination === '') throw missingHeader('SEND', 'destination');
  const message = makeMessage(conn, frame, destination, expires, persistent, retain, carriesProperties);
  if (message === undefined) {
    // Already expired: accepted and dropped, as the broker would drop it at delivery.
    if (transaction !== undefined) conn.transactions.assertOpen(transaction);
    conn.sendReceipt(receipt);
    return;
  }
  const allowed = conn.broker.authorizePublish(conn.client!, message);
  if (typeof allowed === 'boolean') return accept(conn, message, destination, transaction, receipt, allowed);
  const to = destination;
  return allowed.then((ok) => accept(conn, message, to, transaction, receipt, ok));
}

function accept(
  conn: StompConnection,
  message: Message,
  destination: string,
  transaction: string | undefined,
  receipt: string | undefined,
  allowed: boolean,
): void {
  if (conn.closed) return;
  // Refused publishes end the connection, as other STOMP brokers do: a client that sends
  // without a receipt would otherwise never learn that its messages go nowhere.
  if (!allowed) throw new StompViolation(`not authorized to send to ${destination}`);
  if (transaction !== undefined) {
    conn.transactions.add(transaction, { kind: 'send', message, destination });
    conn.sendReceipt(receipt);
    return;
  }
  conn.sendReceipt(receipt, publish(conn, message, destination));
}

/** Publishes an authorized message; returns what durability the receipt waits for. */
export function publish(
  conn: StompConnection,
  message: Message,
  destination: string,
): Promise<void> | undefined {
  const result = conn.broker.publish(message, conn.client);
  const refusal = result.refusal;
  if (refusal !== undefined) throw new StompViolation(queueRefusalMessage(refusal, destination));
  return result.persisted;
}

/** What a client is told when a queue does not take its message (a SEND, or a COMMIT's). */
export function queueRefusalMessage(refusal: QueueRefusal, destination: string): string {
  if (refusal === 'queue-full') return `${destination} is full: message not accepted`;
  if (refusal === 'too-many-queues') return `too many queues already: cannot make ${destination}`;
  return `${destination} does not accept messages (${refusal})`;
}

/** Where a SEND destination publishes: its MQTT topic, and whether that is a queue's. */
interface SendTarget {
  readonly topic: string;
  readonly queue: boolean;
}

/** Valid SEND destinations seen lately: a client sends to a few destinations over and over. */
const sendTargets = new Map<string, SendTarget>();
const MAX_SEND_TARGETS = 4096;

/** The target of a SEND destination; a string says why it is not one. */
function sendTargetOf(destination: string): SendTarget | string {
  const cached = sendTargets.get(destination);
  if (cached !== undefined) return cached;
  const parsed = sendDestination(destination);
  if (typeof parsed === 'string') return parsed;
  const target: SendTarget =
    parsed.kind === 'topic'
      ? { topic: parsed.topic, queue: false }
      : { topic: QUEUE_TOPIC_PREFIX + parsed.name, queue: true };
  if (sendTargets.size >= MAX_SEND_TARGETS) sendTargets.clear();
  sendTargets.set(destination, target);
  return target;
}

/** The message a SEND makes; undefined when it has already expired. */
function makeMessage(
  conn: StompConnection,
  frame: StompFrame,
  destination: string,
  expires: string | undefined,
  persistent: string | undefined,
  retainHeader: string | undefined,
  carriesProperties: boolean,
): Message | undefined {
  const target = sendTargetOf(destination);
  if (typeof target === 'string') throw new StompViolation(`invalid destination ${destination}: ${target}`);
  const { topic } = target;
  const { maxTopicLength, maxTopicLevels } = conn.options;
  const fault = topicFault(topic, maxTopicLength, maxTopicLevels);
  if (fault !== undefined)
    throw new StompViolation(
      `invalid destination ${destination}: ${describeTopicFault(fault, maxTopicLength, maxTopicLevels)}`,
    );
  let expiryInterval: number | undefined;
  if (expires !== undefined && expires !== '0') {
    if (!/^[0-9]{1,16}$/.test(expires))
      throw new StompViolation(`expires ${expires} is not a time in milliseconds since the epoch (0: never)`);
    const left = Number(expires) - Date.now();
    if (left <= 0) return undefined;
    expiryInterval = left / 1000;
  }
  const { options } = conn.broker;
  const retain = !target.queue && retainHeader === 'true';
  if (retain && !options.retainAvailable) throw new StompViolation('retained messages are not supported');
  const qos: QoS = persistent === 'false' ? 0 : options.maximumQoS > 0 ? 1 : 0;
  const init: MessageInit = { topic, payload: frame.body, qos, retain, origin: conn.session!.clientId };
  if (carriesProperties) {
    const properties = sendProperties(frame);
    if (properties !== undefined) init.properties = properties;
  }
  if (expiryInterval !== undefined) init.expiryInterval = expiryInterval;
  return conn.broker.createMessage(init);
}
