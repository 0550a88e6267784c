import type { BrokerOptions } from '../broker/broker.js';
import { LOG_LEVELS, type LogLevel } from '../observe/log.js';
import { DEFAULT_MQTT_OPTIONS, type MqttOptions } from '../protocol/mqtt/options.js';

/** The broker core's settings a config file may give: everything but code (store, hooks, callbacks). */
export type BrokerConfig = Required<Omit<BrokerOptions, 'store' | 'hooks' | 'onError' | 'now'>>;

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
  logLevel: LogLevel;
  store: StoreConfig;
  broker: BrokerConfig;
  mqtt: MqttOptions;
}

/** URL schemes a listener may use (the transports `createBroker` knows). */
export const LISTENER_SCHEMES: readonly string[] = ['mqtt:', 'tcp:'];

// ---- field kinds -------------------------------------------------------------------------

export interface IntegerField {
  readonly kind: 'integer';
  readonly min: number;
  readonly max: number;
  readonly default?: number;
  readonly description: string;
}

export interface BooleanField {
  readonly kind: 'boolean';
  readonly default?: boolean;
  readonly description: string;
}

export interface StringField {
  readonly kind: 'string';
  readonly default?: string;
  readonly description: string;
}

export interface EnumField<T extends string | number = string | number> {
  readonly kind: 'enum';
  readonly values: readonly T[];
  readonly default?: T;
  readonly description: string;
}

/** A list of listener URLs (a single URL is taken as a list of one). */
export interface UrlListField {
  readonly kind: 'urls';
  readonly default?: readonly string[];
  readonly description: string;
}

export interface SectionField<T> {
  readonly kind: 'section';
  readonly description: string;
  readonly fields: SchemaFor<T>;
}

export type LeafField = IntegerField | BooleanField | StringField | EnumField | UrlListField;

/** Any section, as the validator walks it. */
export interface Section {
  readonly kind: 'section';
  readonly description: string;
  readonly fields: Fields;
}

export type Field = LeafField | Section;

export interface Fields {
  readonly [key: string]: Field;
}

/** The field kind a value type calls for. */
type FieldFor<V> = [V] extends [boolean]
  ? BooleanField
  : [V] extends [readonly string[]]
    ? UrlListField
    : [V] extends [string]
      ? string extends V
        ? StringField
        : EnumField<V>
      : [V] extends [number]
        ? number extends V
          ? IntegerField
          : EnumField<V>
        : [V] extends [object]
          ? SectionField<V>
          : never;

/** Required settings must declare their default; sections are defaulted field by field. */
type Defaulted<F, V> = F extends { kind: 'section' } ? F : F & { readonly default: Readonly<V> };

/**
 * A schema for `T`: one field per key, typed after the key's value, so a setting added to
 * `BrokerOptions` or `MqttOptions` does not compile until it is declared here.
 */
export type SchemaFor<T> = {
  readonly [K in keyof T]-?: undefined extends T[K]
    ? FieldFor<Exclude<T[K], undefined>>
    : Defaulted<FieldFor<T[K]>, T[K]>;
};

// ---- one-line declarations -------------------------------------------------------------------

function integer(min: number, max: number, fallback: number, description: string) {
  return { kind: 'integer', min, max, default: fallback, description } as const;
}

function optionalInteger(min: number, max: number, description: string): IntegerField {
  return { kind: 'integer', min, max, description };
}

function boolean(fallback: boolean, description: string) {
  return { kind: 'boolean', default: fallback, description } as const;
}

function string(fallback: string, description: string) {
  return { kind: 'string', default: fallback, description } as const;
}

function oneOf<const T extends string | number>(values: readonly T[], fallback: T, description: string) {
  return { kind: 'enum', values, default: fallback, description } as const;
}

function urls(fallback: readonly string[], description: string) {
  return { kind: 'urls', default: fallback, description } as const;
}

function section<T>(description: string, fields: SchemaFor<T>): SectionField<T> {
  return { kind: 'section', description, fields };
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
  logLevel: oneOf(LOG_LEVELS, 'info', 'Least severe level logged'),
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
  }),
};

/** The schema as the validator walks it. */
export const ROOT: Section = { kind: 'section', description: 'Cicada configuration', fields: CONFIG_SCHEMA };

// ---- derived -------------------------------------------------------------------------------

/** What a value of `field` must be, as error messages and the reference say it. */
export function expectation(field: Field): string {
  switch (field.kind) {
    case 'integer':
      return `an integer from ${field.min} to ${field.max}`;
    case 'boolean':
      return 'true or false';
    case 'string':
      return 'a string';
    case 'enum':
      return `one of ${field.values.join(', ')}`;
    case 'urls':
      return `a list of listener URLs such as mqtt://0.0.0.0:1883`;
    case 'section':
      return 'a mapping';
  }
}

/** Why `text` is not a listener URL (what was expected), or undefined if it is one. */
export function checkListenUrl(text: string): string | undefined {
  const schemes = LISTENER_SCHEMES.map((s) => s.slice(0, -1)).join(' or ');
  const expected = `a URL with scheme ${schemes}, such as mqtt://0.0.0.0:1883`;
  if (!URL.canParse(text)) return expected;
  const url = new URL(text);
  if (!LISTENER_SCHEMES.includes(url.protocol) || url.hostname === '') return expected;
  return undefined;
}

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
  const walk = (fields: Fields, prefix: string): void => {
    for (const [name, field] of Object.entries(fields)) {
      const key = prefix + name;
      const fallback = field.kind === 'section' ? undefined : field.default;
      rows.push({ key, expected: expectation(field), default: fallback, description: field.description });
      if (field.kind === 'section') walk(field.fields, `${key}.`);
    }
  };
  walk(CONFIG_SCHEMA, '');
  return rows;
}

/** A fresh object of every default in `fields` (settings without one are left out). */
export function defaultsOf(fields: Fields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(fields)) {
    if (field.kind === 'section') out[name] = defaultsOf(field.fields);
    else if (field.default !== undefined)
      out[name] = Array.isArray(field.default) ? [...field.default] : field.default;
  }
  return out;
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
