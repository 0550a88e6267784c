import fc from 'fast-check';
import {
  type AuthPacket,
  allowedReasonCodes,
  type ConnackPacket,
  type ConnectPacket,
  type DisconnectPacket,
  type Packet,
  type PacketTypeName,
  type PingreqPacket,
  type PingrespPacket,
  type Properties,
  type PropertyContext,
  type ProtocolVersion,
  type PublishPacket,
  type QoS,
  type SubackPacket,
  type SubscribePacket,
  type Subscription,
  type UnsubackPacket,
  type UnsubscribePacket,
  type UserProperty,
  type Will,
} from '../../src/codec/mqtt/index.js';

/**
 * fast-check arbitraries for VALID MQTT packets of every type and protocol version, as the
 * codec's `Packet` types describe them, plus `normalise`, which turns a generated packet into
 * exactly the object the decoder returns for its encoding (so round trips can use
 * deepStrictEqual). Validity follows the specification, written out here independently of
 * the codec's own tables (`PROPERTY_SPEC` is checked against PROPERTY_DEFINITIONS by a test).
 */

export const VERSIONS: readonly ProtocolVersion[] = [3, 4, 5];

export type AckType = 'puback' | 'pubrec' | 'pubrel' | 'pubcomp';
export const ACK_TYPES: readonly AckType[] = ['puback', 'pubrec', 'pubrel', 'pubcomp'];

/** Every packet type that exists in `version` (AUTH is 5.0 only). */
export function packetTypes(version: ProtocolVersion): PacketTypeName[] {
  const all: PacketTypeName[] = [
    'connect',
    'connack',
    'publish',
    'puback',
    'pubrec',
    'pubrel',
    'pubcomp',
    'subscribe',
    'suback',
    'unsubscribe',
    'unsuback',
    'pingreq',
    'pingresp',
    'disconnect',
    'auth',
  ];
  return version === 5 ? all : all.filter((t) => t !== 'auth');
}

// ---------------------------------------------------------------------------------------------
// MQTT 5 properties (MQTT 5.0 section 2.2.2.2, table 2-4)
// ---------------------------------------------------------------------------------------------

export type PropertyValueType = 'byte' | 'flag' | 'uint16' | 'uint32' | 'varint' | 'utf8' | 'binary' | 'pair';

export interface PropertySpec {
  id: number;
  key: keyof Properties;
  type: PropertyValueType;
  /** Where the property may appear. */
  contexts: readonly PropertyContext[];
  /** Where it may appear more than once. */
  repeats: readonly PropertyContext[];
  /** The value 0 is a Protocol Error. */
  nonZero?: boolean;
}

const ACK_CONTEXTS: PropertyContext[] = ['puback', 'pubrec', 'pubrel', 'pubcomp'];
const ALL_CONTEXTS: PropertyContext[] = [
  'connect',
  'connack',
  'publish',
  'will',
  ...ACK_CONTEXTS,
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'disconnect',
  'auth',
];

function spec(
  id: number,
  key: keyof Properties,
  type: PropertyValueType,
  contexts: PropertyContext[],
  extra: { repeats?: PropertyContext[]; nonZero?: boolean } = {},
): PropertySpec {
  return {
    id,
    key,
    type,
    contexts,
    repeats: extra.repeats ?? [],
    ...(extra.nonZero ? { nonZero: true } : {}),
  };
}

/** Table 2-4 of MQTT 5.0, with the value restrictions of sections 3.1.2.11, 3.2.2.3 and 3.3.2.3. */
export const PROPERTY_SPEC: readonly PropertySpec[] = [
  spec(0x01, 'payloadFormatIndicator', 'flag', ['publish', 'will']),
  spec(0x02, 'messageExpiryInterval', 'uint32', ['publish', 'will']),
  spec(0x03, 'contentType', 'utf8', ['publish', 'will']),
  spec(0x08, 'responseTopic', 'utf8', ['publish', 'will']),
  spec(0x09, 'correlationData', 'binary', ['publish', 'will']),
  spec(0x0b, 'subscriptionIdentifiers', 'varint', ['publish', 'subscribe'], {
    repeats: ['publish'],
    nonZero: true,
  }),
  spec(0x11, 'sessionExpiryInterval', 'uint32', ['connect', 'connack', 'disconnect']),
  spec(0x12, 'assignedClientIdentifier', 'utf8', ['connack']),
  spec(0x13, 'serverKeepAlive', 'uint16', ['connack']),
  spec(0x15, 'authenticationMethod', 'utf8', ['connect', 'connack', 'auth']),
  spec(0x16, 'authenticationData', 'binary', ['connect', 'connack', 'auth']),
  spec(0x17, 'requestProblemInformation', 'flag', ['connect']),
  spec(0x18, 'willDelayInterval', 'uint32', ['will']),
  spec(0x19, 'requestResponseInformation', 'flag', ['connect']),
  spec(0x1a, 'responseInformation', 'utf8', ['connack']),
  spec(0x1c, 'serverReference', 'utf8', ['connack', 'disconnect']),
  spec(0x1f, 'reasonString', 'utf8', [
    'connack',
    ...ACK_CONTEXTS,
    'suback',
    'unsuback',
    'disconnect',
    'auth',
  ]),
  spec(0x21, 'receiveMaximum', 'uint16', ['connect', 'connack'], { nonZero: true }),
  spec(0x22, 'topicAliasMaximum', 'uint16', ['connect', 'connack']),
  spec(0x23, 'topicAlias', 'uint16', ['publish'], { nonZero: true }),
  spec(0x24, 'maximumQoS', 'byte', ['connack']),
  spec(0x25, 'retainAvailable', 'flag', ['connack']),
  spec(0x26, 'userProperties', 'pair', ALL_CONTEXTS, { repeats: ALL_CONTEXTS }),
  spec(0x27, 'maximumPacketSize', 'uint32', ['connect', 'connack'], { nonZero: true }),
  spec(0x28, 'wildcardSubscriptionAvailable', 'flag', ['connack']),
  spec(0x29, 'subscriptionIdentifierAvailable', 'flag', ['connack']),
  spec(0x2a, 'sharedSubscriptionAvailable', 'flag', ['connack']),
];

// ---------------------------------------------------------------------------------------------
// Strings, topics and binary data
// ---------------------------------------------------------------------------------------------

const fromCodePoint = (c: number): string => String.fromCodePoint(c);

/** Printable ASCII, the common case. */
const printableAscii = fc.integer({ min: 0x20, max: 0x7e }).map(fromCodePoint);

/**
 * Any Unicode scalar value except U+0000 (MQTT-1.5.4-2) and the surrogates (which are not
 * characters and cannot be encoded as UTF-8, MQTT-1.5.4-1), across every UTF-8 length, plus
 * a few awkward ones: U+FEFF (a BOM, which must not be stripped, MQTT-1.5.4-3), U+FFFF, U+FFFD,
 * C0/C1 controls and U+007F.
 */
const anyChar = fc
  .oneof(
    fc.integer({ min: 0x01, max: 0x7f }),
    fc.integer({ min: 0x80, max: 0x7ff }),
    fc.integer({ min: 0x800, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff),
    fc.integer({ min: 0x10000, max: 0x10ffff }),
    fc.constantFrom(0xfeff, 0xffff, 0xfffd, 0x01, 0x1f, 0x7f, 0x80, 0x9f, 0x10ffff),
  )
  .map(fromCodePoint);

const stringUnit = fc.oneof({ arbitrary: printableAscii, weight: 6 }, { arbitrary: anyChar, weight: 2 });

/** A valid MQTT UTF-8 string (MQTT 1.5.4), possibly empty. */
export function utf8StringArb(maxLength = 16): fc.Arbitrary<string> {
  return fc.string({ unit: stringUnit, maxLength });
}

const WILDCARDS_AND_SLASH = new Set(['+', '#', '/']);
const levelUnit = stringUnit.filter((c) => !WILDCARDS_AND_SLASH.has(c));

/** One topic level: any characters but `/`, `+` and `#`; may be empty ("a//b" has an empty level). */
const topicLevelArb = fc.string({ unit: levelUnit, maxLength: 8 });

/** A topic name (MQTT 4.7): at least one character, no wildcards. */
export const topicNameArb: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc.constantFrom('a', '/', 'a/b', '$SYS/broker/uptime', 'sport/tennis/player1', '//'),
    weight: 1,
  },
  {
    arbitrary: fc
      .array(topicLevelArb, { minLength: 1, maxLength: 5 })
      .map((levels) => levels.join('/'))
      .filter((t) => t.length > 0),
    weight: 5,
  },
);

/** A topic filter (MQTT 4.7.1): `+` only as a whole level, `#` only as the whole last level. */
export const topicFilterArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom('#', '+', '+/+', '/#', 'a/+/b/#', '$SYS/#', 'a//+'), weight: 1 },
  {
    arbitrary: fc
      .tuple(
        fc.array(
          fc.oneof({ arbitrary: topicLevelArb, weight: 4 }, { arbitrary: fc.constant('+'), weight: 1 }),
          {
            maxLength: 5,
          },
        ),
        fc.boolean(),
      )
      .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
      .filter((f) => f.length > 0),
    weight: 5,
  },
);

/** A share name (MQTT 4.8.2): at least one character, none of `/`, `+`, `#`. */
const shareNameArb = fc.string({ unit: levelUnit, minLength: 1, maxLength: 6 });

/** A topic filter as 5.0 allows it: plain, or a shared subscription `$share/{name}/{filter}`. */
export const topicFilterArbV5: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: topicFilterArb, weight: 5 },
  { arbitrary: fc.tuple(shareNameArb, topicFilterArb).map(([name, f]) => `$share/${name}/${f}`), weight: 1 },
);

export function topicFilterArbFor(version: ProtocolVersion): fc.Arbitrary<string> {
  return version === 5 ? topicFilterArbV5 : topicFilterArb;
}

/** Binary data; mostly short, sometimes long enough for a multi-byte Remaining Length. */
export function bytesArb(maxLength = 24): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
}

/**
 * A PUBLISH or Will payload: mostly small, sometimes past 127 bytes (two-byte Remaining
 * Length) and rarely past 16383 (three bytes).
 */
export const payloadArb: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: bytesArb(48), weight: 20 },
  { arbitrary: fc.integer({ min: 100, max: 400 }).map((n) => Buffer.alloc(n, n & 0xff)), weight: 3 },
  { arbitrary: fc.integer({ min: 16_300, max: 16_500 }).map((n) => Buffer.alloc(n, 0xa5)), weight: 1 },
);

export const packetIdArb = fc.integer({ min: 1, max: 0xffff });
export const qosArb: fc.Arbitrary<QoS> = fc.constantFrom(0, 1, 2);

// ---------------------------------------------------------------------------------------------
// Property lists
// ---------------------------------------------------------------------------------------------

/**
 * User Properties. Mostly grouped by name (each name's values together, the only order the
 * object form of other libraries can express), sometimes with a few names interleaved.
 */
export const userPropertiesArb: fc.Arbitrary<UserProperty[]> = fc.oneof(
  {
    arbitrary: fc
      .array(fc.tuple(utf8StringArb(8), fc.array(utf8StringArb(8), { minLength: 1, maxLength: 3 })), {
        minLength: 1,
        maxLength: 3,
      })
      .map((groups) => groups.flatMap(([name, values]) => values.map((v): UserProperty => [name, v]))),
    weight: 4,
  },
  {
    arbitrary: fc.array(
      fc.tuple(fc.constantFrom('a', 'b', 'c'), utf8StringArb(4)).map(([n, v]): UserProperty => [n, v]),
      { minLength: 1, maxLength: 6 },
    ),
    weight: 1,
  },
);

const SUBSCRIPTION_IDENTIFIER_MAX = 268_435_455;

function propertyValueArb(s: PropertySpec, context: PropertyContext): fc.Arbitrary<unknown> {
  const min = s.nonZero ? 1 : 0;
  switch (s.type) {
    case 'flag':
      return fc.boolean();
    case 'byte':
      // Maximum QoS is the only Byte property that is not a flag: 0 or 1 (MQTT 3.2.2.3.4).
      return fc.constantFrom(0, 1);
    case 'uint16':
      return fc.integer({ min, max: 0xffff });
    case 'uint32':
      return fc.integer({ min, max: 0xffff_ffff });
    case 'varint':
      // Subscription Identifiers: 1..268,435,455; one per SUBSCRIBE, several in a PUBLISH.
      return fc.array(fc.integer({ min: 1, max: SUBSCRIPTION_IDENTIFIER_MAX }), {
        minLength: 1,
        maxLength: s.repeats.includes(context) ? 4 : 1,
      });
    case 'utf8':
      return utf8StringArb(12);
    case 'binary':
      return bytesArb(16);
    case 'pair':
      return userPropertiesArb;
  }
}

/** The properties `context` may carry, per PROPERTY_SPEC. */
export function propertySpecsFor(context: PropertyContext): PropertySpec[] {
  return PROPERTY_SPEC.filter((s) => s.contexts.includes(context));
}

/** A non-empty property list for `context`, its keys in random order (the encoder keeps that order on the wire). */
function nonEmptyPropertiesArb(context: PropertyContext): fc.Arbitrary<Properties> {
  return fc.shuffledSubarray(propertySpecsFor(context), { minLength: 1 }).chain((chosen) =>
    fc.tuple(...chosen.map((s) => propertyValueArb(s, context))).map((values) => {
      const props: Record<string, unknown> = {};
      chosen.forEach((s, i) => {
        props[s.key] = values[i];
      });
      const result = props as Properties;
      // MQTT 3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error.
      if (context === 'connect' && result.authenticationMethod === undefined)
        delete result.authenticationData;
      return result;
    }),
  );
}

/**
 * A 5.0 property list for `context`: absent, empty (`{}`, encoded as a zero length) or
 * a random non-empty selection of the properties allowed there.
 */
export function propertiesArb(context: PropertyContext): fc.Arbitrary<Properties | undefined> {
  return fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 3 },
    { arbitrary: fc.constant({}), weight: 1 },
    { arbitrary: nonEmptyPropertiesArb(context), weight: 6 },
  );
}

function propsFor(version: ProtocolVersion, context: PropertyContext): fc.Arbitrary<Properties | undefined> {
  return version === 5 ? propertiesArb(context) : fc.constant(undefined);
}

/** Builds an object from entries, leaving out undefined values (so optional keys are absent, not undefined). */
function compact<T>(obj: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = v;
  return out as T;
}

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.option(arb, { nil: undefined, freq: 2 });

function reasonCodes(type: keyof typeof allowedReasonCodes): number[] {
  return [...allowedReasonCodes[type]!];
}

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

function willArb(version: ProtocolVersion): fc.Arbitrary<Will> {
  return fc
    .record({
      topic: topicNameArb,
      payload: fc.oneof({ arbitrary: bytesArb(32), weight: 5 }, { arbitrary: payloadArb, weight: 1 }),
      qos: qosArb,
      retain: fc.boolean(),
      properties: propsFor(version, 'will'),
    })
    .map((w) => compact<Will>(w));
}

export function connectArb(version: ProtocolVersion): fc.Arbitrary<ConnectPacket> {
  return fc
    .record({
      clean: fc.boolean(),
      keepAlive: fc.integer({ min: 0, max: 0xffff }),
      clientId: utf8StringArb(23),
      will: optional(willArb(version)),
      username: optional(utf8StringArb(12)),
      password: optional(bytesArb(16)),
      properties: propsFor(version, 'connect'),
    })
    .map((c) => {
      // 3.1.1 MQTT-3.1.2-22: a password needs a user name (5.0 lifted this).
      const password = version < 5 && c.username === undefined ? undefined : c.password;
      return compact<ConnectPacket>({ type: 'connect', protocolVersion: version, ...c, password });
    });
}

export function connackArb(version: ProtocolVersion): fc.Arbitrary<ConnackPacket> {
  const codes = version === 5 ? reasonCodes('connack') : [0, 1, 2, 3, 4, 5];
  return fc
    .record({
      // 3.1 has no Session Present flag; MQTT-3.2.2-6: it is 0 when the connection is refused.
      sessionPresent: version === 3 ? fc.constant(false) : fc.boolean(),
      reasonCode: fc.oneof(fc.constant(0), fc.constantFrom(...codes)),
      properties: propsFor(version, 'connack'),
    })
    .map((c) =>
      compact<ConnackPacket>({
        type: 'connack',
        ...c,
        sessionPresent: c.sessionPresent && c.reasonCode === 0,
      }),
    );
}

export function publishArb(version: ProtocolVersion): fc.Arbitrary<PublishPacket> {
  return fc
    .record({
      topic: topicNameArb,
      payload: payloadArb,
      qos: qosArb,
      retain: fc.boolean(),
      dup: fc.boolean(),
      packetId: packetIdArb,
      properties: propsFor(version, 'publish'),
      emptyTopic: fc.boolean(),
    })
    .map(({ emptyTopic, ...p }) =>
      compact<PublishPacket>({
        type: 'publish',
        ...p,
        // 5.0 MQTT 3.3.2.1: the topic name may be empty when a Topic Alias is present.
        topic: emptyTopic && p.properties?.topicAlias !== undefined ? '' : p.topic,
        // MQTT-3.3.1-2: DUP is 0 at QoS 0; there is no packet identifier at QoS 0.
        dup: p.qos > 0 && p.dup,
        packetId: p.qos > 0 ? p.packetId : undefined,
      }),
    );
}

export function ackArb<T extends AckType>(type: T, version: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc
    .record({
      packetId: packetIdArb,
      reasonCode: version === 5 ? optional(fc.constantFrom(...reasonCodes(type))) : fc.constant(undefined),
      properties: propsFor(version, type),
    })
    .map((a) => compact<Packet>({ type, ...a }));
}

function subscriptionArb(version: ProtocolVersion): fc.Arbitrary<Subscription> {
  if (version < 5) return fc.record({ topicFilter: topicFilterArb, qos: qosArb });
  return fc
    .record(
      {
        topicFilter: topicFilterArbV5,
        qos: qosArb,
        noLocal: fc.boolean(),
        retainAsPublished: fc.boolean(),
        retainHandling: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
      },
      { requiredKeys: ['topicFilter', 'qos'] },
    )
    .map((s) =>
      // MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error.
      s.topicFilter.startsWith('$share/') && s.noLocal ? { ...s, noLocal: false } : s,
    );
}

export function subscribeArb(version: ProtocolVersion): fc.Arbitrary<SubscribePacket> {
  return fc
    .record({
      packetId: packetIdArb,
      subscriptions: fc.array(subscriptionArb(version), { minLength: 1, maxLength: 4 }),
      properties: propsFor(version, 'subscribe'),
    })
    .map((s) => compact<SubscribePacket>({ type: 'subscribe', ...s }));
}

export function subackArb(version: ProtocolVersion): fc.Arbitrary<SubackPacket> {
  const codes = version === 5 ? reasonCodes('suback') : [0, 1, 2, 0x80];
  return fc
    .record({
      packetId: packetIdArb,
      reasonCodes: fc.array(fc.constantFrom(...codes), { minLength: 1, maxLength: 5 }),
      properties: propsFor(version, 'suback'),
    })
    .map((s) => compact<SubackPacket>({ type: 'suback', ...s }));
}

export function unsubscribeArb(version: ProtocolVersion): fc.Arbitrary<UnsubscribePacket> {
  return fc
    .record({
      packetId: packetIdArb,
      topicFilters: fc.array(topicFilterArbFor(version), { minLength: 1, maxLength: 4 }),
      properties: propsFor(version, 'unsubscribe'),
    })
    .map((u) => compact<UnsubscribePacket>({ type: 'unsubscribe', ...u }));
}

export function unsubackArb(version: ProtocolVersion): fc.Arbitrary<UnsubackPacket> {
  return fc
    .record({
      packetId: packetIdArb,
      // MQTT 3.x UNSUBACK has no payload; 5.0 has one reason code per topic filter.
      reasonCodes:
        version === 5
          ? fc.array(fc.constantFrom(...reasonCodes('unsuback')), { minLength: 1, maxLength: 5 })
          : fc.constant([]),
      properties: propsFor(version, 'unsuback'),
    })
    .map((u) => compact<UnsubackPacket>({ type: 'unsuback', ...u }));
}

export function disconnectArb(version: ProtocolVersion): fc.Arbitrary<DisconnectPacket> {
  if (version < 5) return fc.constant<DisconnectPacket>({ type: 'disconnect' });
  return fc
    .record({
      reasonCode: optional(fc.constantFrom(...reasonCodes('disconnect'))),
      properties: propertiesArb('disconnect'),
    })
    .map((d) => compact<DisconnectPacket>({ type: 'disconnect', ...d }));
}

/** AUTH (5.0 only): any AUTH but a bare Success carries an Authentication Method (MQTT 3.15.2.2.2). */
export function authArb(): fc.Arbitrary<AuthPacket> {
  return fc
    .record({
      reasonCode: optional(fc.constantFrom(...reasonCodes('auth'))),
      properties: propertiesArb('auth'),
      method: utf8StringArb(12),
      methodFirst: fc.boolean(),
    })
    .map(({ reasonCode, properties, method, methodFirst }) => {
      const bare = (reasonCode ?? 0) === 0 && !hasProperties(properties);
      if (!bare && properties?.authenticationMethod === undefined) {
        properties = methodFirst
          ? { authenticationMethod: method, ...properties }
          : { ...properties, authenticationMethod: method };
      }
      return compact<AuthPacket>({ type: 'auth', reasonCode, properties });
    });
}

export function packetArbOfType(type: PacketTypeName, version: ProtocolVersion): fc.Arbitrary<Packet> {
  switch (type) {
    case 'connect':
      return connectArb(version);
    case 'connack':
      return connackArb(version);
    case 'publish':
      return publishArb(version);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return ackArb(type, version);
    case 'subscribe':
      return subscribeArb(version);
    case 'suback':
      return subackArb(version);
    case 'unsubscribe':
      return unsubscribeArb(version);
    case 'unsuback':
      return unsubackArb(version);
    case 'pingreq':
      return fc.constant<PingreqPacket>({ type: 'pingreq' });
    case 'pingresp':
      return fc.constant<PingrespPacket>({ type: 'pingresp' });
    case 'disconnect':
      return disconnectArb(version);
    case 'auth':
      if (version !== 5) throw new Error('AUTH exists only in MQTT 5.0');
      return authArb();
  }
}

/** Any valid packet of `version`, PUBLISH weighted up since it has the most variety. */
export function packetArb(version: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc.oneof(
    ...packetTypes(version).map((type) => ({
      arbitrary: packetArbOfType(type, version),
      weight: type === 'publish' ? 4 : type === 'pingreq' || type === 'pingresp' ? 1 : 2,
    })),
  );
}

export interface VersionedPacket {
  version: ProtocolVersion;
  packet: Packet;
}

export const versionedPacketArb: fc.Arbitrary<VersionedPacket> = fc.oneof(
  ...VERSIONS.map((version) => packetArb(version).map((packet): VersionedPacket => ({ version, packet }))),
);

// ---------------------------------------------------------------------------------------------
// Normalisation to the decoder's shape
// ---------------------------------------------------------------------------------------------

export function hasProperties(props: Properties | undefined): boolean {
  return normaliseProperties(props) !== undefined;
}

/**
 * A property list as the decoder returns it: without undefined values or empty lists, and
 * undefined when nothing is left (an empty list decodes to undefined). Keys keep their order.
 */
export function normaliseProperties(props: Properties | undefined): Properties | undefined {
  if (props === undefined) return undefined;
  const out: Record<string, unknown> = {};
  let any = false;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    out[key] = Array.isArray(value) ? value.map((v) => (Array.isArray(v) ? [...v] : v)) : value;
    any = true;
  }
  return any ? (out as Properties) : undefined;
}

/**
 * The packet the decoder produces from `encode(packet, version)`: what the version cannot
 * carry is dropped, and the decoder's defaults are filled in (packetId 0 at QoS 0, reason
 * code 0 when absent, 5.0 subscription options false/0, `properties` as an explicit key on
 * the packets whose parser always sets it, empty UNSUBACK reason codes in 3.x).
 */
export function normalise(packet: Packet, version: ProtocolVersion): Packet {
  const v5 = version === 5;
  const props = (p: Properties | undefined): Properties | undefined =>
    v5 ? normaliseProperties(p) : undefined;
  switch (packet.type) {
    case 'connect': {
      const out: ConnectPacket = {
        type: 'connect',
        protocolVersion: packet.protocolVersion,
        clean: packet.clean,
        keepAlive: packet.keepAlive,
        clientId: packet.clientId,
      };
      const connectV5 = packet.protocolVersion === 5;
      if (packet.will) {
        const will: Will = {
          topic: packet.will.topic,
          payload: packet.will.payload,
          qos: packet.will.qos,
          retain: packet.will.retain,
        };
        const willProps = connectV5 ? normaliseProperties(packet.will.properties) : undefined;
        if (willProps) will.properties = willProps;
        out.will = will;
      }
      if (packet.username !== undefined) out.username = packet.username;
      if (packet.password !== undefined) out.password = packet.password;
      const connectProps = connectV5 ? normaliseProperties(packet.properties) : undefined;
      if (connectProps) out.properties = connectProps;
      return out;
    }
    case 'connack':
      return {
        type: 'connack',
        sessionPresent: version > 3 && packet.sessionPresent,
        reasonCode: packet.reasonCode,
        properties: props(packet.properties),
      };
    case 'publish':
      return {
        type: 'publish',
        topic: packet.topic,
        payload: packet.payload,
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup,
        packetId: packet.qos > 0 ? packet.packetId! : 0,
        properties: props(packet.properties),
      };
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return {
        type: packet.type,
        packetId: packet.packetId,
        reasonCode: v5 ? (packet.reasonCode ?? 0) : 0,
        properties: props(packet.properties),
      } as Packet;
    case 'subscribe':
      return {
        type: 'subscribe',
        packetId: packet.packetId,
        subscriptions: packet.subscriptions.map((s) =>
          v5
            ? {
                topicFilter: s.topicFilter,
                qos: s.qos,
                noLocal: s.noLocal ?? false,
                retainAsPublished: s.retainAsPublished ?? false,
                retainHandling: s.retainHandling ?? 0,
              }
            : { topicFilter: s.topicFilter, qos: s.qos },
        ),
        properties: props(packet.properties),
      };
    case 'suback':
      return {
        type: 'suback',
        packetId: packet.packetId,
        reasonCodes: [...packet.reasonCodes],
        properties: props(packet.properties),
      };
    case 'unsubscribe':
      return {
        type: 'unsubscribe',
        packetId: packet.packetId,
        topicFilters: [...packet.topicFilters],
        properties: props(packet.properties),
      };
    case 'unsuback':
      return {
        type: 'unsuback',
        packetId: packet.packetId,
        reasonCodes: v5 ? [...packet.reasonCodes] : [],
        properties: props(packet.properties),
      };
    case 'pingreq':
    case 'pingresp':
      return { type: packet.type };
    case 'disconnect':
      return v5
        ? { type: 'disconnect', reasonCode: packet.reasonCode ?? 0, properties: props(packet.properties) }
        : { type: 'disconnect' };
    case 'auth':
      return { type: 'auth', reasonCode: packet.reasonCode ?? 0, properties: props(packet.properties) };
  }
}
