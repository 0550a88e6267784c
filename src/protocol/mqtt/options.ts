/** MQTT protocol settings (the broker core has its own). */
export interface MqttOptions {
  /** Largest packet accepted, and advertised as Maximum Packet Size (MQTT 3.2.2.3.6). Default 1 MiB. */
  maxPacketSize: number;
  /** Inbound QoS 1/2 publishes a client may have unacknowledged (MQTT 3.2.2.3.3). Default 1024. */
  receiveMaximum: number;
  /** Outbound QoS 1/2 deliveries in flight per connection, whatever the client allows. Default 1024. */
  maxInflightMessages: number;
  /** Topic aliases a client may use towards the broker (MQTT 3.2.2.3.8). Default 256. */
  topicAliasMaximum: number;
  /** If set, imposed on MQTT 5 clients as Server Keep Alive (MQTT 3.2.2.3.14), in seconds. */
  serverKeepAlive?: number;
  /** Milliseconds a new connection has to send CONNECT. Default 10 000. */
  connectTimeout: number;
  /**
   * Response Information for clients that request it (MQTT 3.2.2.3.15); `%c` is replaced by
   * the client id. Default `response/%c`.
   */
  responseInformation: string;
  /** Accept an empty client id from a clean-session client and assign one (MQTT-3.1.3-6). Default true. */
  allowZeroLengthClientId: boolean;
}

export const DEFAULT_MQTT_OPTIONS: MqttOptions = {
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 1024,
  maxInflightMessages: 1024,
  topicAliasMaximum: 256,
  connectTimeout: 10_000,
  responseInformation: 'response/%c',
  allowZeroLengthClientId: true,
};
