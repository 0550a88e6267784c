import { Broker, type BrokerOptions, type MessageInit } from './broker/broker.js';
import type { BrokerEvents } from './broker/hooks.js';
import type { Store } from './broker/store.js';
import { type ConnectionGateOptions, Limits, type LimitsOptions } from './limits/index.js';
import {
  DEFAULT_MQTT_OPTIONS,
  type MqttHandler,
  type MqttOptions,
  mqttHandler,
} from './protocol/mqtt/index.js';
import { DurableStore } from './store/durable/index.js';
import { MemoryStore } from './store/memory/memory-store.js';
import { TcpTransport } from './transport/tcp.js';
import { TlsTransport } from './transport/tls.js';
import type { Listener, ListenOptions, Transport } from './transport/transport.js';
import { WebSocketTransport } from './transport/ws.js';

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
   * Process protection: connection caps and rates, the memory high-water mark. Default: none
   * (an embedding application decides; the `cicada` command applies production defaults).
   */
  limits?: Partial<LimitsOptions> | Limits;
}

/** Per-listener settings: transport options plus the listener's own connection caps. */
export interface CicadaListenOptions extends ListenOptions {
  /** Caps of this listener on top of the process's (those not given are off). Needs `limits`. */
  readonly limits?: Partial<ConnectionGateOptions>;
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
  private readonly mqttOptions: Partial<MqttOptions> | undefined;
  private readonly mqtt: MqttHandler;
  /** Handlers of listeners with limits of their own. */
  private readonly handlers: MqttHandler[] = [];
  private readonly transports: Transport[];
  private readonly bound: Listener[] = [];
  private starting: Promise<void> | undefined;

  constructor(options: CicadaOptions = {}) {
    const { mqtt, store, dataDir, limits, ...core } = options;
    const chosen =
      store ?? (dataDir === undefined ? new MemoryStore() : new DurableStore({ directory: dataDir }));
    this.broker = new Broker({ ...core, store: chosen });
    this.limits = limits === undefined || limits instanceof Limits ? limits : new Limits(limits);
    this.mqttOptions = mqtt;
    // A WebSocket message may carry the largest MQTT packet accepted, and a little framing slack.
    const maxPacketSize = mqtt?.maxPacketSize ?? DEFAULT_MQTT_OPTIONS.maxPacketSize;
    this.transports = [
      new TcpTransport(),
      new TlsTransport(),
      new WebSocketTransport({ maxPayload: maxPacketSize + 4096 }),
    ];
    this.mqtt = mqttHandler(this.broker, mqtt, this.limits);
  }

  /** Opens the store and restores state; `listen` does this on first use. */
  start(): Promise<void> {
    this.starting ??= this.broker.start();
    return this.starting;
  }

  /**
   * Listens on a URL such as `mqtt://0.0.0.0:1883` or `mqtts://0.0.0.0:8883` (port 0 picks a
   * free one); `options` carry per-listener settings such as TLS files and the PROXY protocol.
   */
  async listen(url: string, options: CicadaListenOptions = {}): Promise<Listener> {
    await this.start();
    const parsed = new URL(url);
    const transport = this.transports.find((t) => t.schemes.includes(parsed.protocol));
    if (transport === undefined) throw new Error(`no transport for '${parsed.protocol}' in ${url}`);
    const { limits, ...transportOptions } = options;
    let handler = this.mqtt;
    if (limits !== undefined) {
      if (this.limits === undefined)
        throw new Error(`listener limits for ${url} need the broker's limits option`);
      handler = mqttHandler(this.broker, this.mqttOptions, this.limits.forListener(limits));
      this.handlers.push(handler);
    }
    const listener = await transport.listen(parsed, handler, transportOptions);
    this.bound.push(listener);
    return listener;
  }

  get listeners(): readonly Listener[] {
    return this.bound;
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
    await Promise.all(this.bound.splice(0).map((l) => l.close()));
    if (this.starting !== undefined) {
      await this.starting.catch(() => {});
      await this.broker.close();
    }
    for (const handler of [this.mqtt, ...this.handlers]) {
      for (const connection of handler.connections) connection.stream.destroy();
    }
    this.limits?.close();
  }
}

/** Creates a broker; nothing happens until `listen` (or `start`). */
export function createBroker(options: CicadaOptions = {}): Cicada {
  return new Cicada(options);
}
