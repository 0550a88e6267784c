/** Quality of service levels. */
export type QoS = 0 | 1 | 2;

/**
 * Application properties a message carries end to end, whatever the protocol
 * (MQTT 5 3.3.2.3): forwarded untouched to every subscriber (MQTT-3.3.2-4, -15, -18).
 */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: [name: string, value: string][];
}

/** A published application message, as the broker core sees it: protocol-neutral. */
export interface Message {
  /** Unique per broker data set; stores use it to keep one copy shared by many queues. */
  readonly id: string;
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: MessageProperties;
  /** Absolute expiry time in ms since the epoch (MQTT 5 Message Expiry Interval), if any. */
  readonly expiresAt?: number;
  /** When the broker accepted the message, in ms since the epoch. */
  readonly createdAt: number;
  /** The publishing client's id, for No Local (MQTT-3.8.3-3); absent for server-made messages. */
  readonly origin?: string;
  /**
   * Scratch space where a protocol keeps its encoding of the message, shared by every
   * subscriber the message goes to. The core never reads it, and stores do not keep it.
   */
  encoded?: unknown;
}

/** Options of one subscription (MQTT 5 3.8.3.1); 3.x subscriptions use the defaults. */
export interface SubscriptionOptions {
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  /** 0: send retained on subscribe; 1: only if the subscription is new; 2: never. */
  retainHandling: 0 | 1 | 2;
  /** MQTT 5 Subscription Identifier. */
  subscriptionId?: number;
}

/** One message owed to one session: what the protocol layer encodes and sends. */
export interface Delivery {
  readonly message: Message;
  /** The QoS of this copy: the lower of the message's and the subscription's (MQTT-3.8.4-8). */
  readonly qos: QoS;
  /** The RETAIN flag to send (MQTT-3.3.1-8, -12, -13). */
  readonly retain: boolean;
  /** Identifiers of the subscriptions this copy matched (MQTT-3.3.4-3). */
  readonly subscriptionIds?: readonly number[];
}

/** The remaining Message Expiry Interval in whole seconds, or undefined when the message never expires. */
export function remainingExpiry(message: Message, now: number): number | undefined {
  if (message.expiresAt === undefined) return undefined;
  return Math.max(0, Math.ceil((message.expiresAt - now) / 1000));
}

export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}
