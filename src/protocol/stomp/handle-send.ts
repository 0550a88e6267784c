import type { Message, QoS } from '../../broker/message.js';
import { getHeader, type StompFrame } from '../../codec/stomp/index.js';
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
  const destination = getHeader(frame, 'destination');
  if (destination === undefined || destination === '') throw missingHeader('SEND', 'destination');
  const message = makeMessage(conn, frame, destination);
  const transaction = getHeader(frame, 'transaction');
  if (message === undefined) {
    // Already expired: accepted and dropped, as the broker would drop it at delivery.
    if (transaction !== undefined) conn.transactions.assertOpen(transaction);
    conn.receipt(frame);
    return;
  }
  const proceed = (allowed: boolean): void => {
    if (conn.closed) return;
    // Refused publishes end the connection, as other STOMP brokers do: a client that sends
    // without a receipt would otherwise never learn that its messages go nowhere.
    if (!allowed) throw new StompViolation(`not authorized to send to ${destination}`);
    if (transaction !== undefined) {
      conn.transactions.add(transaction, { kind: 'send', message, destination });
      conn.receipt(frame);
      return;
    }
    conn.receipt(frame, publish(conn, message, destination));
  };
  const allowed = conn.broker.authorizePublish(conn.client!, message);
  if (typeof allowed === 'boolean') return proceed(allowed);
  return allowed.then(proceed);
}

/** Publishes an authorized message; returns what durability the receipt waits for. */
export function publish(
  conn: StompConnection,
  message: Message,
  destination: string,
): Promise<void> | undefined {
  const result = conn.broker.publish(message, conn.client);
  const refusal = result.refusal;
  if (refusal === 'queue-full') throw new StompViolation(`${destination} is full: message not accepted`);
  if (refusal !== undefined) throw new StompViolation(`${destination} does not accept messages (${refusal})`);
  return result.persisted;
}

/** The message a SEND makes; undefined when it has already expired. */
function makeMessage(conn: StompConnection, frame: StompFrame, destination: string): Message | undefined {
  const target = sendDestination(destination);
  if (typeof target === 'string') throw new StompViolation(`invalid destination ${destination}: ${target}`);
  const topic = target.kind === 'topic' ? target.topic : QUEUE_TOPIC_PREFIX + target.name;
  const { maxTopicLength, maxTopicLevels } = conn.options;
  const fault = topicFault(topic, maxTopicLength, maxTopicLevels);
  if (fault !== undefined)
    throw new StompViolation(
      `invalid destination ${destination}: ${describeTopicFault(fault, maxTopicLength, maxTopicLevels)}`,
    );
  let expiryInterval: number | undefined;
  const expires = getHeader(frame, 'expires');
  if (expires !== undefined && expires !== '0') {
    if (!/^[0-9]{1,16}$/.test(expires))
      throw new StompViolation(`expires ${expires} is not a time in milliseconds since the epoch (0: never)`);
    const left = Number(expires) - Date.now();
    if (left <= 0) return undefined;
    expiryInterval = left / 1000;
  }
  const { options } = conn.broker;
  const retain = target.kind === 'topic' && getHeader(frame, 'retain') === 'true';
  if (retain && !options.retainAvailable) throw new StompViolation('retained messages are not supported');
  const qos: QoS = getHeader(frame, 'persistent') === 'false' ? 0 : options.maximumQoS > 0 ? 1 : 0;
  const properties = sendProperties(frame);
  return conn.broker.createMessage({
    topic,
    payload: frame.body,
    qos,
    retain,
    ...(properties === undefined ? {} : { properties }),
    ...(expiryInterval === undefined ? {} : { expiryInterval }),
    origin: conn.session!.clientId,
  });
}
