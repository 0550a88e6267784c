/** STOMP protocol settings (the broker core and MQTT have their own). */
export interface StompOptions {
  /** Largest frame accepted (command, headers and body), in bytes. Default 1 MiB. */
  maxFrameSize: number;
  /** Most header lines in one frame. Default 64. */
  maxHeaders: number;
  /** Longest header line, in bytes. Default 8 KiB. */
  maxHeaderLength: number;
  /** Milliseconds a new connection has to send CONNECT. Default 10 000. */
  connectTimeout: number;
  /**
   * The server's heart-beat offer (STOMP 1.2 "Heart-beating"), in milliseconds: the shortest
   * interval at which it sends heart-beats (the client's wish is raised to it). 0: it sends none.
   * Default 10 000.
   */
  heartbeatSend: number;
  /**
   * The interval at which the server wants the client's heart-beats, in milliseconds (a client
   * offering a longer one gets its own). A client silent for twice the agreed interval is
   * disconnected. 0: none asked for. Default 10 000.
   */
  heartbeatReceive: number;
  /** Subscriptions one connection may hold; a SUBSCRIBE beyond it is an error. 0: unlimited. Default 1000. */
  maxSubscriptions: number;
  /**
   * Topic MESSAGE frames (client and client-individual acknowledgement) a connection may have
   * unacknowledged; further deliveries wait in its session queue. Default 1024.
   */
  maxUnacknowledged: number;
  /** SEND, ACK and NACK frames the open transactions of one connection may hold. Default 1000. */
  maxTransactionFrames: number;
  /** SEND frames a second one client may send, sustained; beyond it reads pause. 0: unlimited. */
  maxSendRate: number;
  /** Body bytes a second one client may send, enforced like `maxSendRate`. 0: unlimited. */
  maxSendBytesRate: number;
  /** Unsent bytes beyond which a connection is a slow consumer (as for MQTT). Default 64 KiB. */
  outboundSoftLimit: number;
  /** Unsent bytes at which a connection that does not read is closed. Default 2 MiB. */
  outboundHardLimit: number;
  /**
   * Largest message body the broker accepts from any protocol (MQTT's packet limit may exceed
   * `maxFrameSize`): the outbound hard limit always leaves room for one such MESSAGE, so a
   * subscriber that reads is never taken for a slow consumer. Set by the server.
   */
  largestMessage: number;
  /** Longest MQTT topic a destination may map to, in UTF-8 bytes: the MQTT limit (one topic space). */
  maxTopicLength: number;
  /** Most levels in that topic: the MQTT limit. */
  maxTopicLevels: number;
}

/** The defaults of every STOMP setting. */
export const DEFAULT_STOMP_OPTIONS: StompOptions = {
  maxFrameSize: 1024 * 1024,
  maxHeaders: 64,
  maxHeaderLength: 8 * 1024,
  connectTimeout: 10_000,
  heartbeatSend: 10_000,
  heartbeatReceive: 10_000,
  maxSubscriptions: 1000,
  maxUnacknowledged: 1024,
  maxTransactionFrames: 1000,
  maxSendRate: 0,
  maxSendBytesRate: 0,
  outboundSoftLimit: 64 * 1024,
  outboundHardLimit: 2 * 1024 * 1024,
  largestMessage: 1024 * 1024,
  maxTopicLength: 4096,
  maxTopicLevels: 128,
};
