import { MqttCodecError, malformed, protocolError } from './errors.js';
import {
  cursor,
  readBinary,
  readUint16,
  readUint32,
  readUtf8,
  readVariableInt,
  utf8Length,
  variableIntLength,
  writeBinary,
  writeUtf8,
  writeVariableInt,
} from './primitives.js';
import { ReasonCode } from './reason-codes.js';
import { MAX_VARIABLE_BYTE_INTEGER, type Properties, type UserProperty } from './types.js';

/** Where a property list appears: a packet type, or the Will Properties inside CONNECT. */
export type PropertyContext =
  | 'connect'
  | 'connack'
  | 'publish'
  | 'will'
  | 'puback'
  | 'pubrec'
  | 'pubrel'
  | 'pubcomp'
  | 'subscribe'
  | 'suback'
  | 'unsubscribe'
  | 'unsuback'
  | 'disconnect'
  | 'auth';

type PropertyType = 'byte' | 'flag' | 'uint16' | 'uint32' | 'varint' | 'utf8' | 'binary' | 'pair';

interface PropertyDef {
  id: number;
  key: keyof Properties;
  type: PropertyType;
  contexts: ReadonlySet<PropertyContext>;
  /** Contexts where the property may appear more than once (MQTT 2.2.2.2). */
  repeats: ReadonlySet<PropertyContext>;
  /** Values the spec forbids, rejected as a Protocol Error. */
  invalid?: (value: number) => boolean;
}

const ACKS: PropertyContext[] = ['puback', 'pubrec', 'pubrel', 'pubcomp'];
const ALL: PropertyContext[] = [
  'connect',
  'connack',
  'publish',
  'will',
  ...ACKS,
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'disconnect',
  'auth',
];
const none = new Set<PropertyContext>();
const notZero = (v: number): boolean => v === 0;

function def(
  id: number,
  key: keyof Properties,
  type: PropertyType,
  contexts: PropertyContext[],
  extra: { repeats?: PropertyContext[]; invalid?: (value: number) => boolean } = {},
): PropertyDef {
  return {
    id,
    key,
    type,
    contexts: new Set(contexts),
    repeats: extra.repeats ? new Set(extra.repeats) : none,
    ...(extra.invalid ? { invalid: extra.invalid } : {}),
  };
}

/** Every MQTT 5 property (MQTT 2.2.2.2, table 2-4), with its type and where it may appear. */
export const PROPERTY_DEFINITIONS: readonly PropertyDef[] = [
  def(0x01, 'payloadFormatIndicator', 'flag', ['publish', 'will']),
  def(0x02, 'messageExpiryInterval', 'uint32', ['publish', 'will']),
  def(0x03, 'contentType', 'utf8', ['publish', 'will']),
  def(0x08, 'responseTopic', 'utf8', ['publish', 'will']),
  def(0x09, 'correlationData', 'binary', ['publish', 'will']),
  // MQTT-3.8.2.1.2 / 3.3.2.3.8: 0 is a Protocol Error; repeats only in PUBLISH.
  def(0x0b, 'subscriptionIdentifiers', 'varint', ['publish', 'subscribe'], {
    repeats: ['publish'],
    invalid: notZero,
  }),
  def(0x11, 'sessionExpiryInterval', 'uint32', ['connect', 'connack', 'disconnect']),
  def(0x12, 'assignedClientIdentifier', 'utf8', ['connack']),
  def(0x13, 'serverKeepAlive', 'uint16', ['connack']),
  def(0x15, 'authenticationMethod', 'utf8', ['connect', 'connack', 'auth']),
  def(0x16, 'authenticationData', 'binary', ['connect', 'connack', 'auth']),
  def(0x17, 'requestProblemInformation', 'flag', ['connect']),
  def(0x18, 'willDelayInterval', 'uint32', ['will']),
  def(0x19, 'requestResponseInformation', 'flag', ['connect']),
  def(0x1a, 'responseInformation', 'utf8', ['connack']),
  def(0x1c, 'serverReference', 'utf8', ['connack', 'disconnect']),
  def(0x1f, 'reasonString', 'utf8', ['connack', ...ACKS, 'suback', 'unsuback', 'disconnect', 'auth']),
  // MQTT-3.1.2.11.3 / 3.2.2.3.3: Receive Maximum 0 is a Protocol Error.
  def(0x21, 'receiveMaximum', 'uint16', ['connect', 'connack'], { invalid: notZero }),
  def(0x22, 'topicAliasMaximum', 'uint16', ['connect', 'connack']),
  // MQTT-3.3.2-8: Topic Alias 0 is not permitted.
  def(0x23, 'topicAlias', 'uint16', ['publish'], { invalid: notZero }),
  def(0x24, 'maximumQoS', 'byte', ['connack']),
  def(0x25, 'retainAvailable', 'flag', ['connack']),
  def(0x26, 'userProperties', 'pair', ALL, { repeats: ALL }),
  // MQTT-3.1.2.11.4 / 3.2.2.3.6: Maximum Packet Size 0 is a Protocol Error.
  def(0x27, 'maximumPacketSize', 'uint32', ['connect', 'connack'], { invalid: notZero }),
  def(0x28, 'wildcardSubscriptionAvailable', 'flag', ['connack']),
  def(0x29, 'subscriptionIdentifierAvailable', 'flag', ['connack']),
  def(0x2a, 'sharedSubscriptionAvailable', 'flag', ['connack']),
];

const byId: (PropertyDef | undefined)[] = [];
for (const d of PROPERTY_DEFINITIONS) byId[d.id] = d;

/** Property definitions in wire order, keyed by their field name, for the encoder. */
const byKey = new Map<string, PropertyDef>(PROPERTY_DEFINITIONS.map((d) => [d.key, d]));

/**
 * Decodes a property list (length prefix included) starting at `pos`. Returns undefined
 * for an empty list, so packets without properties allocate nothing.
 */
export function decodeProperties(
  buf: Buffer,
  pos: number,
  end: number,
  context: PropertyContext,
): Properties | undefined {
  const length = readVariableInt(buf, pos, end);
  pos = cursor.pos;
  const stop = pos + length;
  if (stop > end) throw malformed('TRUNCATED', 'property length runs past the packet');
  if (length === 0) return undefined;
  const props: Properties = {};
  const seen: number[] = [];
  while (pos < stop) {
    const id = readVariableInt(buf, pos, stop);
    pos = cursor.pos;
    const d = id < byId.length ? byId[id] : undefined;
    // MQTT 2.2.2.2: an identifier not valid for the packet type makes it a Malformed Packet.
    if (d === undefined)
      throw malformed('UNKNOWN_PROPERTY', `unknown property identifier 0x${id.toString(16)}`);
    if (!d.contexts.has(context)) {
      throw malformed('PROPERTY_NOT_ALLOWED', `property ${d.key} is not allowed in ${context}`);
    }
    if (seen.includes(id)) {
      if (!d.repeats.has(context))
        throw protocolError('DUPLICATE_PROPERTY', `property ${d.key} appears twice`);
    } else {
      seen.push(id);
    }
    pos = readPropertyValue(buf, pos, stop, d, props);
  }
  cursor.pos = stop;
  return props;
}

function readPropertyValue(
  buf: Buffer,
  pos: number,
  stop: number,
  d: PropertyDef,
  props: Properties,
): number {
  const target = props as Record<string, unknown>;
  switch (d.type) {
    case 'byte':
    case 'flag': {
      if (pos >= stop) throw malformed('TRUNCATED', `property ${d.key} runs past the property list`);
      const value = buf[pos]!;
      if (value > 1)
        throw protocolError('PROPERTY_VALUE_INVALID', `property ${d.key} must be 0 or 1, got ${value}`);
      target[d.key] = d.type === 'flag' ? value === 1 : value;
      return pos + 1;
    }
    case 'uint16':
    case 'uint32': {
      const value = d.type === 'uint16' ? readUint16(buf, pos, stop) : readUint32(buf, pos, stop);
      checkValue(d, value);
      target[d.key] = value;
      return cursor.pos;
    }
    case 'varint': {
      const value = readVariableInt(buf, pos, stop);
      checkValue(d, value);
      const list = target[d.key] as number[] | undefined;
      if (list) list.push(value);
      else target[d.key] = [value];
      return cursor.pos;
    }
    case 'utf8':
      target[d.key] = readUtf8(buf, pos, stop);
      return cursor.pos;
    case 'binary':
      target[d.key] = readBinary(buf, pos, stop);
      return cursor.pos;
    case 'pair': {
      const name = readUtf8(buf, pos, stop);
      const value = readUtf8(buf, cursor.pos, stop);
      const pair: UserProperty = [name, value];
      const list = target[d.key] as UserProperty[] | undefined;
      if (list) list.push(pair);
      else target[d.key] = [pair];
      return cursor.pos;
    }
  }
}

function checkValue(d: PropertyDef, value: number): void {
  if (!d.invalid?.(value)) return;
  // MQTT 3.3.4: a bad Topic Alias has a reason code of its own.
  if (d.key === 'topicAlias') {
    throw new MqttCodecError(
      'PROPERTY_VALUE_INVALID',
      ReasonCode.TopicAliasInvalid,
      'Topic Alias 0 (MQTT-3.3.2-8)',
    );
  }
  throw protocolError('PROPERTY_VALUE_INVALID', `property ${d.key} may not be ${value}`);
}

/**
 * Byte length of a property list's content (without its own length prefix), checking
 * that each present property is allowed in `context`. Encoders call this first, then
 * `writeProperties` with the same length.
 */
export function propertiesLength(props: Properties | undefined, context: PropertyContext): number {
  if (props === undefined) return 0;
  let length = 0;
  for (const key in props) {
    const value = props[key as keyof Properties];
    if (value === undefined) continue;
    const d = byKey.get(key);
    if (d === undefined) throw new TypeError(`unknown MQTT property '${key}'`);
    if (!d.contexts.has(context)) throw new TypeError(`property '${key}' is not allowed in ${context}`);
    length += valueLength(d, value);
  }
  return length;
}

function valueLength(d: PropertyDef, value: Properties[keyof Properties]): number {
  switch (d.type) {
    case 'byte':
    case 'flag':
      return 2;
    case 'uint16':
      return 3;
    case 'uint32':
      return 5;
    case 'varint': {
      let n = 0;
      for (const v of value as number[]) n += 1 + variableIntLength(checkVariableInt(v, d.key));
      return n;
    }
    case 'utf8':
      return 3 + checkFieldLength(utf8Length(value as string), d.key);
    case 'binary':
      return 3 + checkFieldLength((value as Buffer).length, d.key);
    case 'pair': {
      let n = 0;
      for (const [name, v] of value as UserProperty[]) {
        n += 5 + checkFieldLength(utf8Length(name), d.key) + checkFieldLength(utf8Length(v), d.key);
      }
      return n;
    }
  }
}

function checkVariableInt(value: number, key: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_VARIABLE_BYTE_INTEGER) {
    throw new RangeError(`property ${key} value ${value} does not fit a variable byte integer`);
  }
  return value;
}

function checkFieldLength(length: number, key: string): number {
  if (length > 0xffff) throw new RangeError(`property ${key} is ${length} bytes; at most 65535 fit`);
  return length;
}

/** Writes the length prefix and then each property, in the order the object holds them. */
export function writeProperties(
  buf: Buffer,
  pos: number,
  props: Properties | undefined,
  length: number,
): number {
  pos = writeVariableInt(buf, pos, length);
  if (props === undefined) return pos;
  for (const key in props) {
    const value = props[key as keyof Properties];
    if (value === undefined) continue;
    pos = writePropertyValue(buf, pos, byKey.get(key)!, value);
  }
  return pos;
}

function writePropertyValue(
  buf: Buffer,
  pos: number,
  d: PropertyDef,
  value: Properties[keyof Properties],
): number {
  switch (d.type) {
    case 'byte':
    case 'flag':
      buf[pos] = d.id;
      buf[pos + 1] = value === true ? 1 : value === false ? 0 : (value as number);
      return pos + 2;
    case 'uint16':
      buf[pos] = d.id;
      buf.writeUInt16BE(value as number, pos + 1);
      return pos + 3;
    case 'uint32':
      buf[pos] = d.id;
      buf.writeUInt32BE(value as number, pos + 1);
      return pos + 5;
    case 'varint':
      for (const v of value as number[]) {
        buf[pos] = d.id;
        pos = writeVariableInt(buf, pos + 1, v);
      }
      return pos;
    case 'utf8': {
      buf[pos] = d.id;
      const s = value as string;
      return writeUtf8(buf, pos + 1, s, utf8Length(s));
    }
    case 'binary':
      buf[pos] = d.id;
      return writeBinary(buf, pos + 1, value as Buffer);
    case 'pair':
      for (const [name, v] of value as UserProperty[]) {
        buf[pos] = d.id;
        pos = writeUtf8(buf, pos + 1, name, utf8Length(name));
        pos = writeUtf8(buf, pos, v, utf8Length(v));
      }
      return pos;
  }
}
