import type { Broker } from '../../broker/broker.js';
import { encode, MqttDecoder, ReasonCode } from '../../codec/mqtt/index.js';
import type { GateRefusal } from '../../limits/connection-gate.js';
import { Limits, type LimitsOptions } from '../../limits/limits.js';
import type { MemoryWatch } from '../../limits/memory-watch.js';
import type { ConnectionHandler } from '../../transport/transport.js';
import { MqttConnection } from './connection.js';
import { connackCode } from './errors.js';
import { DEFAULT_MQTT_OPTIONS, type MqttOptions } from './options.js';

export { MqttConnection } from './connection.js';
export { DEFAULT_MQTT_OPTIONS, type MqttOptions } from './options.js';

/** How often idle connections are looked for: keep-alive and connect timeouts are this precise. */
const WATCHDOG_INTERVAL_MS = 250;

/** The MQTT handler: a transport's connection handler with its live connections and its limits. */
export type MqttHandler = ConnectionHandler & {
  connections: Set<MqttConnection>;
  /** The gate and memory watch this handler applies; undefined when it was given none. */
  limits: Limits | undefined;
  /**
   * Changes settings for connections accepted from now on; open connections keep theirs
   * (their CONNACK announced them).
   */
  reconfigure(options: Partial<MqttOptions>): void;
};

/** Above the memory high-water mark, QoS 0 deliveries are dropped rather than queued. Wire once per watch. */
export function shedUnderPressure(broker: Broker, memory: MemoryWatch): void {
  const shed = (high: boolean): void => {
    broker.qos0DropReason = high ? 'memory-pressure' : undefined;
  };
  memory.on('change', (state) => shed(state.high));
  if (memory.high) shed(true);
}

/**
 * The MQTT protocol as a transport's connection handler; tracks its live connections.
 * With `limits` (settings, or a `Limits` shared with other handlers and listeners) every
 * connection must pass the connection gate first, and memory pressure pauses publishers; a
 * shared `Limits`' owner calls `shedUnderPressure` once for QoS 0 shedding.
 */
export function mqttHandler(
  broker: Broker,
  options: Partial<MqttOptions> = {},
  limits?: Limits | Partial<LimitsOptions>,
): MqttHandler {
  let resolved: MqttOptions = { ...DEFAULT_MQTT_OPTIONS, ...options };
  // A Limits made here is this handler's own; a shared one is wired once by its owner.
  const owned = limits !== undefined && !(limits instanceof Limits) ? new Limits(limits) : undefined;
  const guard = owned ?? (limits instanceof Limits ? limits : undefined);
  const memory = guard?.memory;
  if (owned?.memory !== undefined) shedUnderPressure(broker, owned.memory);
  const connections = new Set<MqttConnection>();
  let watchdog: NodeJS.Timeout | undefined;
  const sweep = (): void => {
    const now = Date.now();
    for (const connection of connections) connection.checkIdle(now);
  };
  const handler = (
    stream: Parameters<ConnectionHandler>[0],
    info: Parameters<ConnectionHandler>[1],
  ): void => {
    let release: (() => void) | undefined;
    if (guard !== undefined) {
      const decision = guard.gate.admit(info.remoteAddress);
      if (!decision.admitted) {
        refuse(stream, decision.refusal, resolved);
        return;
      }
      release = decision.release;
    }
    const connection = new MqttConnection(stream, info, broker, resolved, memory);
    connections.add(connection);
    if (watchdog === undefined) {
      watchdog = setInterval(sweep, WATCHDOG_INTERVAL_MS);
      watchdog.unref();
    }
    stream.once('close', () => {
      release?.();
      connections.delete(connection);
      if (connections.size === 0) {
        clearInterval(watchdog);
        watchdog = undefined;
      }
    });
  };
  const reconfigure = (changes: Partial<MqttOptions>): void => {
    resolved = { ...resolved, ...changes };
  };
  return Object.assign(handler, { connections, limits: guard, reconfigure });
}

/**
 * The CONNACK code for each gate refusal. Memory pressure is transient: 0x89 Server busy says
 * to try again later. The total and per-address caps are administrative limits: 0x97 Quota
 * exceeded. MQTT 3.1.1 has only 3 Server unavailable for all of them (connackCode maps it).
 */
const REFUSAL_CODES: Record<Exclude<GateRefusal, 'connection-rate'>, number> = {
  'server-busy': ReasonCode.ServerBusy,
  'total-quota': ReasonCode.QuotaExceeded,
  'address-quota': ReasonCode.QuotaExceeded,
};

/**
 * Turns away a connection the gate refused. A connection-rate flood is closed at once: it
 * costs the least (no CONNECT read, no timer) and a flooding client learns nothing it could
 * use from a code. The caps and memory pressure are answered with a CONNACK once the CONNECT
 * arrives, so honest clients know why and can back off; the socket lives at most until the
 * connect timeout, and the rate limit bounds how many such sockets one address can hold.
 */
function refuse(stream: Parameters<ConnectionHandler>[0], refusal: GateRefusal, options: MqttOptions): void {
  stream.on('error', () => {});
  if (refusal === 'connection-rate') {
    stream.destroy();
    return;
  }
  const reasonCode = REFUSAL_CODES[refusal];
  const timer = setTimeout(() => stream.destroy(), options.connectTimeout);
  timer.unref();
  let answered = false;
  const decoder = new MqttDecoder(
    (packet) => {
      if (answered) return;
      answered = true;
      if (packet.type === 'connect') {
        const version = packet.protocolVersion;
        stream.write(
          encode(
            { type: 'connack', sessionPresent: false, reasonCode: connackCode(reasonCode, version) },
            version,
          ),
        );
      }
      stream.end();
      stream.pause();
      clearTimeout(timer);
      // Let the CONNACK flush, but never keep the socket for a peer that does not close.
      setTimeout(() => stream.destroy(), 1000).unref();
    },
    { maxPacketSize: options.maxPacketSize },
  );
  stream.on('data', (chunk: Buffer) => {
    if (answered) return;
    try {
      decoder.feed(chunk);
    } catch {
      stream.destroy();
    }
  });
  stream.once('close', () => clearTimeout(timer));
}
