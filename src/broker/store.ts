import type { Delivery, Message, SubscriptionOptions } from './message.js';

/** A will waiting to be published (MQTT 5 Will Delay Interval, MQTT-3.1.3-9). */
export interface StoredWill {
  message: Message;
  /** When to publish it, in ms since the epoch. */
  publishAt: number;
}

/** What a session is, apart from its messages. */
export interface SessionRecord {
  clientId: string;
  /** Seconds; 0xFFFFFFFF means the session never expires (MQTT 3.1.2.11.2). */
  expiryInterval: number;
  /** Full topic filters (including any `$share/group/` prefix) and their options. */
  subscriptions: [filter: string, options: SubscriptionOptions][];
  /** When the client went away, in ms since the epoch; absent while connected. */
  disconnectedAt?: number;
  /** A delayed will still to be published. */
  will?: StoredWill;
  /**
   * The will of the client connected when this was saved, with its Will Delay Interval in
   * seconds. Should the broker stop without closing that connection (a crash), the connection
   * ended without DISCONNECT: the will is published `delay` seconds after the next start.
   */
  liveWill?: { message: Message; delay: number };
}

/** A message owed to a session, with its outbound QoS state. */
export interface StoredDelivery extends Delivery {
  /** Position in the session's queue: unique and increasing per session. */
  seq: number;
  /** Set once the PUBLISH was sent with this packet identifier (MQTT-4.4.0-1). */
  packetId?: number;
  /** True once PUBREC was received: only PUBREL/PUBCOMP remain (QoS 2). */
  released?: boolean;
}

/** Everything a session had when the store was opened. */
export interface StoredSession {
  record: SessionRecord;
  /** Deliveries in the order they were queued: those with a packetId were in flight. */
  deliveries: StoredDelivery[];
  /** QoS 2 packet ids received from the client and awaiting PUBREL (MQTT-4.3.3-9). */
  inboundQoS2: number[];
}

/** The whole persisted state, read once at start-up. */
export interface StoredState {
  sessions: StoredSession[];
  retained: Message[];
  /**
   * Wills of sessions that expired while the broker was down: due, since a will is published
   * when its session ends at the latest (MQTT 3.1.3.2.2). The broker publishes them at start.
   */
  expiredWills: Message[];
}

/**
 * Persistent broker state, behind one interface so the in-memory and durable engines are
 * interchangeable. The broker core keeps its working state in memory and calls these to
 * persist each change; a write's promise resolves once the change is durable, and the
 * broker acknowledges a publish only after that (nothing acknowledged is lost).
 *
 * Writes for one client id are applied in call order. Only persistent sessions (expiry
 * interval above 0) reach the store; clean sessions live in memory alone.
 */
export interface Store {
  /** Opens the store and returns what it holds; expired sessions and messages are dropped. */
  open(now: number): Promise<StoredState>;
  close(): Promise<void>;

  /** Stores or replaces the retained message for `message.topic`. */
  setRetained(message: Message): Promise<void>;
  deleteRetained(topic: string): Promise<void>;

  /** Creates or replaces a session's record (subscriptions, expiry, will, disconnect time). */
  saveSession(record: SessionRecord): Promise<void>;
  /** Deletes a session with all its deliveries and inbound QoS 2 state. */
  deleteSession(clientId: string): Promise<void>;

  /** Appends deliveries to a session's queue; their `seq` increases. */
  enqueue(clientId: string, deliveries: readonly StoredDelivery[]): Promise<void>;
  /** Records that the delivery `seq` was sent with `packetId`. */
  markSent(clientId: string, seq: number, packetId: number): Promise<void>;
  /** Records that PUBREC arrived for the delivery `seq` (QoS 2). */
  markReleased(clientId: string, seq: number): Promise<void>;
  /** Removes a delivery that is complete (PUBACK/PUBCOMP), expired or dropped. */
  removeDelivery(clientId: string, seq: number): Promise<void>;

  /** Records an inbound QoS 2 packet id awaiting PUBREL, or forgets it. */
  addInboundQoS2(clientId: string, packetId: number): Promise<void>;
  removeInboundQoS2(clientId: string, packetId: number): Promise<void>;
}
