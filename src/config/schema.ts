import type { BrokerOptions } from '../broker/broker.js';
import type { QueueOptions } from '../broker/queues.js';
import type { LimitsOptions } from '../limits/limits.js';
import { LOG_LEVELS, type LogLevel } from '../observe/log.js';
import { DEFAULT_MQTT_OPTIONS, type MqttOptions } from '../protocol/mqtt/options.js';
import {
  boolean,
  defaultsOf,
  expectation,
  integer,
  oneOf,
  optionalInteger,
  type SchemaFor,
  type Section,
  section,
  string,
  urls,
  walkFields,
} from './fields.js';

import { HTTP, type HttpConfig } from './http.js';
import { checkListenUrl, LISTENER_SCHEMES } from './listen-url.js';
import { SYS, type SysConfig } from './observe.js';
import { QUEUES } from './queues.js';
import {
  ACL,
  type AclConfig,
  AUTH,
  type AuthConfig,
  LIMITS,
  LISTENERS,
  type ListenerConfig,
  TLS,
  type TlsConfig,
} from './security.js';
import { STOMP_SECTION, type StompConfig } from './stomp.js';

export {
  defaultsOf,
  expectation,
  type Field,
  type Fields,
  type LeafField,
  type List,
  type Section,
} from './fields.js';
export type { AclConfig, AuthConfig, ListenerConfig, TlsConfig };
export { checkListenUrl, LISTENER_SCHEMES };

/** The broker core's settings a config file may give: everything but code (store, hooks, callbacks). */
export type BrokerConfig = Required<Omit<BrokerOptions, 'store' | 'hooks' | 'onError' | 'now' | 'queues'>>;

/** Where state is kept. */
export interface StoreConfig {
  /** `durable`: on disk, surviving crashes (the default); `memory`: lost when the broker stops. */
  type: 'durable' | 'memory';
  /** The durable store's data directory. */
  directory: string;
}

/** A complete configuration: what a config file holds once validated and defaulted. */
export interface CicadaConfig {
  listen: string[];
  listeners: ListenerConfig[];
  tls: TlsConfig;
  logLevel: LogLevel;
  shutdownTimeout: number;
  store: StoreConfig;
  broker: BrokerConfig;
  mqtt: MqttOptions;
  auth: AuthConfig;
  acl: AclConfig;
  limits: LimitsOptions;
  http: HttpConfig;
  sys: SysConfig;
  queues: QueueOptions;
  stomp: StompConfig;
}

const UINT32_MAX = 0xffff_ffff;
/** The largest packet MQTT can encode: a 4-byte Remaining Length plus the 5-byte fixed header. */
const MAX_PACKET_SIZE = 268_435_460;
/** setTimeout's ceiling, in milliseconds. */
const MAX_TIMER_MS = 2_147_483_647;
const MQTT = DEFAULT_MQTT_OPTIONS;

// ---- the schema ----------------------------------------------------------------------------

/** Every setting of the config file, with its type, range, default and a one-line description. */
export const CONFIG_SCHEMA: SchemaFor<CicadaConfig> = {
  listen: urls(['mqtt://0.0.0.0:1883'], 'Listener URLs, e.g. mqtt://0.0.0.0:1883 (port 0 picks a free port)'),
  listeners: LISTENERS,
  tls: TLS,
  logLevel: oneOf(LOG_LEVELS, 'info', 'Least severe level logged'),
  shutdownTimeout: integer(
    1,
    3600,
    10,
    'Seconds a shutdown may take to drain before the process exits with an error',
  ),
  store: section<StoreConfig>('Where state is kept', {
    type: oneOf(['durable', 'memory'], 'durable', 'durable: on disk, crash-safe; memory: lost at stop'),
    directory: string('./data', 'Data directory of the durable store'),
  }),
  broker: section<BrokerConfig>('Broker core settings', {
    maxQueuedMessages: integer(1, Number.MAX_SAFE_INTEGER, 1000, 'Most messages queued per session'),
    queueOverflow: oneOf(['drop-new', 'drop-oldest'], 'drop-new', 'Which message a full queue drops'),
    queueQoS0: boolean(false, 'Queue QoS 0 messages for disconnected persistent sessions'),
    maxSessionExpiryInterval: integer(0, UINT32_MAX, UINT32_MAX, 'Upper bound on session expiry, in seconds'),
    maximumQoS: oneOf([0, 1, 2], 2, 'Highest QoS accepted and granted'),
    retainAvailable: boolean(true, 'Whether retained messages are supported'),
    wildcardSubscriptionsAvailable: boolean(true, 'Whether topic filters may use + and #'),
    sharedSubscriptionsAvailable: boolean(true, 'Whether $share/group/filter subscriptions are supported'),
    subscriptionIdentifiersAvailable: boolean(true, 'Whether MQTT 5 Subscription Identifiers are supported'),
    maxRetainedMessages: integer(0, Number.MAX_SAFE_INTEGER, 1_000_000, 'Most retained messages kept'),
  }),
  mqtt: section<MqttOptions>('MQTT protocol settings', {
    maxPacketSize: integer(1, MAX_PACKET_SIZE, MQTT.maxPacketSize, 'Largest packet accepted, in bytes'),
    receiveMaximum: integer(
      1,
      65_535,
      MQTT.receiveMaximum,
      'Inbound QoS 1/2 publishes a client may have unacknowledged',
    ),
    maxInflightMessages: integer(
      1,
      65_535,
      MQTT.maxInflightMessages,
      'Outbound QoS 1/2 deliveries in flight per connection',
    ),
    topicAliasMaximum: integer(
      0,
      65_535,
      MQTT.topicAliasMaximum,
      'Topic aliases a client may use towards the broker',
    ),
    serverKeepAlive: optionalInteger(
      0,
      65_535,
      'Keep alive imposed on MQTT 5 clients, in seconds (unset: theirs)',
    ),
    connectTimeout: integer(
      1,
      MAX_TIMER_MS,
      MQTT.connectTimeout,
      'Milliseconds a new connection has to send CONNECT',
    ),
    responseInformation: string(
      MQTT.responseInformation,
      'Response Information for clients asking for it (%c: client id)',
    ),
    allowZeroLengthClientId: boolean(
      MQTT.allowZeroLengthClientId,
      'Accept an empty client id and assign one',
    ),
    maxPublishRate: integer(
      0,
      Number.MAX_SAFE_INTEGER,
      MQTT.maxPublishRate,
      'PUBLISH packets a second per client; beyond it reads pause (0: unlimited)',
    ),
    maxPublishBytesRate: integer(
      0,
      Number.MAX_SAFE_INTEGER,
      MQTT.maxPublishBytesRate,
      'Topic and payload bytes a second per client; beyond it reads pause (0: unlimited)',
    ),
    maxSubscriptionsPerClient: integer(
      0,
      Number.MAX_SAFE_INTEGER,
      MQTT.maxSubscriptionsPerClient,
      'Subscriptions one session may hold (0: unlimited)',
    ),
    maxTopicLength: integer(1, 65_535, MQTT.maxTopicLength, 'Longest topic name or filter, in UTF-8 bytes'),
    maxTopicLevels: integer(1, 65_535, MQTT.maxTopicLevels, 'Most levels in a topic name or filter'),
    outboundSoftLimit: integer(
      0,
      Number.MAX_SAFE_INTEGER,
      MQTT.outboundSoftLimit,
      'Unsent bytes per connection beyond which QoS 0 to it is dropped and QoS 1/2 waits',
    ),
    outboundHardLimit: integer(
      1,
      Number.MAX_SAFE_INTEGER,
      MQTT.outboundHardLimit,
      'Unsent bytes per connection at which a client that does not read is disconnected',
    ),
  }),
  auth: AUTH,
  acl: ACL,
  limits: LIMITS,
  http: HTTP,
  sys: SYS,
  queues: QUEUES,
  stomp: STOMP_SECTION,
};

/** The schema as the validator walks it. */
export const ROOT: Section = { kind: 'section', description: 'Cicada configuration', fields: CONFIG_SCHEMA };

// ---- derived -------------------------------------------------------------------------------

/** One row of the configuration reference. */
export interface ReferenceEntry {
  /** Dotted key path, e.g. `mqtt.receiveMaximum`. */
  readonly key: string;
  readonly expected: string;
  /** Undefined when the setting is unset by default. */
  readonly default: unknown;
  readonly description: string;
}

/** Every setting (sections included), in schema order: what the README's reference must list. */
export function configReference(): ReferenceEntry[] {
  const rows: ReferenceEntry[] = [];
  walkFields(CONFIG_SCHEMA, (key, field) => {
    const fallback = field.kind === 'section' ? undefined : field.default;
    rows.push({ key, expected: expectation(field), default: fallback, description: field.description });
  });
  return rows;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The configuration with no config file and no flags. Frozen. */
export const DEFAULT_CONFIG: Readonly<CicadaConfig> = deepFreeze(
  // Sound: SchemaFor requires a default for every required setting.
  defaultsOf(CONFIG_SCHEMA) as unknown as CicadaConfig,
);
