import type { StompFrame } from '../../codec/stomp/index.js';
import type { StompConnection } from './connection.js';
import { missingHeader, StompViolation } from './errors.js';
import type { Unacked } from './subscriptions.js';

/**
 * ACK and NACK (STOMP 1.2 "ACK", "NACK"). The MESSAGE is named by `id` (1.2, the MESSAGE's
 * `ack` header) or `message-id` (1.0, 1.1; with `subscription` in 1.1). Inside a transaction
 * the acknowledgement is held until COMMIT.
 */
export function handleAck(conn: StompConnection, frame: StompFrame): void {
  const negative = frame.command === 'NACK';
  if (negative && conn.version === '1.0') throw new StompViolation('NACK is not part of STOMP 1.0');
  const name = conn.version === '1.2' ? 'id' : 'message-id';
  // One pass; STOMP 1.2 "Repeated Header Entries": the first occurrence counts.
  let messageId: string | undefined;
  let subscription: string | undefined;
  let transaction: string | undefined;
  let receipt: string | undefined;
  const { headers } = frame;
  for (let i = 0; i < headers.length; i++) {
    const [key, value] = headers[i]!;
    if (key === name) messageId ??= value;
    else if (key === 'subscription') subscription ??= value;
    else if (key === 'transaction') transaction ??= value;
    else if (key === 'receipt') receipt ??= value;
  }
  if (messageId === undefined) throw missingHeader(frame.command, name);
  const entry = conn.subscriptions.unacked.get(messageId);
  if (entry === undefined)
    throw new StompViolation(
      `${frame.command} of '${messageId}': no message awaits acknowledgement under it`,
    );
  if (conn.version !== '1.2' && subscription !== undefined && subscription !== entry.subscription.id)
    throw new StompViolation(
      `${frame.command} of '${messageId}': it was not sent to subscription '${subscription}'`,
    );
  if (transaction !== undefined) {
    conn.transactions.add(transaction, { kind: negative ? 'nack' : 'ack', messageId });
  } else {
    applyAck(conn, messageId, negative);
  }
  conn.sendReceipt(receipt);
}

/**
 * Settles a MESSAGE (and, for a `client` subscription, every earlier one). On a topic a NACK
 * only lets go of the message: a topic keeps no copy to redeliver. On a queue it redelivers.
 * A message settled since (a transaction's ACK of a message acknowledged outside it) is skipped.
 */
export function applyAck(conn: StompConnection, messageId: string, negative: boolean): void {
  const settled = conn.subscriptions.settle(messageId);
  if (settled.length === 0) return;
  releaseTopicMessages(conn, settled);
  // The queue settles a `client` subscription's earlier deliveries itself.
  const last = settled[settled.length - 1]!;
  if (last.kind === 'queue' && !last.subscription.closed) {
    const handle = last.subscription.handle;
    if (negative) handle?.nack(last.deliveryId);
    else handle?.ack(last.deliveryId);
  }
  conn.wake();
}

/** Topic MESSAGEs settled: a QoS 1 delivery is complete once every MESSAGE made of it is. */
export function releaseTopicMessages(conn: StompConnection, settled: readonly Unacked[]): void {
  for (const entry of settled) {
    if (entry.kind !== 'topic') continue;
    const { pending } = entry;
    if (--pending.remaining === 0 && pending.packetId !== undefined)
      conn.broker.complete(conn.session!, pending.packetId);
  }
}
