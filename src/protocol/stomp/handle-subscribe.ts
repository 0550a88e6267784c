import type { SubscribeResult } from '../../broker/broker.js';
import type { QoS, SubscriptionOptions } from '../../broker/message.js';
import { getHeader, StompCodecError, type StompFrame, type StompVersion } from '../../codec/stomp/index.js';
import { describeTopicFault, topicFault } from '../../limits/topic-limits.js';
import type { StompConnection } from './connection.js';
import { subscribeDestination } from './destinations.js';
import { missingHeader, StompViolation } from './errors.js';
import { releaseTopicMessages } from './handle-ack.js';
import { messagePrefix } from './message-frame.js';
import type {
  FilterEntry,
  QueueConsumerSubscription,
  StompAckMode,
  StompSubscription,
  TopicSubscription,
} from './subscriptions.js';

const ACK_MODES: ReadonlySet<string> = new Set(['auto', 'client', 'client-individual']);

/** Why a subscription was refused, for the ERROR frame. */
const REFUSALS: Record<string, string> = {
  'not-authorized': 'not authorized to subscribe to',
  'wildcards-not-supported': 'wildcard subscriptions are not supported:',
  'shared-not-supported': 'shared subscriptions are not supported:',
  'quota-exceeded': 'too many queues already: cannot make',
};

/**
 * SUBSCRIBE (STOMP 1.2 "SUBSCRIBE"). A topic subscription is a broker subscription of its
 * filter (shared by the connection's subscriptions of the same filter), at QoS 1 so that a
 * slow reader's messages wait in its session queue rather than being dropped; `retained:true`
 * asks for the retained messages it matches. A queue subscription is a consumer of the queue,
 * with `prefetch-count` (or ActiveMQ's `activemq.prefetchSize`) unacknowledged messages at most.
 * A refusal is an ERROR: the client would otherwise wait for messages that never come.
 */
export function handleSubscribe(conn: StompConnection, frame: StompFrame): void | Promise<void> {
  const destination = getHeader(frame, 'destination');
  if (destination === undefined || destination === '') throw missingHeader('SUBSCRIBE', 'destination');
  // STOMP 1.0 makes the id optional; the destination then names the subscription.
  const id = getHeader(frame, 'id') ?? (conn.version === '1.0' ? destination : undefined);
  if (id === undefined) throw missingHeader('SUBSCRIBE', 'id');
  const { byId } = conn.subscriptions;
  if (byId.has(id)) throw new StompViolation(`subscription id '${id}' is already in use`);
  const ack = getHeader(frame, 'ack') ?? 'auto';
  if (!ACK_MODES.has(ack))
    throw new StompViolation(`ack mode '${ack}' is not one of auto, client, client-individual`);
  const ackMode = ack as StompAckMode;
  const max = conn.options.maxSubscriptions;
  if (max > 0 && byId.size >= max)
    throw new StompViolation(`a connection may hold at most ${max} subscriptions`);
  const target = subscribeDestination(destination);
  if (typeof target === 'string') throw new StompViolation(`invalid destination ${destination}: ${target}`);
  const messagePrefix = prefixFor(id, conn.version);
  if (target.kind === 'queue') {
    const prefetch = prefetchOf(frame);
    const subscription: QueueConsumerSubscription = {
      kind: 'queue',
      id,
      destination,
      ackMode,
      messagePrefix,
      name: target.name,
      unacked: new Set(),
      handle: undefined,
      closed: false,
    };
    return subscribeQueue(conn, frame, subscription, prefetch);
  }
  const { maxTopicLength, maxTopicLevels } = conn.options;
  const fault = topicFault(target.filter, maxTopicLength, maxTopicLevels);
  if (fault !== undefined)
    throw new StompViolation(
      `invalid destination ${destination}: ${describeTopicFault(fault, maxTopicLength, maxTopicLevels)}`,
    );
  const subscription: TopicSubscription = {
    kind: 'topic',
    id,
    destination,
    ackMode,
    messagePrefix,
    filter: target.filter,
    ownId: conn.subscriptions.allocateId(),
    unacked: new Set(),
  };
  const retained = getHeader(frame, 'retained') === 'true';
  const entry = conn.subscriptions.filters.get(target.filter);
  if (entry !== undefined) {
    addTopicSubscription(conn, frame, entry, subscription, retained);
    return;
  }
  return subscribeFilter(conn, frame, subscription, retained);
}

/** The subscription's MESSAGE prefix; an id its MESSAGE frames could not carry is refused here. */
function prefixFor(id: string, version: StompVersion): Buffer {
  try {
    return messagePrefix(id, version);
  } catch (error) {
    if (error instanceof StompCodecError)
      throw new StompViolation(`subscription id cannot be sent back in MESSAGE frames: ${error.message}`);
    throw error;
  }
}

/** A topic subscription's broker options: QoS 1, no retained messages on subscribe (asked for apart). */
function topicOptions(conn: StompConnection, subscriptionId: number): SubscriptionOptions {
  return {
    qos: Math.min(1, conn.broker.options.maximumQoS) as QoS,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 2,
    subscriptionId,
  };
}

async function subscribeFilter(
  conn: StompConnection,
  frame: StompFrame,
  subscription: TopicSubscription,
  retained: boolean,
): Promise<void> {
  const { filter } = subscription;
  const table = conn.subscriptions;
  const brokerId = table.allocateId();
  const [result] = await conn.broker.subscribe(conn.session!, [
    { filter, options: topicOptions(conn, brokerId) },
  ]);
  if (conn.closed || result === undefined) return;
  if (!result.ok) {
    const reason = REFUSALS[result.refusal] ?? 'cannot subscribe to';
    throw new StompViolation(`${reason} ${subscription.destination}`);
  }
  const entry: FilterEntry = { filter, brokerId, subscriptions: [] };
  table.filters.set(filter, entry);
  table.targets.set(brokerId, entry);
  addTopicSubscription(conn, frame, entry, subscription, retained);
}

function addTopicSubscription(
  conn: StompConnection,
  frame: StompFrame,
  entry: FilterEntry,
  subscription: TopicSubscription,
  retained: boolean,
): void {
  const table = conn.subscriptions;
  entry.subscriptions.push(subscription);
  table.byId.set(subscription.id, subscription);
  table.targets.set(subscription.ownId, subscription);
  conn.receipt(frame);
  if (!retained) return;
  // Under its own identifier: the retained messages go to this subscription only.
  const options: SubscriptionOptions = { ...topicOptions(conn, subscription.ownId), retainHandling: 0 };
  const result: SubscribeResult = {
    ok: true,
    qos: options.qos,
    isNew: true,
    request: { filter: entry.filter, options },
  };
  conn.broker.deliverRetained(conn.session!, [result]);
}

/** `prefetch-count`, or ActiveMQ's `activemq.prefetchSize`; 0 (the queue's default) when absent. */
function prefetchOf(frame: StompFrame): number {
  const text = getHeader(frame, 'prefetch-count') ?? getHeader(frame, 'activemq.prefetchSize');
  if (text === undefined) return 0;
  if (!/^[0-9]{1,9}$/.test(text)) throw new StompViolation(`prefetch-count '${text}' is not a whole number`);
  return Number(text);
}

async function subscribeQueue(
  conn: StompConnection,
  frame: StompFrame,
  subscription: QueueConsumerSubscription,
  prefetch: number,
): Promise<void> {
  const table = conn.subscriptions;
  // Known before the broker answers: a delivery may come at once.
  table.byId.set(subscription.id, subscription);
  // `auto` consumes as client-individual, acknowledged as each MESSAGE is written: the prefetch
  // then bounds what waits for a slow reader, where a queue's own `auto` would push everything.
  const result = await conn.broker.consumeQueue(
    conn.session!,
    subscription.name,
    { ackMode: subscription.ackMode === 'auto' ? 'client-individual' : subscription.ackMode, prefetch },
    { deliver: (delivery) => conn.enqueueQueueDelivery(subscription, delivery) },
  );
  if (typeof result === 'string') {
    table.byId.delete(subscription.id);
    const reason = REFUSALS[result] ?? 'cannot subscribe to';
    throw new StompViolation(`${reason} ${subscription.destination}`);
  }
  if (conn.closed || subscription.closed) {
    result.close();
    return;
  }
  subscription.handle = result;
  conn.receipt(frame);
  conn.wake();
}

/**
 * UNSUBSCRIBE (STOMP 1.2 "UNSUBSCRIBE"): by `id`. STOMP 1.0 also allows naming the destination
 * instead, which ends every subscription to it, whatever id its SUBSCRIBE gave.
 */
export function handleUnsubscribe(conn: StompConnection, frame: StompFrame): void {
  const id = getHeader(frame, 'id');
  const ended: StompSubscription[] = [];
  if (id !== undefined) {
    const subscription = conn.subscriptions.byId.get(id);
    if (subscription === undefined) throw new StompViolation(`no subscription with id '${id}'`);
    ended.push(subscription);
  } else {
    const destination = conn.version === '1.0' ? getHeader(frame, 'destination') : undefined;
    if (destination === undefined) throw missingHeader('UNSUBSCRIBE', 'id');
    for (const subscription of conn.subscriptions.byId.values())
      if (subscription.destination === destination) ended.push(subscription);
    if (ended.length === 0) throw new StompViolation(`no subscription to '${destination}'`);
  }
  for (const subscription of ended) endSubscription(conn, subscription);
  conn.receipt(frame);
}

/**
 * Ends a subscription: what it had unacknowledged is let go (a queue redelivers it), its
 * filter's broker subscription goes with the last STOMP subscription of that filter.
 */
export function endSubscription(conn: StompConnection, subscription: StompSubscription): void {
  const table = conn.subscriptions;
  table.byId.delete(subscription.id);
  releaseTopicMessages(conn, table.settleAll(subscription));
  if (subscription.kind === 'queue') {
    subscription.closed = true;
    subscription.handle?.close();
    conn.wake();
    return;
  }
  table.targets.delete(subscription.ownId);
  const entry = table.filters.get(subscription.filter);
  if (entry === undefined) return;
  const index = entry.subscriptions.indexOf(subscription);
  if (index >= 0) entry.subscriptions.splice(index, 1);
  if (entry.subscriptions.length === 0) {
    table.filters.delete(entry.filter);
    table.targets.delete(entry.brokerId);
    conn.broker.unsubscribe(conn.session!, [entry.filter]);
  }
  conn.wake();
}
