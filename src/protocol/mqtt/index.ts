import type { Broker } from '../../broker/broker.js';
import type { ConnectionHandler } from '../../transport/transport.js';
import { MqttConnection } from './connection.js';
import { DEFAULT_MQTT_OPTIONS, type MqttOptions } from './options.js';

export { MqttConnection } from './connection.js';
export { DEFAULT_MQTT_OPTIONS, type MqttOptions } from './options.js';

/** How often idle connections are looked for: keep-alive and connect timeouts are this precise. */
const WATCHDOG_INTERVAL_MS = 250;

/** The MQTT protocol as a transport's connection handler; tracks its live connections. */
export function mqttHandler(
  broker: Broker,
  options: Partial<MqttOptions> = {},
): ConnectionHandler & { connections: Set<MqttConnection> } {
  const resolved: MqttOptions = { ...DEFAULT_MQTT_OPTIONS, ...options };
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
    const connection = new MqttConnection(stream, info, broker, resolved);
    connections.add(connection);
    if (watchdog === undefined) {
      watchdog = setInterval(sweep, WATCHDOG_INTERVAL_MS);
      watchdog.unref();
    }
    stream.once('close', () => {
      connections.delete(connection);
      if (connections.size === 0) {
        clearInterval(watchdog);
        watchdog = undefined;
      }
    });
  };
  return Object.assign(handler, { connections });
}
