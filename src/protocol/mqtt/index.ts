import type { Broker } from '../../broker/broker.js';
import type { ConnectionHandler } from '../../transport/transport.js';
import { MqttConnection } from './connection.js';
import { DEFAULT_MQTT_OPTIONS, type MqttOptions } from './options.js';

export { MqttConnection } from './connection.js';
export { DEFAULT_MQTT_OPTIONS, type MqttOptions } from './options.js';

/** The MQTT protocol as a transport's connection handler; tracks its live connections. */
export function mqttHandler(
  broker: Broker,
  options: Partial<MqttOptions> = {},
): ConnectionHandler & { connections: Set<MqttConnection> } {
  const resolved: MqttOptions = { ...DEFAULT_MQTT_OPTIONS, ...options };
  const connections = new Set<MqttConnection>();
  const handler = (
    stream: Parameters<ConnectionHandler>[0],
    info: Parameters<ConnectionHandler>[1],
  ): void => {
    const connection = new MqttConnection(stream, info, broker, resolved);
    connections.add(connection);
    stream.once('close', () => connections.delete(connection));
  };
  return Object.assign(handler, { connections });
}
