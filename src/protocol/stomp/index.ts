import type { Broker } from '../../broker/broker.js';
import { encodeFrame, StompDecoder } from '../../codec/stomp/index.js';
import type { GateRefusal } from '../../limits/connection-gate.js';
import { Limits, type LimitsOptions } from '../../limits/limits.js';
import type { ConnectionHandler } from '../../transport/transport.js';
import { shedUnderPressure } from '../mqtt/index.js';
import { StompConnection } from './connection.js';
import { DEFAULT_STOMP_OPTIONS, type StompOptions } from './options.js';

export { StompConnection } from './connection.js';
export { DEFAULT_STOMP_OPTIONS, type StompOptions } from './options.js';

/** The STOMP handler: a transport's connection handler with its live connections and its limits. */
export type StompHandler = ConnectionHandler & {
  connections: Set<StompConnection>;
  /** The gate and memory watch this handler applies; undefined when it was given none. */
  limits: Limits | undefined;
};

/**
 * STOMP 1.0/1.1/1.2 as a transport's connection handler; tracks its live connections. With
 * `limits` (settings, or a `Limits` shared with other handlers and listeners) every connection
 * must pass the connection gate first, and memory pressure pauses senders, as for MQTT.
 */
export function stompHandler(
  broker: Broker,
  options: Partial<StompOptions> = {},
  limits?: Limits | Partial<LimitsOptions>,
): StompHandler {
  const resolved: StompOptions = { ...DEFAULT_STOMP_OPTIONS, ...options };
  // A Limits made here is this handler's own; a shared one is wired once by its owner.
  const owned = limits !== undefined && !(limits instanceof Limits) ? new Limits(limits) : undefined;
  const guard = owned ?? (limits instanceof Limits ? limits : undefined);
  if (owned?.memory !== undefined) shedUnderPressure(broker, owned.memory);
  const connections = new Set<StompConnection>();
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
    const connection = new StompConnection(stream, info, broker, resolved, guard?.memory);
    connections.add(connection);
    stream.once('close', () => {
      release?.();
      connections.delete(connection);
    });
  };
  return Object.assign(handler, { connections, limits: guard });
}

/** What a refused connection is told: memory pressure passes, caps are the operator's. */
const REFUSAL_MESSAGES: Record<Exclude<GateRefusal, 'connection-rate'>, string> = {
  'server-busy': 'server busy: try again later',
  'total-quota': 'too many connections',
  'address-quota': 'too many connections from this address',
};

/**
 * Turns away a connection the gate refused. A connection-rate flood is closed at once, as for
 * MQTT. Otherwise the first frame is awaited and answered with an ERROR saying why, so that
 * the client reads it rather than a reset; the connect timeout bounds the wait.
 */
function refuse(stream: Parameters<ConnectionHandler>[0], refusal: GateRefusal, options: StompOptions): void {
  stream.on('error', () => {});
  if (refusal === 'connection-rate') {
    stream.destroy();
    return;
  }
  const timer = setTimeout(() => stream.destroy(), options.connectTimeout);
  timer.unref();
  const decoder = new StompDecoder({
    maxFrameSize: options.maxFrameSize,
    maxHeaders: options.maxHeaders,
    maxHeaderLength: options.maxHeaderLength,
  });
  let answered = false;
  const answer = (): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    const message = REFUSAL_MESSAGES[refusal];
    stream.end(encodeFrame('ERROR', [['message', message]], undefined, '1.0'));
    stream.pause();
    // Let the ERROR flush, but never keep the socket for a peer that does not close.
    setTimeout(() => stream.destroy(), 1000).unref();
  };
  stream.on('data', (chunk: Buffer) => {
    if (answered) return;
    try {
      decoder.push(chunk, answer);
    } catch {
      stream.destroy();
    }
  });
  stream.once('close', () => clearTimeout(timer));
}
