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
  /**
   * PUBLISH packets a second one client may send, sustained (one second's worth in a burst);
   * beyond it the broker stops reading from the client until its bucket refills: slowed
   * down, never dropped. 0: unlimited (the default; producers differ too much for one figure).
   */
  maxPublishRate: number;
  /** Bytes (topic and payload) a second one client may publish, enforced like `maxPublishRate`. 0: unlimited. */
  maxPublishBytesRate: number;
  /** Subscriptions one session may hold; a SUBSCRIBE beyond it is refused per filter (0x97). 0: unlimited. Default 10 000. */
  maxSubscriptionsPerClient: number;
  /** Longest topic name or filter accepted, in UTF-8 bytes. Default 4096. */
  maxTopicLength: number;
  /** Most levels (`/`-separated parts) in a topic name or filter. Default 128. */
  maxTopicLevels: number;
  /**
   * Unsent bytes a connection may buffer (never less than its stream's high-water mark) before
   * the client counts as a slow consumer: QoS 1/2 deliveries then wait in the session queue and
   * QoS 0 deliveries to it are dropped, until the buffer drains. Default 64 KiB (the kernel's
   * socket buffer comes on top).
   */
  outboundSoftLimit: number;
  /**
   * Unsent bytes at which a connection is closed (DISCONNECT 0x97): only a client that stopped
   * reading gets there. Never less than `outboundSoftLimit` plus `maxPacketSize`, so one
   * largest message to a client that reads cannot trip it. Default 2 MiB.
   */
  outboundHardLimit: number;
}

/** The defaults of every MQTT setting. */
export const DEFAULT_MQTT_OPTIONS: MqttOptions = {
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 1024,
  maxInflightMessages: 1024,
  topicAliasMaximum: 256,
  connectTimeout: 10_000,
  responseInformation: 'response/%c',
  allowZeroLengthClientId: true,
  maxPublishRate: 0,
  maxPublishBytesRate: 0,
  maxSubscriptionsPerClient: 10_000,
  maxTopicLength: 4096,
  maxTopicLevels: 128,
  outboundSoftLimit: 64 * 1024,
  outboundHardLimit: 2 * 1024 * 1024,
};
