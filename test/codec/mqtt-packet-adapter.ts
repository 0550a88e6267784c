import mqtt from 'mqtt-packet';
import type {
  ConnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  Subscription,
  UserProperty,
  Will,
} from '../../src/codec/mqtt/index.js';
import { normalise, normaliseProperties } from './arbitraries.js';

/**
 * Converts between the codec's packets and mqtt-packet 9's objects, and records exactly where
 * mqtt-packet cannot, or does not, agree with the codec, so the differential tests can restrict
 * those cases narrowly instead of silently.
 *
 * mqtt-packet's shape (types/index.d.ts, writeToStream.js, parser.js): `cmd` for the type,
 * `messageId` for the packet identifier, CONNECT `keepalive` and `protocolId`, CONNACK
 * `returnCode` (3.x) or `reasonCode` (5.0), SUBSCRIBE `subscriptions: {topic, qos, nl, rap, rh}`,
 * SUBACK/UNSUBACK `granted`, UNSUBSCRIBE `unsubscriptions`; properties use our names except
 * `subscriptionIdentifier` (a number, or an array when repeated), `subscriptionIdentifiersAvailable`,
 * and `userProperties` as an object `{name: value | value[]}`. Both encoders write properties in
 * the object's key order, so conversions keep it.
 */

export type MqttObject = Record<string, any>;

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/** A name JavaScript orders before all other keys of an object (an array index). */
function isArrayIndexName(name: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(name) && Number(name) < 2 ** 32 - 1;
}

/**
 * Whether mqtt-packet's object form `{name: value | value[]}` can carry these User Properties
 * in this order: each name's values must be together, and no name may be an array index
 * (JavaScript enumerates those first, in numeric order, whatever the insertion order).
 */
export function userPropertiesRepresentable(pairs: readonly UserProperty[]): boolean {
  const closed = new Set<string>();
  let current: string | undefined;
  for (const [name] of pairs) {
    if (isArrayIndexName(name)) return false;
    if (name !== current) {
      if (closed.has(name)) return false;
      if (current !== undefined) closed.add(current);
      current = name;
    }
  }
  return true;
}

/** Groups User Properties by name (stable) and renames array-index names, so mqtt-packet can carry them. */
export function representableUserProperties(pairs: readonly UserProperty[]): UserProperty[] {
  const groups = new Map<string, string[]>();
  for (const [name, value] of pairs) {
    const key = isArrayIndexName(name) ? `n${name}` : name;
    const values = groups.get(key);
    if (values) values.push(value);
    else groups.set(key, [value]);
  }
  return [...groups].flatMap(([name, values]) => values.map((v): UserProperty => [name, v]));
}

function toMqttUserProperties(pairs: readonly UserProperty[]): Record<string, string | string[]> {
  if (!userPropertiesRepresentable(pairs)) {
    throw new Error(`mqtt-packet cannot carry these User Properties in order: ${JSON.stringify(pairs)}`);
  }
  // A null prototype, like mqtt-packet's parser uses, so a name such as "__proto__" is an ordinary key.
  const out: Record<string, string | string[]> = Object.create(null);
  for (const [name, value] of pairs) {
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [existing, value];
  }
  return out;
}

export function toMqttProperties(props: Properties | undefined): MqttObject | undefined {
  const normal = normaliseProperties(props);
  if (normal === undefined) return undefined;
  const out: MqttObject = {};
  for (const [key, value] of Object.entries(normal)) {
    switch (key) {
      case 'subscriptionIdentifiers': {
        const ids = value as number[];
        out.subscriptionIdentifier = ids.length === 1 ? ids[0] : [...ids];
        break;
      }
      case 'subscriptionIdentifierAvailable':
        out.subscriptionIdentifiersAvailable = value;
        break;
      case 'userProperties':
        out.userProperties = toMqttUserProperties(value as UserProperty[]);
        break;
      default:
        out[key] = value;
    }
  }
  return out;
}

const SAME_NAME_PROPERTIES = new Set<string>([
  'payloadFormatIndicator',
  'messageExpiryInterval',
  'contentType',
  'responseTopic',
  'correlationData',
  'sessionExpiryInterval',
  'assignedClientIdentifier',
  'serverKeepAlive',
  'authenticationMethod',
  'authenticationData',
  'requestProblemInformation',
  'willDelayInterval',
  'requestResponseInformation',
  'responseInformation',
  'serverReference',
  'reasonString',
  'receiveMaximum',
  'topicAliasMaximum',
  'topicAlias',
  'maximumQoS',
  'retainAvailable',
  'maximumPacketSize',
  'wildcardSubscriptionAvailable',
  'sharedSubscriptionAvailable',
]);

/** mqtt-packet parser properties back to ours; throws on anything it does not know. */
export function fromMqttProperties(props: MqttObject | undefined): Properties | undefined {
  if (props === undefined) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(props)) {
    if (key === 'subscriptionIdentifier') {
      out.subscriptionIdentifiers = Array.isArray(value) ? [...value] : [value];
    } else if (key === 'subscriptionIdentifiersAvailable') {
      out.subscriptionIdentifierAvailable = value;
    } else if (key === 'userProperties') {
      const pairs: UserProperty[] = [];
      for (const name of Object.keys(value)) {
        const v = value[name];
        for (const one of Array.isArray(v) ? v : [v]) pairs.push([name, one]);
      }
      out.userProperties = pairs;
    } else if (SAME_NAME_PROPERTIES.has(key)) {
      out[key] = value;
    } else {
      throw new Error(`unexpected mqtt-packet property '${key}'`);
    }
  }
  return Object.keys(out).length > 0 ? (out as Properties) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

function withProperties(obj: MqttObject, props: Properties | undefined): MqttObject {
  const mqttProps = toMqttProperties(props);
  if (mqttProps !== undefined) obj.properties = mqttProps;
  return obj;
}

/** Our packet as the object mqtt-packet's `generate` takes for the same bytes (in its own canonical form). */
export function toMqttPacket(packet: Packet, version: ProtocolVersion): MqttObject {
  const p = normalise(packet, version);
  const v5 = version === 5;
  switch (p.type) {
    case 'connect': {
      const out: MqttObject = {
        cmd: 'connect',
        protocolId: p.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion: p.protocolVersion,
        clean: p.clean,
        keepalive: p.keepAlive,
        clientId: p.clientId,
      };
      if (p.will) {
        out.will = withProperties(
          { topic: p.will.topic, payload: p.will.payload, qos: p.will.qos, retain: p.will.retain },
          p.will.properties,
        );
      }
      if (p.username !== undefined) out.username = p.username;
      if (p.password !== undefined) out.password = p.password;
      return withProperties(out, p.properties);
    }
    case 'connack':
      return v5
        ? withProperties(
            { cmd: 'connack', sessionPresent: p.sessionPresent, reasonCode: p.reasonCode },
            p.properties,
          )
        : { cmd: 'connack', sessionPresent: p.sessionPresent, returnCode: p.reasonCode };
    case 'publish': {
      const out: MqttObject = {
        cmd: 'publish',
        topic: p.topic,
        payload: p.payload,
        qos: p.qos,
        dup: p.dup,
        retain: p.retain,
      };
      if (p.qos > 0) out.messageId = p.packetId;
      return withProperties(out, p.properties);
    }
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      // mqtt-packet writes the reason code whenever `properties` is an object, so it is only set when non-empty.
      return v5
        ? withProperties({ cmd: p.type, messageId: p.packetId, reasonCode: p.reasonCode }, p.properties)
        : { cmd: p.type, messageId: p.packetId };
    case 'subscribe':
      return withProperties(
        {
          cmd: 'subscribe',
          messageId: p.packetId,
          subscriptions: p.subscriptions.map((s) =>
            v5
              ? {
                  topic: s.topicFilter,
                  qos: s.qos,
                  nl: s.noLocal,
                  rap: s.retainAsPublished,
                  rh: s.retainHandling,
                }
              : { topic: s.topicFilter, qos: s.qos },
          ),
        },
        p.properties,
      );
    case 'suback':
      return withProperties(
        { cmd: 'suback', messageId: p.packetId, granted: [...p.reasonCodes] },
        p.properties,
      );
    case 'unsubscribe':
      return withProperties(
        { cmd: 'unsubscribe', messageId: p.packetId, unsubscriptions: [...p.topicFilters] },
        p.properties,
      );
    case 'unsuback':
      return v5
        ? withProperties(
            { cmd: 'unsuback', messageId: p.packetId, granted: [...p.reasonCodes] },
            p.properties,
          )
        : { cmd: 'unsuback', messageId: p.packetId };
    case 'pingreq':
    case 'pingresp':
      return { cmd: p.type };
    case 'disconnect':
      return v5
        ? withProperties({ cmd: 'disconnect', reasonCode: p.reasonCode }, p.properties)
        : { cmd: 'disconnect' };
    case 'auth':
      return withProperties({ cmd: 'auth', reasonCode: p.reasonCode }, p.properties);
  }
}

/** Takes `keys` out of a parsed object, failing on any other key, so nothing the parser produced goes unchecked. */
function take(obj: MqttObject, required: string[], optional: string[] = []): MqttObject {
  const allowed = new Set([...required, ...optional]);
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) throw new Error(`unexpected key '${key}' in mqtt-packet ${obj.cmd} packet`);
  }
  for (const key of required) {
    if (!(key in obj)) throw new Error(`missing key '${key}' in mqtt-packet ${obj.cmd} packet`);
  }
  return obj;
}

/** The fixed-header fields mqtt-packet's parser sets on every packet. */
const HEADER_KEYS = ['cmd', 'retain', 'qos', 'dup', 'length', 'topic', 'payload'];

/**
 * A packet from mqtt-packet's parser back to ours, in the decoder's shape. Strict: an unknown
 * key, or a fixed-header field other than the parser's defaults on a non-PUBLISH packet, throws.
 */
export function fromMqttPacket(obj: MqttObject, version: ProtocolVersion): Packet {
  const v5 = version === 5;
  const cmd = obj.cmd as Packet['type'];
  if (cmd !== 'publish') {
    // PUBREL, SUBSCRIBE and UNSUBSCRIBE have fixed header flags 0b0010, which the parser reads as QoS 1.
    const headerQoS = cmd === 'pubrel' || cmd === 'subscribe' || cmd === 'unsubscribe' ? 1 : 0;
    const header = { retain: obj.retain, qos: obj.qos, dup: obj.dup, topic: obj.topic, payload: obj.payload };
    const expected = { retain: false, qos: headerQoS, dup: false, topic: null, payload: null };
    if (JSON.stringify(header) !== JSON.stringify(expected)) {
      throw new Error(`unexpected fixed header fields ${JSON.stringify(header)} in mqtt-packet ${cmd}`);
    }
  }
  if (typeof obj.length !== 'number') throw new Error('mqtt-packet packet without a length');
  switch (cmd) {
    case 'connect': {
      take(
        obj,
        [...HEADER_KEYS, 'protocolId', 'protocolVersion', 'clean', 'keepalive', 'clientId'],
        ['will', 'username', 'password', 'properties'],
      );
      if (obj.protocolId !== (obj.protocolVersion === 3 ? 'MQIsdp' : 'MQTT')) {
        throw new Error(`protocol name ${obj.protocolId} for level ${obj.protocolVersion}`);
      }
      const out: ConnectPacket = {
        type: 'connect',
        protocolVersion: obj.protocolVersion,
        clean: obj.clean,
        keepAlive: obj.keepalive,
        clientId: obj.clientId,
      };
      if (obj.will !== undefined) {
        const w = take(obj.will, ['retain', 'qos', 'topic', 'payload'], ['properties']);
        const will: Will = { topic: w.topic, payload: w.payload, qos: w.qos, retain: w.retain };
        if (w.properties !== undefined) will.properties = fromMqttProperties(w.properties)!;
        out.will = will;
      }
      if (obj.username !== undefined) out.username = obj.username;
      if (obj.password !== undefined) out.password = obj.password;
      if (obj.properties !== undefined) out.properties = fromMqttProperties(obj.properties)!;
      return out;
    }
    case 'connack':
      if (v5) {
        take(obj, [...HEADER_KEYS, 'sessionPresent', 'reasonCode'], ['properties']);
        return {
          type: 'connack',
          sessionPresent: obj.sessionPresent,
          reasonCode: obj.reasonCode,
          properties: fromMqttProperties(obj.properties),
        };
      }
      take(obj, [...HEADER_KEYS, 'sessionPresent', 'returnCode']);
      return {
        type: 'connack',
        sessionPresent: obj.sessionPresent,
        reasonCode: obj.returnCode,
        properties: undefined,
      };
    case 'publish':
      take(obj, HEADER_KEYS, ['messageId', 'properties']);
      if (obj.qos > 0 !== (obj.messageId !== undefined))
        throw new Error('messageId present at QoS 0 or absent at QoS > 0');
      return {
        type: 'publish',
        topic: obj.topic,
        payload: obj.payload,
        qos: obj.qos,
        retain: obj.retain,
        dup: obj.dup,
        packetId: obj.messageId ?? 0,
        properties: v5 ? fromMqttProperties(obj.properties) : undefined,
      };
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      if (v5) take(obj, [...HEADER_KEYS, 'messageId', 'reasonCode'], ['properties']);
      else take(obj, [...HEADER_KEYS, 'messageId']);
      return {
        type: cmd,
        packetId: obj.messageId,
        reasonCode: v5 ? obj.reasonCode : 0,
        properties: fromMqttProperties(obj.properties),
      } as Packet;
    case 'subscribe':
      take(obj, [...HEADER_KEYS, 'messageId', 'subscriptions'], ['properties']);
      return {
        type: 'subscribe',
        packetId: obj.messageId,
        subscriptions: obj.subscriptions.map((s: MqttObject): Subscription => {
          if (!v5) {
            take(s, ['topic', 'qos']);
            return { topicFilter: s.topic, qos: s.qos };
          }
          take(s, ['topic', 'qos', 'nl', 'rap', 'rh']);
          return {
            topicFilter: s.topic,
            qos: s.qos,
            noLocal: s.nl,
            retainAsPublished: s.rap,
            retainHandling: s.rh,
          };
        }),
        properties: fromMqttProperties(obj.properties),
      };
    case 'suback':
      take(obj, [...HEADER_KEYS, 'messageId', 'granted'], ['properties']);
      return {
        type: 'suback',
        packetId: obj.messageId,
        reasonCodes: [...obj.granted],
        properties: fromMqttProperties(obj.properties),
      };
    case 'unsubscribe':
      take(obj, [...HEADER_KEYS, 'messageId', 'unsubscriptions'], ['properties']);
      return {
        type: 'unsubscribe',
        packetId: obj.messageId,
        topicFilters: [...obj.unsubscriptions],
        properties: fromMqttProperties(obj.properties),
      };
    case 'unsuback':
      if (v5) take(obj, [...HEADER_KEYS, 'messageId', 'granted'], ['properties']);
      else take(obj, [...HEADER_KEYS, 'messageId']);
      return {
        type: 'unsuback',
        packetId: obj.messageId,
        reasonCodes: v5 ? [...obj.granted] : [],
        properties: fromMqttProperties(obj.properties),
      };
    case 'pingreq':
    case 'pingresp':
      take(obj, HEADER_KEYS);
      return { type: cmd };
    case 'disconnect':
      if (!v5) {
        take(obj, HEADER_KEYS);
        return { type: 'disconnect' };
      }
      take(obj, [...HEADER_KEYS, 'reasonCode'], ['properties']);
      return {
        type: 'disconnect',
        reasonCode: obj.reasonCode,
        properties: fromMqttProperties(obj.properties),
      };
    case 'auth':
      take(obj, [...HEADER_KEYS, 'reasonCode'], ['properties']);
      return { type: 'auth', reasonCode: obj.reasonCode, properties: fromMqttProperties(obj.properties) };
    default:
      throw new Error(`unknown mqtt-packet cmd ${String(cmd)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Running mqtt-packet
// ---------------------------------------------------------------------------------------------

/** mqtt-packet's encoding of `packet`; throws what mqtt-packet throws when it refuses. */
export function mqttGenerate(packet: Packet, version: ProtocolVersion): Buffer {
  return mqtt.generate(toMqttPacket(packet, version) as mqtt.Packet, { protocolVersion: version });
}

export interface MqttParseResult {
  packets: MqttObject[];
  errors: Error[];
  /** Bytes the parser kept, waiting for more. */
  leftover: number;
}

/** A fresh mqtt-packet parser for `version`. */
export function mqttParser(version: ProtocolVersion): ReturnType<typeof mqtt.parser> {
  return mqtt.parser({ protocolVersion: version });
}

/** Feeds `bytes` to a fresh mqtt-packet parser for `version`. */
export function mqttParse(bytes: Buffer, version: ProtocolVersion): MqttParseResult {
  const parser = mqttParser(version);
  const packets: MqttObject[] = [];
  const errors: Error[] = [];
  parser.on('packet', (p) => packets.push(p as MqttObject));
  parser.on('error', (e) => errors.push(e));
  const leftover = parser.parse(bytes);
  return { packets, errors, leftover };
}

// ---------------------------------------------------------------------------------------------
// Where mqtt-packet and the codec legitimately differ
// ---------------------------------------------------------------------------------------------

/**
 * Packets mqtt-packet 9.0.2 refuses to generate although they are valid, with the error it
 * throws (writeToStream.js `connect`):
 * - MQTT 3.1 CONNECT with an empty Client Identifier: "clientId must be supplied before 3.1.1".
 *   3.1 wants 1-23 characters, but that is for the server to answer (return code 2), not a
 *   malformed packet; the codec encodes and decodes it.
 * - 3.1.1/5.0 CONNECT with an empty Client Identifier and Clean Session 0: "clientId must be given
 *   if cleanSession set to 0". Again a CONNACK 0x02/0x85 matter (MQTT-3.1.3-8), not an encoding one.
 * - 5.0 CONNECT with a Password but no User Name: "Username is required to use password".
 *   MQTT 5.0 allows that (3.1.2.9; MQTT-3.1.2-22 of 3.1.1 was dropped).
 */
export function mqttPacketRefusesToGenerate(packet: Packet, version: ProtocolVersion): string | undefined {
  if (packet.type !== 'connect') return undefined;
  const v = packet.protocolVersion;
  if (packet.clientId === '' && v === 3) return 'clientId must be supplied before 3.1.1';
  if (packet.clientId === '' && !packet.clean) return 'clientId must be given if cleanSession set to 0';
  if (v === 5 && version === 5 && packet.password !== undefined && packet.username === undefined) {
    return 'Username is required to use password';
  }
  return undefined;
}

/**
 * The bytes mqtt-packet writes for the packet we encoded as `ours`. They are ours except where
 * MQTT 5.0 lets the sender choose and the codec picks the shortest form (the differences are
 * spelled out here so a change on either side shows):
 * - PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code other than 0 and no properties: we end after the
 *   reason code (Remaining Length 3, allowed by MQTT 3.4.2.2.1: "If the Remaining Length is less
 *   than 4 there is no Property Length"); mqtt-packet also writes a zero Property Length (4).
 * - DISCONNECT and AUTH without properties: we write nothing for reason code 0 (Remaining
 *   Length 0) and just the reason code otherwise (1), as MQTT 3.14.2.1 and 3.15.2.1 allow;
 *   mqtt-packet always writes the reason code and a zero Property Length (2).
 */
export function mqttPacketEncoding(ours: Buffer, packet: Packet, version: ProtocolVersion): Buffer {
  if (version !== 5) return ours;
  const p = normalise(packet, version);
  switch (p.type) {
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      if (p.reasonCode !== 0 && p.properties === undefined) {
        return Buffer.concat([Buffer.from([ours[0]!, 4]), ours.subarray(2), Buffer.from([0])]);
      }
      return ours;
    case 'disconnect':
    case 'auth':
      if (p.properties === undefined) return Buffer.from([ours[0]!, 2, p.reasonCode ?? 0, 0]);
      return ours;
    default:
      return ours;
  }
}

/**
 * Packets mqtt-packet 9.0.2's parser cannot parse although they are valid, with its error:
 * - AUTH with Remaining Length 0 (a bare Success, MQTT 3.15.2.1 allows leaving out the reason
 *   code and properties): `_parseAuth` reads the reason code unconditionally, gets undefined
 *   and reports "Invalid auth reason code".
 */
export function mqttPacketCannotParse(packet: Packet, version: ProtocolVersion): string | undefined {
  const p = normalise(packet, version);
  if (p.type === 'auth' && p.reasonCode === 0 && p.properties === undefined)
    return 'Invalid auth reason code';
  return undefined;
}

/**
 * Packets mqtt-packet 9.0.2's parser misreads when another packet follows in its buffer:
 * - a 5.0 DISCONNECT without properties (Remaining Length 0 or 1). `_parseDisconnect` decides
 *   whether a reason code and a property list are present from `this._list.length` (everything
 *   buffered, including the next packet) instead of the packet's Remaining Length, so it reads
 *   the next packet's first byte as the reason code or the property length. For example
 *   e0 01 04 c0 00 (DISCONNECT 0x04, PINGREQ) fails with "Cannot parse property code type", and
 *   e0 00 c0 00 with "Invalid disconnect reason code". (`_parseAuth` has the same flaw, but every
 *   AUTH short enough to hit it is a bare AUTH, which mqttPacketCannotParse already covers.)
 */
export function mqttPacketMustBeLastInBuffer(packet: Packet, version: ProtocolVersion): string | undefined {
  const p = normalise(packet, version);
  if (version === 5 && p.type === 'disconnect' && p.properties === undefined) {
    return 'DISCONNECT without properties followed by another packet';
  }
  return undefined;
}

function userPropertyLists(packet: Packet): UserProperty[][] {
  const lists: (UserProperty[] | undefined)[] = [];
  if ('properties' in packet) lists.push(packet.properties?.userProperties);
  if (packet.type === 'connect') lists.push(packet.will?.properties?.userProperties);
  return lists.filter((l): l is UserProperty[] => l !== undefined);
}

/**
 * Packets mqtt-packet 9.0.2's parser parses wrongly:
 * - a User Property name that repeats when its first value is the empty string. `_parseProperties`
 *   tests `if (result.userProperties[name])`, which is false for '', so the second value
 *   overwrites the first instead of making an array: ['k', ''], ['k', 'x'] parses as {k: 'x'}.
 */
export function mqttPacketMisparses(packet: Packet, version: ProtocolVersion): string | undefined {
  if (version !== 5) return undefined;
  for (const pairs of userPropertyLists(packet)) {
    const first = new Map<string, string>();
    const counts = new Map<string, number>();
    for (const [name, value] of pairs) {
      if (!first.has(name)) first.set(name, value);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    for (const [name, value] of first) {
      if (value === '' && counts.get(name)! > 1)
        return `repeated User Property '${name}' whose first value is empty`;
    }
  }
  return undefined;
}

/**
 * The packet with its User Properties in a form mqtt-packet's object representation can hold
 * (see userPropertiesRepresentable). Nothing else changes.
 */
export function mqttRepresentable(packet: Packet): Packet {
  const fix = (props: Properties | undefined): Properties | undefined =>
    props?.userProperties === undefined
      ? props
      : { ...props, userProperties: representableUserProperties(props.userProperties) };
  if (packet.type === 'connect') {
    const out: ConnectPacket = { ...packet };
    if (packet.properties !== undefined) out.properties = fix(packet.properties)!;
    if (packet.will?.properties !== undefined)
      out.will = { ...packet.will, properties: fix(packet.will.properties)! };
    return out;
  }
  if ('properties' in packet && packet.properties !== undefined) {
    return { ...packet, properties: fix(packet.properties) } as Packet;
  }
  return packet;
}
