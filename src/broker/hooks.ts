import type { Message, SubscriptionOptions } from './message.js';

/** A client certificate presented on a TLS listener, as the transport read it. */
export interface CertificateInfo {
  /** The subject, e.g. `CN=device-1,O=Acme`. */
  readonly subject: string;
  readonly commonName?: string;
  /** Subject alternative names as `DNS:host`, `email:a@b`, `URI:...`, `IP Address:...`. */
  readonly subjectAltNames: readonly string[];
  readonly issuer: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  readonly fingerprint256: string;
  /** Expiry date as the certificate states it. */
  readonly validTo: string;
  /** Whether it chains to a trusted CA (listeners that require certificates only admit such). */
  readonly authorized: boolean;
  /** The name the listener takes as the username (the CN or a SAN, as configured), if any. */
  readonly username?: string;
}

/** Who a connected client is, as hooks and events see it. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username?: string;
  /** 'mqtt' now; other protocols later. */
  readonly protocol: string;
  /** MQTT protocol level: 3, 4 or 5. */
  readonly protocolVersion: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  /** The listener URL the client came in through. */
  readonly listener?: string;
  readonly keepAlive: number;
  readonly connectedAt: number;
  /** Whether the connection is encrypted (TLS or secure WebSocket). */
  readonly secure?: boolean;
  /** The client certificate, on TLS listeners that ask for one and got one. */
  readonly certificate?: CertificateInfo;
}

/** Why the broker closes a connection on its own initiative. */
export type ServerDisconnectReason =
  | 'session-taken-over'
  | 'server-shutting-down'
  | 'administrative-action'
  | 'keep-alive-timeout'
  | 'protocol-error';

/**
 * The broker's handle on a live connection, implemented by each protocol's connection
 * (the core knows no socket and no protocol).
 */
export interface ClientLink {
  /** Deliveries are waiting in the session: send what flow control allows. */
  wake(): void;
  /** Close the connection for `reason`, telling the client where the protocol can. */
  close(reason: ServerDisconnectReason): void;
  /**
   * Set while the connection cannot take more (a slow consumer): QoS 0 deliveries to it are
   * dropped for this reason instead of queued. Read on every QoS 0 delivery, so a plain field.
   */
  readonly qos0DropReason?: DropReason | undefined;
}

/** Why a connection attempt was refused; each protocol maps it to its own code. */
export type ConnectRefusal =
  | 'bad-credentials'
  | 'not-authorized'
  | 'banned'
  | 'server-busy'
  | 'server-unavailable'
  | 'client-id-invalid';

export interface AuthenticationRequest {
  readonly clientId: string;
  readonly username?: string;
  readonly password?: Buffer;
  readonly client: ClientInfo;
  /**
   * Present when the client already passed an enhanced authentication exchange (MQTT 5 AUTH):
   * the hook then typically checks only what the method did not (bans, quotas).
   */
  readonly enhancedAuthentication?: EnhancedAuthentication;
}

/** The outcome of a successful enhanced authentication exchange. */
export interface EnhancedAuthentication {
  /** The method the client authenticated with, e.g. `SCRAM-SHA-256`. */
  readonly method: string;
  /** Who the method proved the client to be, if it names users. */
  readonly username?: string;
}

/**
 * One answer of the server side of an enhanced authentication exchange: send `data` and wait
 * for the client's next message, accept (with final data for the client, and who it is), or refuse.
 */
export type AuthStep =
  | { readonly status: 'continue'; readonly data: Buffer }
  | { readonly status: 'success'; readonly data?: Buffer; readonly username?: string }
  | { readonly status: 'failure'; readonly refusal: ConnectRefusal; readonly reason: string };

/**
 * The server side of one challenge-response exchange (a SASL-like mechanism). The protocol
 * feeds it each message the client sends and relays its answers, until success or failure.
 */
export interface AuthConversation {
  /** Takes the client's next message (undefined when it sent no data) and answers it. */
  step(data: Buffer | undefined): Promise<AuthStep>;
}

/**
 * Decides, per message routed through a subscription, whether its client may receive it (the
 * topic matches the subscription's filter). Synchronous and cheap: it runs on the delivery path.
 */
export type DeliveryGuard = (topic: string) => boolean;

/** What `authorizeSubscribe` answers: refuse, allow, or allow with a per-message guard. */
export type SubscribeAuthorization = boolean | DeliveryGuard;

/** `true` accepts, `false` refuses as bad credentials, or a refusal names the reason. */
export type AuthenticationResult = boolean | { refuse: ConnectRefusal };

/**
 * The closed set of hooks an embedding application (and later auth, ACL and rules) plugs
 * into. Each may answer synchronously or with a promise.
 */
export interface BrokerHooks {
  /** Decides whether a client may connect. Default: everyone may. */
  authenticate?(request: AuthenticationRequest): AuthenticationResult | Promise<AuthenticationResult>;
  /** Decides whether a client may publish a message (retained and will messages included). */
  authorizePublish?(client: ClientInfo, message: Message): boolean | Promise<boolean>;
  /**
   * Decides whether a client may subscribe to a filter (the full filter, `$share/...` included):
   * `true`, `false`, or a guard that allows the subscription but checks each message it would
   * deliver (for filters only partly readable). Also asked again for a resumed session's
   * subscriptions when its client reconnects.
   */
  authorizeSubscribe?(
    client: ClientInfo,
    filter: string,
    options: SubscriptionOptions,
  ): SubscribeAuthorization | Promise<SubscribeAuthorization>;
  /**
   * Observes or transforms every publish before it is routed: return a replacement
   * message, `null` to drop it, or nothing to keep it as it is. Synchronous: it is on the hot path.
   */
  onPublish?(message: Message, client: ClientInfo | undefined): Message | null | undefined;
  /**
   * Starts an enhanced authentication exchange with `method` (MQTT 5 AUTH), at connect or
   * re-authentication; undefined when the method is not offered (MQTT answers 0x8C).
   * Default: no method is offered.
   */
  enhancedAuthentication?(method: string, client: ClientInfo): AuthConversation | undefined;
}

/** Why a message was not delivered to a session. */
export type DropReason =
  | 'queue-full'
  | 'expired'
  | 'packet-too-large'
  | 'offline-qos0'
  | 'session-ended'
  | 'dropped-by-hook'
  | 'not-authorized'
  /** QoS 0 to a client whose outbound buffer is over its soft limit (it does not read fast enough). */
  | 'slow-consumer'
  /** QoS 0 while the process's memory is above its high-water mark. */
  | 'memory-pressure'
  /** Waiting in a point-to-point queue when an administrator purged it. */
  | 'purged';

/** Typed broker events. */
export interface BrokerEvents {
  clientConnected: [client: ClientInfo, sessionPresent: boolean];
  clientDisconnected: [client: ClientInfo, reason: string];
  subscribed: [client: ClientInfo, filter: string, options: SubscriptionOptions];
  unsubscribed: [client: ClientInfo, filter: string];
  published: [message: Message, client: ClientInfo | undefined];
  dropped: [message: Message, clientId: string, reason: DropReason];
  sessionExpired: [clientId: string];
}
