import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type {
  AuthenticationResult,
  BrokerEvents,
  BrokerHooks,
  ClientInfo,
  ClientLink,
  ConnectRefusal,
  DeliveryGuard,
  DropReason,
  EnhancedAuthentication,
  SubscribeAuthorization,
} from './hooks.js';
import {
  isExpired,
  type Message,
  type MessageProperties,
  type QoS,
  type SubscriptionOptions,
} from './message.js';
import { QUEUE_MAX_QOS, queueFilterRefusal, SessionQueues } from './queue-sessions.js';
import {
  type ConsumeOptions,
  QUEUE_TOPIC_PREFIX,
  type QueueConsumer,
  QueueManager,
  type QueueOptions,
  type QueueRefusal,
  type QueueSubscription,
  queueNameFault,
  queueNameOf,
} from './queues.js';
import {
  parseSharedFilter,
  pickMember,
  readableTopics,
  type ShareGroup,
  type Subscriber,
  type Subscription,
} from './routing.js';
import { NEVER_EXPIRES, type QueuedDelivery, Session, type SessionWill } from './session.js';
import type { SessionRecord, Store } from './store.js';
import { RetainedTree, SubscriptionTree } from './topic-tree.js';

/** Settings of the protocol-neutral core. */
export interface BrokerOptions {
  /** Where persistent state goes. Required: the core knows no storage engine. */
  store: Store;
  hooks?: BrokerHooks;
  /** Most messages queued per session (sent or not yet acknowledged excluded). Default 1000. */
  maxQueuedMessages?: number;
  /** At the queue bound: drop the arriving message (default, as Mosquitto) or the oldest queued one. */
  queueOverflow?: 'drop-new' | 'drop-oldest';
  /** Queue QoS 0 messages for disconnected persistent sessions. Default false. */
  queueQoS0?: boolean;
  /** Upper bound on any session's expiry interval, in seconds. Default: unlimited. */
  maxSessionExpiryInterval?: number;
  /** Highest QoS the broker accepts and grants (MQTT 3.2.2.3.4). Default 2. */
  maximumQoS?: QoS;
  /** Whether retained messages are supported (MQTT 3.2.2.3.5). Default true. */
  retainAvailable?: boolean;
  /** Whether filters may contain `+` and `#` (MQTT 3.2.2.3.11). Default true. */
  wildcardSubscriptionsAvailable?: boolean;
  /** Whether `$share/...` subscriptions are supported (MQTT 3.2.2.3.13). Default true. */
  sharedSubscriptionsAvailable?: boolean;
  /** Whether Subscription Identifiers are supported (MQTT 3.2.2.3.12). Default true. */
  subscriptionIdentifiersAvailable?: boolean;
  /** Most retained messages kept; a new topic beyond it is not retained. Default 1 000 000. */
  maxRetainedMessages?: number;
  /** Point-to-point queues (queues.ts). */
  queues?: Partial<QueueOptions>;
  /** Reports failures that have no client to answer (a store write behind a will, say). */
  onError?: (error: unknown) => void;
  /** Clock, for tests. */
  now?: () => number;
}

type ResolvedOptions = Required<Omit<BrokerOptions, 'hooks' | 'queues'>> & { hooks: BrokerHooks };

/** What a protocol asks for when a client connects. */
export interface ConnectRequest {
  clientId: string;
  /** Clean Session (3.x) or Clean Start (5.0): discard any existing session. */
  clean: boolean;
  /** Requested Session Expiry Interval in seconds (3.x: 0 if clean, else NEVER_EXPIRES). */
  expiryInterval: number;
  will?: SessionWill;
  username?: string;
  password?: Buffer;
  client: ClientInfo;
  /** The client already passed this enhanced authentication exchange; the authenticate hook sees it. */
  enhancedAuthentication?: EnhancedAuthentication;
  /**
   * The protocol has already authenticated the caller with its own check (an HTTP request's
   * credentials, see src/http/caller.ts): the authenticate hook is not asked again.
   */
  authenticated?: boolean;
}

export type ConnectOutcome =
  | { ok: true; session: Session; sessionPresent: boolean; expiryInterval: number }
  | { ok: false; refusal: ConnectRefusal };

/** How a connection ended, as the protocol saw it. */
export interface DisconnectInfo {
  /** For events and logs: 'client-disconnect', 'socket-closed', 'keep-alive-timeout', ... */
  reason: string;
  /** Publish the will: false only after a normal DISCONNECT (MQTT-3.1.2-10). */
  sendWill: boolean;
  /** A new Session Expiry Interval from a 5.0 DISCONNECT. */
  expiryInterval?: number;
}

export interface SubscribeRequest {
  filter: string;
  options: SubscriptionOptions;
  /** Already decided by the protocol for its caller (HTTP's ACL check): the hook is not asked. */
  authorization?: SubscribeAuthorization;
}

/** Why a subscription was refused; each protocol maps it to its own code. */
export type SubscribeRefusal =
  | 'not-authorized'
  | 'wildcards-not-supported'
  | 'shared-not-supported'
  /** A `$queue/` subscription would make a queue past `queues.maxQueues`. */
  | 'quota-exceeded'
  | 'unspecified';

export type SubscribeResult =
  | { ok: true; qos: QoS; isNew: boolean; request: SubscribeRequest }
  | { ok: false; refusal: SubscribeRefusal; request: SubscribeRequest };

export interface PublishResult {
  /** Sessions the message was routed to (0 lets MQTT 5 answer "No matching subscribers"). */
  matched: number;
  /** Resolves once every write the publish caused is durable; undefined when there were none. */
  persisted: Promise<void> | undefined;
  /** Set when a queue (`$queue/<name>`) did not take the message. */
  refusal?: PublishRefusal;
}

/** Why a publish was not accepted. */
export type PublishRefusal = QueueRefusal;

/** The options a queue consumer is authorized with, as a subscription to `$queue/<name>`. */
const QUEUE_CONSUME_OPTIONS = {
  qos: 1,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 2,
} as const;

/** Fields a caller gives to make a message; the broker adds id and creation time. */
export interface MessageInit {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  /** Message Expiry Interval in seconds. */
  expiryInterval?: number;
  origin?: string;
}

/** setTimeout's ceiling; longer waits are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * The protocol-neutral broker core: sessions, routing, retained messages, wills and
 * expiry. Protocols drive it through `connect`, `publish`, `subscribe` and the delivery
 * acknowledgements; it reaches connections only through their `ClientLink`, and state only
 * through the injected `Store`.
 */
export class Broker extends EventEmitter<BrokerEvents> {
  readonly options: ResolvedOptions;
  readonly sessions = new Map<string, Session>();
  /** Point-to-point queues: `$queue/<name>` topics, STOMP `/queue/<name>`. */
  readonly queues: QueueManager;
  /**
   * Set by load shedding (memory above its high-water mark): every QoS 0 delivery is dropped
   * for this reason instead of queued, until it is cleared.
   */
  qos0DropReason: DropReason | undefined = undefined;
  private readonly store: Store;
  private readonly hooks: BrokerHooks;
  private readonly now: () => number;
  private readonly subscriptions = new SubscriptionTree<Subscriber>();
  private readonly retained = new RetainedTree<Message>();
  private readonly groups = new Map<string, ShareGroup>();
  /** Sessions that were written to the store, so ending them deletes the record. */
  private readonly stored = new Set<Session>();
  private readonly idPrefix = randomBytes(6).toString('base64url');
  private messageCount = 0;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';

  // Routing scratch, reused by every publish so routing allocates little.
  private epoch = 0;
  private routing: Message | undefined;
  private readonly targets: Session[] = [];
  private readonly groupHits: ShareGroup[] = [];
  private readonly writes: Promise<void>[] = [];
  /** Every store write not yet settled, so `close` can wait for them. */
  private readonly unsettled = new Set<Promise<void>>();
  private readonly collect = (subscriber: Subscriber): void => this.collectSubscriber(subscriber);
  private readonly sessionQueues: SessionQueues;

  constructor(options: BrokerOptions) {
    super();
    this.options = {
      maxQueuedMessages: 1000,
      queueOverflow: 'drop-new',
      queueQoS0: false,
      maxSessionExpiryInterval: NEVER_EXPIRES,
      maximumQoS: 2,
      retainAvailable: true,
      wildcardSubscriptionsAvailable: true,
      sharedSubscriptionsAvailable: true,
      subscriptionIdentifiersAvailable: true,
      maxRetainedMessages: 1_000_000,
      onError: (error) => console.error('cicada:', error),
      now: Date.now,
      ...options,
      hooks: options.hooks ?? {},
    };
    this.store = options.store;
    this.hooks = this.options.hooks;
    this.now = this.options.now;
    this.queues = new QueueManager(
      {
        store: this.store,
        now: this.now,
        background: (write) => this.background(write),
        track: (write) => this.track(write),
        dropped: (message, reason) => this.emit('dropped', message, '', reason),
        retopic: (message, topic) => ({ ...message, id: this.nextMessageId(), topic, encoded: undefined }),
        onError: (error) => this.options.onError(error),
      },
      options.queues,
    );
    this.sessionQueues = new SessionQueues(this.queues);
  }

  /** Opens the store and restores sessions, queues, retained messages and pending wills. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('broker already started');
    const now = this.now();
    const state = await this.store.open(now);
    for (const message of state.retained) this.retained.set(message.topic, message);
    for (const stored of state.sessions) {
      if (this.queues.restore(stored)) continue;
      const { record } = stored;
      const session = new Session(record.clientId, record.expiryInterval);
      session.disconnectedAt = record.disconnectedAt ?? now;
      this.sessions.set(session.clientId, session);
      this.stored.add(session);
      for (const [filter, options] of record.subscriptions) this.addSubscription(session, filter, options);
      session.restore(stored.deliveries, stored.inboundQoS2);
      if (record.will) this.scheduleWill(session, record.will.message, record.will.publishAt - now);
      // Its client was connected when the broker stopped without closing it: a lost connection.
      else if (record.liveWill)
        this.scheduleWill(session, record.liveWill.message, record.liveWill.delay * 1000);
      this.scheduleExpiry(session);
      // A session that was connected when the broker stopped starts expiring now.
      if (record.disconnectedAt === undefined) this.saveRecord(session);
    }
    this.state = 'running';
    // Sessions that expired while the broker was down end now: their wills are due.
    for (const will of state.expiredWills) this.publishWill(will, undefined);
  }

  /**
   * Stops: closes every connection as the server shutting down (their wills are published,
   * MQTT 3.1.2.5), persists what remains and closes the store.
   */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.state = 'closing';
    // Before the connections go: their unacknowledged queue deliveries return in memory only.
    this.queues.close();
    for (const session of [...this.sessions.values()]) session.link?.close('server-shutting-down');
    for (const session of this.sessions.values()) {
      clearTimeout(session.expiryTimer);
      clearTimeout(session.willTimer);
    }
    await Promise.allSettled([...this.unsettled]);
    await this.store.close();
    this.state = 'closed';
  }

  get running(): boolean {
    return this.state === 'running';
  }

  get retainedCount(): number {
    return this.retained.size;
  }

  /** Visits the live retained messages whose topic matches `filter` (for the admin API). */
  matchRetained(filter: string, visit: (message: Message) => void): void {
    const now = this.now();
    this.retained.match(filter, (message) => {
      if (!isExpired(message, now)) visit(message);
    });
  }

  /**
   * Clears the retained message of `topic`, as an empty retained publish would (MQTT-3.3.1-6);
   * resolves once the store forgot it, false when there was none.
   */
  async clearRetained(topic: string): Promise<boolean> {
    if (!this.retained.delete(topic)) return false;
    const write = this.store.deleteRetained(topic);
    this.track(write);
    await write;
    return true;
  }

  /**
   * Ends a session now (an administrator's decision): its client is disconnected as by
   * `administrative-action` (its will follows the usual rules), then the session is deleted.
   */
  removeSession(clientId: string): boolean {
    const session = this.sessions.get(clientId);
    if (session === undefined) return false;
    const link = session.link;
    if (link !== undefined) {
      link.close('administrative-action');
      if (session.link === link)
        this.disconnect(session, link, { reason: 'administrative-action', sendWill: true });
    }
    if (this.sessions.get(clientId) === session) this.endSession(session, false);
    return true;
  }

  /** Makes a message with a fresh id; expiry is counted from now. */
  createMessage(init: MessageInit): Message {
    const now = this.now();
    const message: {
      -readonly [K in keyof Message]: Message[K];
    } = {
      id: this.nextMessageId(),
      topic: init.topic,
      payload: init.payload,
      qos: init.qos,
      retain: init.retain,
      createdAt: now,
    };
    if (init.properties !== undefined) message.properties = init.properties;
    if (init.expiryInterval !== undefined) message.expiresAt = now + init.expiryInterval * 1000;
    if (init.origin !== undefined) message.origin = init.origin;
    return message;
  }

  private nextMessageId(): string {
    return `${this.idPrefix}${(this.messageCount++).toString(36)}`;
  }

  // ---- connections ------------------------------------------------------------------

  /**
   * Authenticates a client and attaches its connection to a new or resumed session,
   * taking the session over from any connection that holds it (MQTT-3.1.4-3).
   */
  async connect(request: ConnectRequest, link: ClientLink): Promise<ConnectOutcome> {
    if (this.state !== 'running') return { ok: false, refusal: 'server-unavailable' };
    const refusal = request.authenticated === true ? undefined : await this.authenticate(request);
    if (refusal !== undefined) return { ok: false, refusal };
    const will = await this.authorizeWill(request);
    if (this.state !== 'running') return { ok: false, refusal: 'server-unavailable' };

    const expiryInterval = Math.min(request.expiryInterval, this.options.maxSessionExpiryInterval);
    let session = this.sessions.get(request.clientId);
    if (session?.link !== undefined) {
      // Session takeover: the old connection goes, as if it dropped (its will follows the usual rules).
      const previous = session.link;
      previous.close('session-taken-over');
      if (session.link === previous)
        this.disconnect(session, previous, { reason: 'session-taken-over', sendWill: true });
      session = this.sessions.get(request.clientId);
    }
    if (session !== undefined && request.clean) {
      this.endSession(session, false);
      session = undefined;
    }
    const sessionPresent = session !== undefined;
    if (session === undefined) {
      session = new Session(request.clientId, expiryInterval);
      this.sessions.set(session.clientId, session);
    }
    // MQTT-3.1.3-9: a new connection cancels a delayed will; the session no longer expires.
    clearTimeout(session.willTimer);
    clearTimeout(session.expiryTimer);
    session.willTimer = undefined;
    session.expiryTimer = undefined;
    session.pendingWill = undefined;
    session.expiryInterval = expiryInterval;
    session.will = will;
    session.link = link;
    session.client = request.client;
    session.disconnectedAt = undefined;
    if (session.persistent) this.saveRecord(session);
    else if (this.stored.has(session)) this.forget(session);
    if (sessionPresent && this.hooks.authorizeSubscribe !== undefined && session.subscriptions.size > 0) {
      await this.reauthorize(session, request.client);
    }
    this.sessionQueues.attach(session);
    this.emit('clientConnected', request.client, sessionPresent);
    return { ok: true, session, sessionPresent, expiryInterval };
  }

  /**
   * The will is authorized when the client connects, as a publish by that client: once the
   * client is gone, a delayed will or one left from a restart is published with no client to ask
   * about. A will the client may not publish is dropped (the connection is still accepted).
   */
  private async authorizeWill(request: ConnectRequest): Promise<SessionWill | undefined> {
    const { will } = request;
    const hook = this.hooks.authorizePublish;
    if (will === undefined || hook === undefined) return will;
    let allowed = false;
    try {
      allowed = await hook(request.client, will.message);
    } catch (error) {
      this.options.onError(error);
    }
    if (allowed) return will;
    this.emit('dropped', will.message, request.clientId, 'not-authorized');
    return undefined;
  }

  /**
   * A resumed session's subscriptions are authorized again for the client now connecting (the
   * ACL or the client's identity may have changed, and guards are not persisted): refused ones
   * are removed, guards attached, and queued messages the client may no longer read dropped.
   * A hook failure guards the subscription with "nothing" for this connection, keeping it stored.
   */
  private async reauthorize(session: Session, client: ClientInfo): Promise<void> {
    const hook = this.hooks.authorizeSubscribe!;
    let changed = false;
    let removed = false;
    for (const subscription of [...session.subscriptions.values()]) {
      let decision: SubscribeAuthorization;
      try {
        decision = await hook(client, subscription.filter, subscription.options);
      } catch (error) {
        this.options.onError(error);
        decision = refuseAll;
      }
      if (session.subscriptions.get(subscription.filter) !== subscription) continue;
      if (decision === false) {
        this.removeSubscription(session, subscription);
        this.emit('unsubscribed', client, subscription.filter);
        removed = true;
      } else {
        subscription.guard = decision === true ? undefined : decision;
      }
      if (decision !== true) changed = true;
    }
    if (changed) {
      const readable = readableTopics(session.subscriptions.values());
      for (const delivery of session.removeQueued((d) => !readable(d.message.topic))) {
        this.discard(session, delivery, 'not-authorized');
      }
    }
    if (removed && session.persistent) this.saveRecord(session);
  }

  private async authenticate(request: ConnectRequest): Promise<ConnectRefusal | undefined> {
    const hook = this.hooks.authenticate;
    if (hook === undefined) return undefined;
    let result: AuthenticationResult;
    try {
      result = await hook(request);
    } catch (error) {
      this.options.onError(error);
      return 'server-unavailable';
    }
    if (result === true) return undefined;
    if (result === false) return 'bad-credentials';
    return result.refuse;
  }

  /**
   * Detaches a connection from its session when the connection ends. Publishes or
   * schedules the will unless the client disconnected normally, and ends the session
   * now if its expiry interval is 0.
   */
  disconnect(session: Session, link: ClientLink, info: DisconnectInfo): void {
    if (session.link !== link) return;
    // What it holds of queues goes back to them (its `$queue/` subscriptions stay).
    this.sessionQueues.detach(session);
    this.queues.closeOwned(session);
    const client = session.client;
    session.link = undefined;
    session.client = undefined;
    session.disconnectedAt = this.now();
    if (info.expiryInterval !== undefined) {
      session.expiryInterval = Math.min(info.expiryInterval, this.options.maxSessionExpiryInterval);
    }
    const will = session.will;
    session.will = undefined;
    if (info.sendWill && will !== undefined) {
      // MQTT 3.1.3.2.2: wait for the Will Delay Interval or the end of the session, whichever is first.
      if (will.delay === 0 || session.expiryInterval === 0) this.publishWill(will.message, client);
      else this.scheduleWill(session, will.message, will.delay * 1000);
    }
    if (client !== undefined) this.emit('clientDisconnected', client, info.reason);
    if (session.expiryInterval === 0) {
      this.endSession(session, false);
    } else {
      this.scheduleExpiry(session);
      this.saveRecord(session);
    }
  }

  private scheduleWill(session: Session, message: Message, delayMs: number): void {
    session.pendingWill = message;
    session.pendingWillAt = this.now() + Math.max(0, delayMs);
    session.willTimer = this.timer(Math.max(0, delayMs), () => {
      session.willTimer = undefined;
      const pending = session.pendingWill;
      session.pendingWill = undefined;
      if (pending !== undefined) {
        this.publishWill(pending, undefined);
        if (this.stored.has(session)) this.saveRecord(session);
      }
    });
  }

  private scheduleExpiry(session: Session): void {
    clearTimeout(session.expiryTimer);
    session.expiryTimer = undefined;
    if (session.expiryInterval === NEVER_EXPIRES) return;
    const deadline = (session.disconnectedAt ?? this.now()) + session.expiryInterval * 1000;
    const arm = (): void => {
      const wait = deadline - this.now();
      if (wait <= 0) {
        session.expiryTimer = undefined;
        this.endSession(session, true);
        return;
      }
      session.expiryTimer = this.timer(Math.min(wait, MAX_TIMER_MS), arm);
    };
    arm();
  }

  private timer(ms: number, fn: () => void): NodeJS.Timeout {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return handle;
  }

  /** A will is published like any message, subject to the same authorization (MQTT-3.1.2-8). */
  private publishWill(message: Message, client: ClientInfo | undefined): void {
    const publish = (allowed: boolean): void => {
      if (!allowed) {
        this.emit('dropped', message, message.origin ?? '', 'not-authorized');
        return;
      }
      // The will's Message Expiry counts from when it is published (MQTT 3.1.3.2.4).
      const fresh =
        message.expiresAt === undefined
          ? message
          : { ...message, expiresAt: this.now() + (message.expiresAt - message.createdAt) };
      const result = this.publish(fresh, client);
      result.persisted?.catch(this.options.onError);
    };
    if (client === undefined || this.hooks.authorizePublish === undefined) {
      publish(true);
      return;
    }
    Promise.resolve(this.hooks.authorizePublish(client, message)).then(publish, (error) => {
      this.options.onError(error);
      publish(false);
    });
  }

  /**
   * Ends a session: publishes any will still waiting, drops its subscriptions, hands its
   * unacknowledged shared-subscription messages to other members (MQTT 4.8.2) and deletes it.
   */
  private endSession(session: Session, expired: boolean): void {
    clearTimeout(session.expiryTimer);
    clearTimeout(session.willTimer);
    session.expiryTimer = undefined;
    session.willTimer = undefined;
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    const pendingWill = session.pendingWill;
    session.pendingWill = undefined;
    for (const subscription of [...session.subscriptions.values()])
      this.removeSubscription(session, subscription);
    this.queues.closeOwned(session);
    const leftovers = session.drain();
    if (this.stored.has(session)) this.forget(session);
    if (pendingWill !== undefined) this.publishWill(pendingWill, undefined);
    for (const delivery of leftovers) {
      // MQTT-4.8.2-5: a QoS 2 message already sent to this member goes to no other.
      const resendable = delivery.qos === 1 || (delivery.qos === 2 && delivery.packetId === undefined);
      if (delivery.shareKey !== undefined && resendable) {
        const group = this.groups.get(delivery.shareKey);
        const member = group && pickMember(group, delivery.message.topic, session);
        if (member !== undefined && group !== undefined) {
          this.deliverToMember(member, delivery.message, group.key);
          continue;
        }
      }
      if (delivery.qos > 0) this.emit('dropped', delivery.message, session.clientId, 'session-ended');
    }
    if (expired) this.emit('sessionExpired', session.clientId);
  }

  // ---- publishing ---------------------------------------------------------------------

  /** Runs the authorizePublish hook; synchronous when there is none. */
  authorizePublish(client: ClientInfo, message: Message): boolean | Promise<boolean> {
    const hook = this.hooks.authorizePublish;
    return hook === undefined ? true : hook(client, message);
  }

  /**
   * Routes a message to every matching subscription and stores it as retained if flagged.
   * Routing is synchronous, so messages keep their order; only persistence is awaited.
   */
  publish(message: Message, client?: ClientInfo): PublishResult {
    const hook = this.hooks.onPublish;
    if (hook !== undefined) {
      const replaced = hook(message, client);
      if (replaced === null) {
        this.emit('dropped', message, client?.clientId ?? '', 'dropped-by-hook');
        return { matched: 0, persisted: undefined };
      }
      if (replaced !== undefined) message = replaced;
    }
    const queue = queueNameOf(message.topic);
    if (queue !== undefined) {
      const result = this.queues.publish(queue, message);
      if (result.refusal === undefined) this.emit('published', message, client);
      return result;
    }
    // The writes this publish causes collect in a reused array (from `start`, should a hook publish too).
    const writes = this.writes;
    const start = writes.length;
    if (message.retain && this.options.retainAvailable) this.retain(message);
    const matched = this.route(message);
    const added = writes.length - start;
    const persisted =
      added === 0 ? undefined : added === 1 ? writes[start] : Promise.all(writes.slice(start)).then(noop);
    writes.length = start;
    this.emit('published', message, client);
    return { matched, persisted };
  }

  /** MQTT-3.3.1-5..7: store or replace the retained message; an empty payload clears it. */
  private retain(message: Message): void {
    if (message.payload.length === 0) {
      if (this.retained.delete(message.topic)) this.persist(this.store.deleteRetained(message.topic));
      return;
    }
    if (this.retained.size >= this.options.maxRetainedMessages && !this.retained.has(message.topic)) {
      this.emit('dropped', message, '', 'queue-full');
      return;
    }
    this.retained.set(message.topic, message);
    this.persist(this.store.setRetained(message));
  }

  private route(message: Message): number {
    const epoch = ++this.epoch;
    this.routing = message;
    const targets = this.targets;
    const groupHits = this.groupHits;
    this.subscriptions.match(message.topic, this.collect);
    this.routing = undefined;
    let matched = 0;
    for (let i = 0; i < targets.length; i++) {
      const session = targets[i]!;
      targets[i] = undefined as unknown as Session;
      if (session.routeEpoch !== epoch) continue;
      const qos = message.qos < session.routeQoS ? message.qos : session.routeQoS;
      // MQTT-3.3.1-12/13: RETAIN is kept only for Retain As Published subscriptions.
      this.deliver(session, message, qos, session.routeRetain && message.retain, session.routeIds);
      matched++;
    }
    targets.length = 0;
    for (let i = 0; i < groupHits.length; i++) {
      const group = groupHits[i]!;
      const member = pickMember(group, message.topic);
      if (member === undefined) continue;
      if (member.options.noLocal && message.origin === member.session.clientId) continue;
      this.deliverToMember(member, message, group.key);
      matched++;
    }
    groupHits.length = 0;
    return matched;
  }

  private collectSubscriber(subscriber: Subscriber): void {
    const epoch = this.epoch;
    if (subscriber.kind === 'group') {
      if (subscriber.routeEpoch !== epoch) {
        subscriber.routeEpoch = epoch;
        this.groupHits.push(subscriber);
      }
      return;
    }
    const { session, options } = subscriber;
    // MQTT-3.8.3-3: No Local.
    if (options.noLocal && this.routing!.origin === session.clientId) return;
    // Authorization allowed this filter only in part: the guard says whether this topic is readable.
    if (subscriber.guard !== undefined && !subscriber.guard(this.routing!.topic)) return;
    if (session.routeEpoch !== epoch) {
      session.routeEpoch = epoch;
      session.routeQoS = options.qos;
      session.routeRetain = options.retainAsPublished;
      session.routeIds = options.subscriptionId === undefined ? undefined : [options.subscriptionId];
      this.targets.push(session);
      return;
    }
    // Overlapping subscriptions: one copy at the highest QoS, with every identifier (MQTT-3.3.4-2..5).
    if (options.qos > session.routeQoS) session.routeQoS = options.qos;
    if (options.retainAsPublished) session.routeRetain = true;
    if (options.subscriptionId !== undefined) {
      if (session.routeIds === undefined) session.routeIds = [options.subscriptionId];
      else session.routeIds.push(options.subscriptionId);
    }
  }

  private deliverToMember(member: Subscription, message: Message, shareKey: string): void {
    const { options } = member;
    this.deliver(
      member.session,
      message,
      message.qos < options.qos ? message.qos : options.qos,
      options.retainAsPublished && message.retain,
      options.subscriptionId === undefined ? undefined : [options.subscriptionId],
      shareKey,
    );
  }

  /** Queues one delivery for a session, applying the queue bound and persisting what must survive. */
  private deliver(
    session: Session,
    message: Message,
    qos: QoS,
    retain: boolean,
    subscriptionIds: readonly number[] | undefined,
    shareKey?: string,
  ): void {
    if (session.link === undefined && qos === 0 && !this.options.queueQoS0) {
      this.emit('dropped', message, session.clientId, 'offline-qos0');
      return;
    }
    if (qos === 0) {
      // Shedding load, or a slow consumer: QoS 0 may be lost, and queueing it would cost memory.
      const shed = this.qos0DropReason ?? session.link?.qos0DropReason;
      if (shed !== undefined) {
        this.emit('dropped', message, session.clientId, shed);
        return;
      }
    }
    if (session.queuedCount >= this.options.maxQueuedMessages) {
      if (this.options.queueOverflow === 'drop-new') {
        this.emit('dropped', message, session.clientId, 'queue-full');
        return;
      }
      const oldest = session.dropOldest();
      if (oldest !== undefined) this.discard(session, oldest, 'queue-full');
    }
    const queued = session.enqueue(message, qos, retain, subscriptionIds, shareKey);
    if (qos > 0 && session.persistent) {
      this.stored.add(session);
      this.persist(this.store.enqueue(session.clientId, [queued]));
    }
    session.link?.wake();
  }

  private persist(write: Promise<void>): void {
    this.track(write);
    this.writes.push(write);
  }

  private track(write: Promise<void>): void {
    this.unsettled.add(write);
    const settle = (): void => {
      this.unsettled.delete(write);
    };
    write.then(settle, settle);
  }

  // ---- delivery state, reported by the connection -------------------------------------

  /**
   * The connection is sending a QoS 1/2 delivery with its packet id (MQTT-4.4.0-1 needs it on
   * resume). For QoS 2 returns the store write, which the PUBLISH must wait for: a client may
   * hold a QoS 2 packet id until PUBREL (MQTT-4.3.3-9), so after a crash the broker must send
   * the message again under that same id, never as a new message under another (a duplicate,
   * and a later message under the held id taken for one). QoS 1 copies may repeat.
   */
  sent(session: Session, delivery: QueuedDelivery): Promise<void> | undefined {
    // From a queue, which keeps it: QoS 0 is acknowledged as it goes out, QoS 1 by PUBACK.
    if (delivery.queueReceipt !== undefined) {
      if (delivery.qos === 0) delivery.queueReceipt.ack();
      return undefined;
    }
    if (!this.stored.has(session) || delivery.packetId === undefined) return undefined;
    const write = this.store.markSent(session.clientId, delivery.seq, delivery.packetId);
    if (delivery.qos < 2) {
      this.background(write);
      return undefined;
    }
    this.track(write);
    return write;
  }

  /**
   * An in-flight delivery is about to be resent on resumption (MQTT-4.4.0-1). Records its
   * state again (a no-op for the data) and returns the write: once it is durable, so is every
   * earlier write of this client, the original record included.
   */
  resent(session: Session, delivery: QueuedDelivery): Promise<void> | undefined {
    if (!this.stored.has(session) || delivery.packetId === undefined || delivery.qos < 2) return undefined;
    const write = delivery.released
      ? this.store.markReleased(session.clientId, delivery.seq)
      : this.store.markSent(session.clientId, delivery.seq, delivery.packetId);
    this.track(write);
    return write;
  }

  /**
   * PUBACK (QoS 1) or PUBCOMP (QoS 2) completed a delivery. Returns false when no delivery
   * was in flight under that id.
   */
  complete(session: Session, packetId: number): boolean {
    const delivery = session.inflight.get(packetId);
    if (delivery === undefined) return false;
    session.inflight.delete(packetId);
    if (delivery.queueReceipt !== undefined) delivery.queueReceipt.ack();
    else if (this.stored.has(session))
      this.background(this.store.removeDelivery(session.clientId, delivery.seq));
    return true;
  }

  /**
   * PUBREC arrived: only PUBREL/PUBCOMP remain (MQTT-4.3.3-4). Returns false for an unknown id,
   * else the store write recording it (undefined when there is none), which PUBREL must wait
   * for: a client that got PUBREL may complete and forget the message, so after a crash the
   * broker must not send that PUBLISH again (the client would take it for a new message).
   */
  released(session: Session, packetId: number): Promise<void> | undefined | false {
    const delivery = session.inflight.get(packetId);
    if (delivery === undefined || delivery.qos !== 2) return false;
    if (delivery.released || !this.stored.has(session)) {
      delivery.released = true;
      return undefined;
    }
    delivery.released = true;
    const write = this.store.markReleased(session.clientId, delivery.seq);
    this.track(write);
    return write;
  }

  /** Drops a delivery the connection cannot send (expired, or too large for the client). */
  discard(session: Session, delivery: QueuedDelivery, reason: DropReason): void {
    if (delivery.packetId !== undefined) session.inflight.delete(delivery.packetId);
    if (delivery.queueReceipt !== undefined) {
      delivery.queueReceipt.reject(reason);
      return;
    }
    if (this.stored.has(session) && delivery.qos > 0) {
      this.background(this.store.removeDelivery(session.clientId, delivery.seq));
    }
    this.emit('dropped', delivery.message, session.clientId, reason);
  }

  /** Records an inbound QoS 2 packet id awaiting PUBREL; the returned promise resolves when durable. */
  receivedQoS2(session: Session, packetId: number): Promise<void> | undefined {
    session.inboundQoS2.add(packetId);
    if (!session.persistent) return undefined;
    this.stored.add(session);
    return this.store.addInboundQoS2(session.clientId, packetId);
  }

  /**
   * PUBREL arrived for an inbound QoS 2 packet id. Returns false when the id was unknown, else
   * the store write forgetting it (undefined when there is none), which PUBCOMP must wait for:
   * after a crash the id would still be held, and the client's next message under that id,
   * sent once PUBCOMP freed it, taken for a duplicate and dropped (MQTT-4.3.3-10).
   */
  releasedQoS2(session: Session, packetId: number): Promise<void> | undefined | false {
    if (!session.inboundQoS2.delete(packetId)) return false;
    if (!this.stored.has(session)) return undefined;
    const write = this.store.removeInboundQoS2(session.clientId, packetId);
    this.track(write);
    return write;
  }

  private background(write: Promise<void>): void {
    this.track(write);
    write.catch(this.options.onError);
  }

  // ---- subscriptions --------------------------------------------------------------------

  /** Adds or replaces subscriptions (MQTT-3.8.4-3), each authorized by the hook. */
  async subscribe(session: Session, requests: readonly SubscribeRequest[]): Promise<SubscribeResult[]> {
    const results: SubscribeResult[] = [];
    const client = session.client;
    for (const request of requests) {
      const unsupported =
        this.unsupportedFeature(request.filter) ??
        queueFilterRefusal(request.filter) ??
        this.queueQuotaRefusal(request.filter);
      if (unsupported !== undefined) {
        results.push({ ok: false, refusal: unsupported, request });
        continue;
      }
      const hook = this.hooks.authorizeSubscribe;
      let decision: SubscribeAuthorization = request.authorization ?? true;
      if (request.authorization === undefined && hook !== undefined && client !== undefined) {
        try {
          decision = await hook(client, request.filter, request.options);
        } catch (error) {
          this.options.onError(error);
          results.push({ ok: false, refusal: 'unspecified', request });
          continue;
        }
      }
      if (decision === false) {
        results.push({ ok: false, refusal: 'not-authorized', request });
        continue;
      }
      const ceiling = queueNameOf(request.filter) === undefined ? 2 : QUEUE_MAX_QOS;
      const qos = Math.min(request.options.qos, this.options.maximumQoS, ceiling) as QoS;
      const options = { ...request.options, qos };
      const guard = decision === true ? undefined : decision;
      const isNew = this.addSubscription(session, request.filter, options, guard);
      results.push({ ok: true, qos, isNew, request: { filter: request.filter, options } });
      if (client !== undefined) this.emit('subscribed', client, request.filter, options);
    }
    if (session.persistent) this.saveRecord(session);
    return results;
  }

  /**
   * Consumes a queue for a session (STOMP's `/queue/<name>`): authorized as a subscription to
   * `$queue/<name>` unless the session has no client. The subscription ends with the session's
   * connection, if it was not closed before.
   */
  async consumeQueue(
    session: Session,
    name: string,
    options: ConsumeOptions,
    consumer: QueueConsumer,
  ): Promise<QueueSubscription | SubscribeRefusal> {
    const fault = queueNameFault(name);
    if (fault !== undefined) return fault === 'wildcards' ? 'wildcards-not-supported' : 'unspecified';
    const client = session.client;
    const hook = this.hooks.authorizeSubscribe;
    if (client !== undefined && hook !== undefined) {
      const topic = QUEUE_TOPIC_PREFIX + name;
      let decision: SubscribeAuthorization;
      try {
        decision = await hook(client, topic, QUEUE_CONSUME_OPTIONS);
      } catch (error) {
        this.options.onError(error);
        return 'unspecified';
      }
      if (decision === false || (decision !== true && !decision(topic))) return 'not-authorized';
      // The connection went while the hook decided: nothing would close this consumer.
      if (session.client !== client) return 'unspecified';
    }
    if (this.state !== 'running') return 'unspecified';
    if (!this.queues.accepts(name)) return 'quota-exceeded';
    return this.queues.consume(name, options, consumer, session);
  }

  /** A feature the filter needs that this broker was configured without (MQTT 3.2.2.3.11, .13). */
  /** 'quota-exceeded' when subscribing to `filter` would make a queue past `queues.maxQueues`. */
  private queueQuotaRefusal(filter: string): SubscribeRefusal | undefined {
    const name = queueNameOf(filter);
    return name === undefined || this.queues.accepts(name) ? undefined : 'quota-exceeded';
  }

  private unsupportedFeature(filter: string): SubscribeRefusal | undefined {
    const shared = parseSharedFilter(filter);
    if (shared !== undefined && !this.options.sharedSubscriptionsAvailable) return 'shared-not-supported';
    const topicFilter = shared?.filter ?? filter;
    if (
      !this.options.wildcardSubscriptionsAvailable &&
      (topicFilter.includes('+') || topicFilter.includes('#'))
    ) {
      return 'wildcards-not-supported';
    }
    return undefined;
  }

  /**
   * Sends the retained messages a subscribe asks for, after its acknowledgement: per Retain
   * Handling (MQTT-3.3.1-9..11), never for shared subscriptions, with RETAIN set (MQTT-3.3.1-8).
   */
  deliverRetained(session: Session, results: readonly SubscribeResult[]): void {
    const now = this.now();
    for (const result of results) {
      if (!result.ok) continue;
      const { filter, options } = result.request;
      if (options.retainHandling === 2 || (options.retainHandling === 1 && !result.isNew)) continue;
      if (parseSharedFilter(filter) !== undefined) continue;
      const guard = session.subscriptions.get(filter)?.guard;
      const expired: string[] = [];
      this.retained.match(filter, (message) => {
        if (isExpired(message, now)) {
          expired.push(message.topic);
          return;
        }
        if (guard !== undefined && !guard(message.topic)) return;
        this.deliver(
          session,
          message,
          message.qos < options.qos ? message.qos : options.qos,
          true,
          options.subscriptionId === undefined ? undefined : [options.subscriptionId],
        );
      });
      for (const topic of expired) {
        this.retained.delete(topic);
        this.background(this.store.deleteRetained(topic));
      }
    }
  }

  /** Removes subscriptions; true for each filter that existed (else MQTT 5 "No subscription existed"). */
  unsubscribe(session: Session, filters: readonly string[]): boolean[] {
    const results = filters.map((filter) => {
      const subscription = session.subscriptions.get(filter);
      if (subscription === undefined) return false;
      this.removeSubscription(session, subscription);
      if (session.client !== undefined) this.emit('unsubscribed', session.client, filter);
      return true;
    });
    if (session.persistent) this.saveRecord(session);
    return results;
  }

  private addSubscription(
    session: Session,
    filter: string,
    options: SubscriptionOptions,
    guard?: DeliveryGuard,
  ): boolean {
    const existing = session.subscriptions.get(filter);
    if (existing !== undefined) {
      existing.options = options;
      existing.guard = guard;
      this.sessionQueues.start(session, existing);
      return false;
    }
    // `guard` always present, so every subscription has one shape on the routing path.
    const subscription: Subscription = { kind: 'direct', filter, session, options, guard };
    session.subscriptions.set(filter, subscription);
    // A queue's consumer, not a topic subscription: it never enters the topic tree.
    if (queueNameOf(filter) !== undefined) {
      this.sessionQueues.start(session, subscription);
      return true;
    }
    const shared = parseSharedFilter(filter);
    if (shared === undefined) {
      this.subscriptions.add(filter, subscription);
      return true;
    }
    const key = `${shared.name}/${shared.filter}`;
    let group = this.groups.get(key);
    if (group === undefined) {
      group = {
        kind: 'group',
        key,
        name: shared.name,
        filter: shared.filter,
        members: [],
        cursor: 0,
        routeEpoch: 0,
      };
      this.groups.set(key, group);
      this.subscriptions.add(shared.filter, group);
    }
    group.members.push(subscription);
    return true;
  }

  private removeSubscription(session: Session, subscription: Subscription): void {
    session.subscriptions.delete(subscription.filter);
    if (queueNameOf(subscription.filter) !== undefined) {
      this.sessionQueues.stop(session, subscription.filter);
      return;
    }
    const shared = parseSharedFilter(subscription.filter);
    if (shared === undefined) {
      this.subscriptions.remove(subscription.filter, subscription);
      return;
    }
    const key = `${shared.name}/${shared.filter}`;
    const group = this.groups.get(key);
    if (group === undefined) return;
    const index = group.members.indexOf(subscription);
    if (index >= 0) group.members.splice(index, 1);
    if (group.members.length === 0) {
      this.groups.delete(key);
      this.subscriptions.remove(shared.filter, group);
    }
  }

  // ---- persistence of session records ----------------------------------------------------

  private saveRecord(session: Session): void {
    const record: SessionRecord = {
      clientId: session.clientId,
      expiryInterval: session.expiryInterval,
      subscriptions: [...session.subscriptions.values()].map((s) => [s.filter, s.options]),
    };
    if (session.disconnectedAt !== undefined) record.disconnectedAt = session.disconnectedAt;
    if (session.pendingWill !== undefined && session.pendingWillAt !== undefined) {
      record.will = { message: session.pendingWill, publishAt: session.pendingWillAt };
    }
    if (session.link !== undefined && session.will !== undefined) {
      record.liveWill = { message: session.will.message, delay: session.will.delay };
    }
    this.stored.add(session);
    this.background(this.store.saveSession(record));
  }

  private forget(session: Session): void {
    this.stored.delete(session);
    this.background(this.store.deleteSession(session.clientId));
  }
}

function noop(): void {}

/** The guard of a subscription whose authorization failed: nothing is delivered through it. */
function refuseAll(): boolean {
  return false;
}
