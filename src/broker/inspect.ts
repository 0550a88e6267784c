import type { Broker } from './broker.js';
import type { Message, QoS } from './message.js';
import type { Session } from './session.js';

/**
 * Read access to the broker's state for operators (the admin API), and the few actions an
 * administrator takes. Protocol-neutral: a client is a session with a connection attached,
 * whatever protocol that connection speaks.
 */

/** A connected client, as an operator sees it. */
export interface ClientSummary {
  readonly clientId: string;
  readonly username: string | null;
  readonly protocol: string;
  readonly protocolVersion: number;
  readonly remoteAddress: string | null;
  readonly remotePort: number | null;
  readonly listener: string | null;
  readonly secure: boolean;
  /** Seconds. */
  readonly keepAlive: number;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  /** Session Expiry Interval in seconds. */
  readonly expiryInterval: number;
  /** Deliveries sent and not yet acknowledged. */
  readonly inflight: number;
  /** Deliveries waiting to be sent. */
  readonly queued: number;
  readonly subscriptions: number;
}

/** A session, connected or not. */
export interface SessionSummary {
  readonly clientId: string;
  readonly connected: boolean;
  readonly expiryInterval: number;
  /** When its last connection ended, in ms since the epoch (null while connected). */
  readonly disconnectedAt: number | null;
  readonly subscriptions: number;
  readonly queued: number;
  readonly inflight: number;
}

/** One subscription of one session. */
export interface SubscriptionSummary {
  readonly clientId: string;
  /** The filter as subscribed, `$share/group/` prefix included. */
  readonly filter: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
}

/** What the broker holds, counted. */
export interface BrokerCounts {
  readonly connections: number;
  readonly sessions: number;
  readonly subscriptions: number;
  readonly retained: number;
}

/** Every connected client whose client id or username contains `search` (all when empty). */
export function connectedClients(broker: Broker, search = ''): ClientSummary[] {
  const found: ClientSummary[] = [];
  for (const session of broker.sessions.values()) {
    const summary = clientSummary(session);
    if (summary === undefined) continue;
    if (search === '' || summary.clientId.includes(search) || (summary.username ?? '').includes(search))
      found.push(summary);
  }
  return found;
}

/** One connected client, or undefined when no client with that id is connected. */
export function connectedClient(broker: Broker, clientId: string): ClientSummary | undefined {
  const session = broker.sessions.get(clientId);
  return session === undefined ? undefined : clientSummary(session);
}

function clientSummary(session: Session): ClientSummary | undefined {
  const client = session.client;
  if (session.link === undefined || client === undefined) return undefined;
  return {
    clientId: session.clientId,
    username: client.username ?? null,
    protocol: client.protocol,
    protocolVersion: client.protocolVersion,
    remoteAddress: client.remoteAddress ?? null,
    remotePort: client.remotePort ?? null,
    listener: client.listener ?? null,
    secure: client.secure ?? false,
    keepAlive: client.keepAlive,
    connectedAt: client.connectedAt,
    expiryInterval: session.expiryInterval,
    inflight: session.inflight.size,
    queued: session.queuedCount,
    subscriptions: session.subscriptions.size,
  };
}

/** Every session whose client id (or connected client's username) contains `search`. */
export function sessionList(broker: Broker, search = ''): SessionSummary[] {
  const found: SessionSummary[] = [];
  for (const session of broker.sessions.values()) {
    const username = session.client?.username ?? '';
    if (search !== '' && !session.clientId.includes(search) && !username.includes(search)) continue;
    found.push({
      clientId: session.clientId,
      connected: session.connected,
      expiryInterval: session.expiryInterval,
      disconnectedAt: session.disconnectedAt ?? null,
      subscriptions: session.subscriptions.size,
      queued: session.queuedCount,
      inflight: session.inflight.size,
    });
  }
  return found;
}

/** What `subscriptionList` selects: one client's, and/or filters containing a text. */
export interface SubscriptionQuery {
  /** Only this client's subscriptions. */
  readonly clientId?: string;
  /** Only filters containing this text. */
  readonly filter?: string;
}

/** Subscriptions of every session (or of one), optionally only filters containing a text. */
export function subscriptionList(broker: Broker, query: SubscriptionQuery = {}): SubscriptionSummary[] {
  const sessions =
    query.clientId === undefined
      ? broker.sessions.values()
      : [broker.sessions.get(query.clientId)].filter((s): s is Session => s !== undefined);
  const found: SubscriptionSummary[] = [];
  for (const session of sessions) {
    for (const subscription of session.subscriptions.values()) {
      if (query.filter !== undefined && !subscription.filter.includes(query.filter)) continue;
      const { qos, noLocal, retainAsPublished, retainHandling } = subscription.options;
      found.push({
        clientId: session.clientId,
        filter: subscription.filter,
        qos,
        noLocal,
        retainAsPublished,
        retainHandling,
      });
    }
  }
  return found;
}

/** The live retained messages whose topic matches the topic filter `filter`. */
export function retainedMessages(broker: Broker, filter: string): Message[] {
  const found: Message[] = [];
  broker.matchRetained(filter, (message) => found.push(message));
  return found;
}

/**
 * Disconnects a client as an administrative action (MQTT 5 sends DISCONNECT 0x98); its
 * session stays, as after any lost connection. False when no such client is connected.
 */
export function disconnectClient(broker: Broker, clientId: string): boolean {
  const link = broker.sessions.get(clientId)?.link;
  if (link === undefined) return false;
  link.close('administrative-action');
  return true;
}

/** Deletes a session, disconnecting its client first. False when there is no such session. */
export function deleteSession(broker: Broker, clientId: string): boolean {
  return broker.removeSession(clientId);
}

/** Clears the retained message of `topic` (resolves once stored). False when there was none. */
export function clearRetained(broker: Broker, topic: string): Promise<boolean> {
  return broker.clearRetained(topic);
}

/** Connections, sessions, subscriptions and retained messages held now. */
export function brokerCounts(broker: Broker): BrokerCounts {
  let connections = 0;
  let subscriptions = 0;
  for (const session of broker.sessions.values()) {
    if (session.connected) connections++;
    subscriptions += session.subscriptions.size;
  }
  return { connections, sessions: broker.sessions.size, subscriptions, retained: broker.retainedCount };
}
