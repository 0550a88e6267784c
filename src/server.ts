import { Broker, type BrokerOptions, type MessageInit } from './broker/broker.js';
import type { BrokerEvents } from './broker/hooks.js';
import type { Store } from './broker/store.js';
import type { HttpApp } from './http/app.js';
import { createHttpApp, DEFAULT_HTTP_OPTIONS, type HttpOptions, type Readiness } from './http/modules.js';
import { type ConnectionGateOptions, Limits, type LimitsOptions } from './limits/index.js';
import { BrokerMetrics } from './observe/broker-metrics.js';
import { SysTopics } from './observe/sys-topics.js';
import { cicadaVersion } from './observe/version.js';
import {
  DEFAULT_MQTT_OPTIONS,
  type MqttHandler,
  type MqttOptions,
  mqttHandler,
  shedUnderPressure,
} from './protocol/mqtt/index.js';
import {
  DEFAULT_STOMP_OPTIONS,
  type StompHandler,
  type StompOptions,
  stompHandler,
} from './protocol/stomp/index.js';
import { DurableStore } from './store/durable/index.js';
import { MemoryStore } from './store/memory/memory-store.js';
import { sharedHttpServers } from './transport/http-server.js';
import { TcpTransport } from './transport/tcp.js';
import { TlsTransport } from './transport/tls.js';
import type { Listener, ListenOptions, Transport } from './transport/transport.js';
import { STOMP_WEBSOCKET, WebSocketTransport } from './transport/ws.js';

/** Everything `createBroker` accepts; every field is optional. */
export interface CicadaOptions extends Partial<Omit<BrokerOptions, 'store'>> {
  /**
   * Where persistent state goes. Default: the durable store in `dataDir` if one is given,
   * else in memory (an embedding application chooses where its data lives).
   */
  store?: Store;
  /** A data directory for the durable store (ignored when `store` is given). */
  dataDir?: string;
  /** MQTT protocol settings. */
  mqtt?: Partial<MqttOptions>;
  /**
   * STOMP protocol settings, for `stomp://`, `stomps://` and `ws(s)://HOST:PORT/stomp` listeners
   * (topic length and depth limits are MQTT's: it is one topic space).
   */
  stomp?: Partial<Omit<StompOptions, 'maxTopicLength' | 'maxTopicLevels'>>;
  /**
   * Process protection: connection caps and rates, the memory high-water mark. Default: none
   * (an embedding application decides; the `cicada` command applies production defaults).
   */
  limits?: Partial<LimitsOptions> | Limits;
  /** The HTTP API of `http://` and `https://` listeners (admin token, access control, SSE). */
  http?: HttpOptions;
  /** Prometheus metrics (`Cicada.metrics`, served as `GET /metrics` on `http://` listeners). Default true. */
  metrics?: boolean;
  /** The `$SYS/broker/...` topics: `interval` in seconds, default 0 (off; the `cicada` command's default is 10). */
  sys?: { interval?: number };
}

/** Per-listener settings: transport options plus the listener's own connection caps. */
export interface CicadaListenOptions extends ListenOptions {
  /** Caps of this listener on top of the process's (those not given are off). Needs `limits`. */
  readonly limits?: Partial<ConnectionGateOptions>;
}

/**
 * Settings `reconfigure` changes on a running broker. Not the packet size: it also bounds
 * WebSocket frames, fixed when the broker is made.
 */
export interface LiveSettings {
  mqtt?: Partial<Omit<MqttOptions, 'maxPacketSize'>>;
  limits?: Partial<Pick<ConnectionGateOptions, 'maxConnections' | 'maxConnectionsPerAddress'>>;
}

/** What `publish` takes: a payload as text or bytes, QoS 0 and not retained by default. */
export type PublishInit = Omit<MessageInit, 'payload' | 'qos' | 'retain'> & {
  payload: Buffer | string;
  qos?: MessageInit['qos'];
  retain?: boolean;
};

type EventName = keyof BrokerEvents;
type EventListener<E extends EventName> = (...args: BrokerEvents[E]) => void;

/**
 * A Cicada broker: the core plus its listeners. Create with `createBroker`, then `listen`
 * on one or more URLs; `close` stops accepting, closes every connection (wills follow the
 * spec) and closes the store.
 */
export class Cicada {
  readonly broker: Broker;
  /** The process-wide limits, if any. */
  readonly limits: Limits | undefined;
  private mqttOptions: Partial<MqttOptions> | undefined;
  private readonly mqtt: MqttHandler;
  /** Handlers of listeners with limits of their own. */
  private readonly handlers: MqttHandler[] = [];
  private readonly stompOptions: Partial<StompOptions>;
  private readonly stomp: StompHandler;
  /** STOMP handlers of listeners with limits of their own. */
  private readonly stompHandlers: StompHandler[] = [];
  private readonly transports: Transport[];
  private readonly bound: Listener[] = [];
  private starting: Promise<void> | undefined;
  private readonly httpOptions: HttpOptions;
  private httpApp: HttpApp | undefined;
  /** `listen` calls not finished: the broker is not ready while listeners are still coming up. */
  private pendingListens = 0;
  private closing = false;
  private readonly httpListeners = new Set<Listener>();
  private readonly createdAt = Date.now();
  /** What the broker measures; undefined with `metrics: false` (and no `$SYS`). */
  readonly metrics: BrokerMetrics | undefined;
  private readonly sys: SysTopics | undefined;

  constructor(options: CicadaOptions = {}) {
    const { mqtt, stomp, store, dataDir, limits, http, metrics, sys, ...core } = options;
    this.httpOptions = http ?? {};
    const chosen =
      store ?? (dataDir === undefined ? new MemoryStore() : new DurableStore({ directory: dataDir }));
    this.broker = new Broker({ ...core, store: chosen });
    const sysInterval = sys?.interval ?? 0;
    if (metrics !== false || sysInterval > 0) {
      const version = cicadaVersion();
      this.metrics = new BrokerMetrics(this.broker, version);
      if (chosen instanceof DurableStore) chosen.onCommit ??= this.metrics.recordCommit;
      if (sysInterval > 0)
        this.sys = new SysTopics(this.broker, { interval: sysInterval, version, metrics: this.metrics });
    }
    this.limits = limits === undefined || limits instanceof Limits ? limits : new Limits(limits);
    if (this.limits?.memory !== undefined) shedUnderPressure(this.broker, this.limits.memory);
    this.mqttOptions = mqtt;
    // A WebSocket message may carry the largest MQTT packet or STOMP frame accepted, and a little framing slack.
    const maxPacketSize = mqtt?.maxPacketSize ?? DEFAULT_MQTT_OPTIONS.maxPacketSize;
    const maxFrameSize = stomp?.maxFrameSize ?? DEFAULT_STOMP_OPTIONS.maxFrameSize;
    this.transports = [
      new TcpTransport(),
      new TlsTransport(),
      new WebSocketTransport({ maxPayload: Math.max(maxPacketSize, maxFrameSize) + 4096 }),
    ];
    this.mqtt = mqttHandler(this.broker, mqtt, this.limits);
    this.stompOptions = {
      ...stomp,
      largestMessage: Math.max(maxPacketSize, maxFrameSize),
      maxTopicLength: mqtt?.maxTopicLength ?? DEFAULT_MQTT_OPTIONS.maxTopicLength,
      maxTopicLevels: mqtt?.maxTopicLevels ?? DEFAULT_MQTT_OPTIONS.maxTopicLevels,
    };
    this.stomp = stompHandler(this.broker, this.stompOptions, this.limits);
  }

  /** Opens the store and restores state; `listen` does this on first use. */
  start(): Promise<void> {
    this.starting ??= this.broker.start().then(() => this.sys?.start());
    return this.starting;
  }

  /**
   * Listens on a URL such as `mqtt://0.0.0.0:1883` or `mqtts://0.0.0.0:8883` (port 0 picks a
   * free one); `options` carry per-listener settings such as TLS files and the PROXY protocol.
   */
  async listen(url: string, options: CicadaListenOptions = {}): Promise<Listener> {
    this.pendingListens++;
    try {
      return await this.bind(url, options);
    } finally {
      this.pendingListens--;
    }
  }

  /** `ready` once the store is open and no `listen` is under way; `stopping` from `close` on. */
  get readiness(): Readiness {
    if (this.closing) return 'stopping';
    return this.broker.running && this.pendingListens === 0 ? 'ready' : 'starting';
  }

  /** The HTTP API (made on first use), so an application can add routes of its own. */
  get http(): HttpApp {
    this.httpApp ??= createHttpApp({
      broker: this.broker,
      options: { ...DEFAULT_HTTP_OPTIONS, ...this.httpOptions },
      readiness: () => this.readiness,
      startedAt: this.createdAt,
      ...(this.metrics === undefined ? {} : { metrics: this.metrics }),
    });
    return this.httpApp;
  }

  private async bind(url: string, options: CicadaListenOptions): Promise<Listener> {
    await this.start();
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return this.listenHttp(parsed, options);
    const transport = this.transports.find((t) => t.schemes.includes(parsed.protocol));
    if (transport === undefined) throw new Error(`no transport for '${parsed.protocol}' in ${url}`);
    const { limits, ...transportOptions } = options;
    if (limits !== undefined && this.limits === undefined)
      throw new Error(`listener limits for ${url} need the broker's limits option`);
    const own = limits === undefined ? undefined : this.limits!.forListener(limits);
    let listener: Listener;
    if (speaksStomp(parsed)) {
      let handler = this.stomp;
      if (own !== undefined) {
        handler = stompHandler(this.broker, this.stompOptions, own);
        this.stompHandlers.push(handler);
      }
      listener = await transport.listen(parsed, handler, { ...transportOptions, webSocket: STOMP_WEBSOCKET });
    } else {
      let handler = this.mqtt;
      if (own !== undefined) {
        handler = mqttHandler(this.broker, this.mqttOptions, own);
        this.handlers.push(handler);
      }
      listener = await transport.listen(parsed, handler, transportOptions);
    }
    this.bound.push(listener);
    return listener;
  }

  /** Mounts the HTTP API on a shared HTTP(S) server (which may also serve ws://.../mqtt). */
  private async listenHttp(url: URL, options: CicadaListenOptions): Promise<Listener> {
    const secure = url.protocol === 'https:';
    if (secure && options.tls === undefined)
      throw new Error(`${url} needs TLS settings (certificate and key)`);
    const host = url.hostname.replace(/^\[|\]$/g, '') || '0.0.0.0';
    const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
    const urlText = url.toString();
    const tls = secure ? options.tls : undefined;
    const route = await sharedHttpServers.routeRequests(
      { host, port, ...(tls === undefined ? {} : { tls }) },
      '/',
      this.http.handler({ listener: urlText, secure }),
    );
    const listener: Listener = {
      url: urlText,
      host: route.host,
      port: route.port,
      close: async () => route.close(),
      reload: () => route.reload(),
    };
    this.bound.push(listener);
    this.httpListeners.add(listener);
    return listener;
  }

  get listeners(): readonly Listener[] {
    return this.bound;
  }

  /**
   * Changes settings while running (SIGHUP): MQTT settings for connections accepted from now
   * on (open ones keep what their CONNACK announced), the process's connection caps at the
   * next admission.
   */
  reconfigure(changes: LiveSettings): void {
    if (changes.mqtt !== undefined) {
      this.mqttOptions = { ...this.mqttOptions, ...changes.mqtt };
      for (const handler of [this.mqtt, ...this.handlers]) handler.reconfigure(changes.mqtt);
    }
    if (changes.limits !== undefined && this.limits !== undefined)
      Object.assign(this.limits.gate.options, changes.limits);
  }

  /** Publishes a message from the application itself (no client, no authorization). */
  async publish(init: PublishInit): Promise<void> {
    await this.start();
    const payload = typeof init.payload === 'string' ? Buffer.from(init.payload) : init.payload;
    const message = this.broker.createMessage({
      ...init,
      payload,
      qos: init.qos ?? 0,
      retain: init.retain ?? false,
    });
    await this.broker.publish(message).persisted;
  }

  on<E extends EventName>(event: E, listener: EventListener<E>): this {
    (this.broker.on as (e: E, l: EventListener<E>) => unknown)(event, listener);
    return this;
  }

  off<E extends EventName>(event: E, listener: EventListener<E>): this {
    (this.broker.off as (e: E, l: EventListener<E>) => unknown)(event, listener);
    return this;
  }

  once<E extends EventName>(event: E, listener: EventListener<E>): this {
    (this.broker.once as (e: E, l: EventListener<E>) => unknown)(event, listener);
    return this;
  }

  /** Stops listening, closes every connection and the store. */
  async close(): Promise<void> {
    this.closing = true;
    this.sys?.stop();
    this.metrics?.close();
    // The HTTP API closes last, so that /readyz answers "stopping" while connections drain.
    const listeners = this.bound.splice(0);
    const http = listeners.filter((l) => this.httpListeners.has(l));
    await Promise.all(listeners.filter((l) => !this.httpListeners.has(l)).map((l) => l.close()));
    if (this.starting !== undefined) {
      await this.starting.catch(() => {});
      await this.broker.close();
    }
    for (const handler of [this.mqtt, ...this.handlers, this.stomp, ...this.stompHandlers]) {
      for (const connection of handler.connections) connection.stream.destroy();
    }
    await Promise.all(http.map((l) => l.close()));
    this.httpListeners.clear();
    this.limits?.close();
  }
}

/** The path of WebSocket listeners that speak STOMP. */
const STOMP_WS_PATH = '/stomp';

/** Whether a listener URL speaks STOMP: `stomp:`, `stomps:`, or WebSocket on `/stomp`. */
function speaksStomp(url: URL): boolean {
  if (url.protocol === 'stomp:' || url.protocol === 'stomps:') return true;
  return (url.protocol === 'ws:' || url.protocol === 'wss:') && url.pathname === STOMP_WS_PATH;
}

/** Creates a broker; nothing happens until `listen` (or `start`). */
export function createBroker(options: CicadaOptions = {}): Cicada {
  return new Cicada(options);
}
