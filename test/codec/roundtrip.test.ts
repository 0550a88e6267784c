import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  decodeAll,
  encode,
  MqttDecoder,
  type Packet,
  PROPERTY_DEFINITIONS,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  PublishTemplate,
  type PublishVariant,
  sharedFilterFault,
  topicFilterFault,
} from '../../src/codec/mqtt/index.js';
import {
  bytesArb,
  connectArb,
  normalise,
  PROPERTY_SPEC,
  packetArb,
  packetIdArb,
  packetTypes,
  payloadArb,
  propertiesArb,
  qosArb,
  topicFilterArb,
  topicFilterArbV5,
  topicNameArb,
  VERSIONS,
  versionedPacketArb,
} from './arbitraries.js';

/**
 * Property-based round trips through the codec: encode/decode of every valid packet, the
 * streaming decoder under arbitrary chunking, and PublishTemplate against plain encode().
 */

const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const runs = (n: number): fc.Parameters<unknown> => ({
  numRuns: n,
  ...(SEED === undefined ? {} : { seed: SEED }),
});

function decodeOne(bytes: Buffer, version: ProtocolVersion): Packet {
  const packets = decodeAll(bytes, { protocolVersion: version });
  assert.equal(packets.length, 1, `expected exactly one packet from ${bytes.toString('hex')}`);
  return packets[0]!;
}

describe('arbitraries', () => {
  test('PROPERTY_SPEC (written from MQTT 5.0 table 2-4) matches the codec PROPERTY_DEFINITIONS', () => {
    const ours = PROPERTY_SPEC.map((s) => ({
      id: s.id,
      key: s.key,
      type: s.type,
      contexts: [...s.contexts].sort(),
      repeats: [...s.repeats].sort(),
      zeroInvalid: s.nonZero === true,
    }));
    const codec = PROPERTY_DEFINITIONS.map((d) => ({
      id: d.id,
      key: d.key,
      type: d.type,
      contexts: [...d.contexts].sort(),
      repeats: [...d.repeats].sort(),
      zeroInvalid: d.invalid?.(0) === true,
    }));
    assert.deepEqual(codec, ours);
  });

  test('generated topic names carry no wildcard and generated topic filters are valid', () => {
    fc.assert(
      fc.property(topicNameArb, topicFilterArb, topicFilterArbV5, (name, filter, filterV5) => {
        assert.ok(name.length > 0 && !['+', '#', '\u0000'].some((c) => name.includes(c)), name);
        assert.equal(topicFilterFault(filter), undefined);
        assert.equal(
          filterV5.startsWith('$share/') ? sharedFilterFault(filterV5) : topicFilterFault(filterV5),
          undefined,
        );
      }),
      runs(2000),
    );
  });

  test('every packet type of every version is generated', () => {
    for (const version of VERSIONS) {
      const seen = new Set(fc.sample(packetArb(version), { numRuns: 2000, seed: 42 }).map((p) => p.type));
      assert.deepEqual([...seen].sort(), packetTypes(version).sort(), `version ${version}`);
    }
  });
});

describe('encode/decode round trip', () => {
  test('decode(encode(p)) equals normalise(p) and re-encoding the decoded packet gives identical bytes', () => {
    fc.assert(
      fc.property(versionedPacketArb, ({ version, packet }) => {
        const bytes = encode(packet, version);
        const decoded = decodeOne(bytes, version);
        assert.deepStrictEqual(decoded, normalise(packet, version));
        assert.deepStrictEqual(encode(decoded, version), bytes);
      }),
      runs(5000),
    );
  });

  test('encoding the normalised packet gives the same bytes as encoding the generated one', () => {
    fc.assert(
      fc.property(versionedPacketArb, ({ version, packet }) => {
        assert.deepStrictEqual(encode(normalise(packet, version), version), encode(packet, version));
      }),
      runs(1000),
    );
  });

  test('the Remaining Length in the fixed header equals the bytes that follow it', () => {
    fc.assert(
      fc.property(versionedPacketArb, ({ version, packet }) => {
        const bytes = encode(packet, version);
        let remaining = 0;
        let multiplier = 1;
        let i = 1;
        for (;;) {
          const b = bytes[i++]!;
          remaining += (b & 0x7f) * multiplier;
          if ((b & 0x80) === 0) break;
          multiplier *= 128;
        }
        assert.ok(i - 1 <= 4, 'Remaining Length takes at most four bytes');
        assert.equal(bytes.length - i, remaining);
      }),
      runs(1000),
    );
  });
});

/** Splits `bytes` at the given points (duplicates give empty chunks). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(start, p));
    start = p;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

function drip(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
  return chunks;
}

const streamArb = fc.oneof(
  ...VERSIONS.map((version) =>
    fc.record({
      version: fc.constant(version),
      /** When set, the stream starts with a CONNECT and the decoder learns the version from it. */
      learnVersion: fc.boolean(),
      connect: connectArb(version),
      packets: fc.array(packetArb(version), { minLength: 1, maxLength: 8 }),
      cuts: fc.array(fc.nat(), { maxLength: 12 }),
      mode: fc.constantFrom('cuts', 'cuts', 'cuts', 'drip'),
    }),
  ),
);

describe('streaming decoder', () => {
  test('a stream of packets split at random points (or fed one byte at a time) decodes to the same packets in order', () => {
    fc.assert(
      fc.property(streamArb, ({ version, learnVersion, connect, packets, cuts, mode }) => {
        const sent = learnVersion ? [connect, ...packets] : packets;
        const encoded = sent.map((p) => encode(p, version));
        const stream = Buffer.concat(encoded);
        const received: Packet[] = [];
        const decoder = new MqttDecoder(
          (p) => received.push(p),
          learnVersion ? {} : { protocolVersion: version },
        );
        let fed = 0;
        for (const chunk of mode === 'drip' ? drip(stream) : split(stream, cuts)) {
          decoder.feed(chunk);
          fed += chunk.length;
          // What is held is exactly what was fed beyond the packets already delivered.
          let delivered = 0;
          for (let i = 0; i < received.length; i++) delivered += encoded[i]!.length;
          assert.equal(decoder.bufferedBytes, fed - delivered);
        }
        assert.equal(decoder.bufferedBytes, 0);
        assert.equal(decoder.protocolVersion, version);
        assert.deepStrictEqual(
          received,
          sent.map((p) => normalise(p, version)),
        );
      }),
      runs(2000),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// PublishTemplate
// ---------------------------------------------------------------------------------------------

/** Properties that PublishTemplate takes per copy, never from the shared properties. */
const PER_COPY = new Set(['subscriptionIdentifiers', 'topicAlias', 'messageExpiryInterval']);

function variantArb(version: ProtocolVersion): fc.Arbitrary<PublishVariant> {
  // Each optional field absent half the time, so plain (cacheable) copies are common too.
  const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
    fc.option(arb, { nil: undefined, freq: 2 });
  return fc
    .record({
      qos: qosArb,
      packetId: packetIdArb,
      dup: maybe(fc.boolean()),
      retain: maybe(fc.boolean()),
      subscriptionIdentifiers: maybe(fc.array(fc.integer({ min: 1, max: 268_435_455 }), { maxLength: 3 })),
      topicAlias: maybe(fc.integer({ min: 1, max: 0xffff })),
      messageExpiryInterval: maybe(fc.integer({ min: 0, max: 0xffff_ffff })),
      omitTopic: maybe(fc.boolean()),
    })
    .map((v) => {
      const variant: PublishVariant = { qos: v.qos };
      if (v.qos > 0) variant.packetId = v.packetId;
      // MQTT-3.3.1-2: DUP only at QoS 1 and 2.
      if (v.dup !== undefined) variant.dup = v.qos > 0 && v.dup;
      if (v.retain !== undefined) variant.retain = v.retain;
      if (version === 5) {
        if (v.subscriptionIdentifiers !== undefined)
          variant.subscriptionIdentifiers = v.subscriptionIdentifiers;
        if (v.topicAlias !== undefined) variant.topicAlias = v.topicAlias;
        if (v.messageExpiryInterval !== undefined) variant.messageExpiryInterval = v.messageExpiryInterval;
        // An empty topic needs an alias the receiver holds (MQTT 3.3.2.1).
        if (v.omitTopic !== undefined && v.topicAlias !== undefined) variant.omitTopic = v.omitTopic;
      }
      return variant;
    });
}

const versionedVariantArb = fc.oneof(
  ...VERSIONS.map((version) => variantArb(version).map((variant) => ({ version, variant }))),
);

/**
 * The PUBLISH one template copy stands for, with its properties in the order the template
 * writes them: Message Expiry Interval, the shared properties, Topic Alias, Subscription Identifiers.
 */
function publishFor(
  topic: string,
  payload: Buffer,
  shared: Properties | undefined,
  variant: PublishVariant,
): PublishPacket {
  const props: Record<string, unknown> = {};
  if (variant.messageExpiryInterval !== undefined)
    props.messageExpiryInterval = variant.messageExpiryInterval;
  for (const [key, value] of Object.entries(shared ?? {})) {
    if (value !== undefined && !PER_COPY.has(key)) props[key] = value;
  }
  if (variant.topicAlias !== undefined) props.topicAlias = variant.topicAlias;
  if (variant.subscriptionIdentifiers !== undefined)
    props.subscriptionIdentifiers = [...variant.subscriptionIdentifiers];
  const packet: PublishPacket = {
    type: 'publish',
    topic: variant.omitTopic ? '' : topic,
    payload,
    qos: variant.qos,
    retain: variant.retain ?? false,
    dup: variant.dup ?? false,
    properties: props as Properties,
  };
  if (variant.qos > 0) packet.packetId = variant.packetId!;
  return packet;
}

/** Checks one template copy against encode() of the equivalent PUBLISH, the decoder, encodedLength and encodeHead. */
function checkCopy(
  template: PublishTemplate,
  topic: string,
  payload: Buffer,
  properties: Properties | undefined,
  version: ProtocolVersion,
  variant: PublishVariant,
): void {
  const expected = publishFor(topic, payload, properties, variant);
  const bytes = template.encode(version, variant);
  assert.deepStrictEqual(bytes, encode(expected, version), 'template copy equals encode()');
  assert.deepStrictEqual(decodeOne(bytes, version), normalise(expected, version));
  assert.equal(template.encodedLength(version, variant), bytes.length, 'encodedLength');
  assert.deepStrictEqual(
    Buffer.concat([template.encodeHead(version, variant), payload]),
    bytes,
    'encodeHead + payload',
  );
}

describe('PublishTemplate', () => {
  test('each copy decodes to the expected PUBLISH, equals encode() of it, and encodedLength/encodeHead agree', () => {
    fc.assert(
      fc.property(
        topicNameArb,
        payloadArb,
        propertiesArb('publish'),
        fc.array(versionedVariantArb, { minLength: 1, maxLength: 6 }),
        (topic, payload, properties, variants) => {
          const template = new PublishTemplate(topic, payload, properties);
          // Each variant twice, so cached copies are checked as well as fresh ones.
          for (const { version, variant } of [...variants, ...variants]) {
            checkCopy(template, topic, payload, properties, version, variant);
          }
        },
      ),
      runs(2500),
    );
  });

  test('copies whose property length crosses 127/128 bytes (a longer length prefix) match encode()', () => {
    fc.assert(
      fc.property(
        topicNameArb,
        bytesArb(8),
        fc.integer({ min: 100, max: 130 }),
        fc.array(variantArb(5), { minLength: 1, maxLength: 4 }),
        (topic, payload, n, variants) => {
          const properties: Properties = { contentType: 'x'.repeat(n) };
          const template = new PublishTemplate(topic, payload, properties);
          for (const variant of variants) checkCopy(template, topic, payload, properties, 5, variant);
        },
      ),
      runs(500),
    );
  });

  test('per-copy properties given to the constructor are not part of the shared encoding', () => {
    fc.assert(
      fc.property(topicNameArb, bytesArb(8), packetIdArb, (topic, payload, id) => {
        const template = new PublishTemplate(topic, payload, {
          messageExpiryInterval: 60,
          topicAlias: 3,
          contentType: 'c',
          subscriptionIdentifiers: [7],
        });
        const decoded = decodeOne(template.encode(5, { qos: 1, packetId: id }), 5) as PublishPacket;
        assert.deepStrictEqual(decoded.properties, { contentType: 'c' });
      }),
      runs(50),
    );
  });

  test('in MQTT 3.1/3.1.1 the 5.0-only variant fields other than omitTopic are ignored', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<ProtocolVersion>(3, 4),
        topicNameArb,
        bytesArb(16),
        variantArb(4),
        variantArb(5),
        (version, topic, payload, base, extra) => {
          const template = new PublishTemplate(topic, payload, { contentType: 'text/plain' });
          const withV5Fields: PublishVariant = {
            ...base,
            ...(extra.subscriptionIdentifiers
              ? { subscriptionIdentifiers: extra.subscriptionIdentifiers }
              : {}),
            ...(extra.topicAlias ? { topicAlias: extra.topicAlias } : {}),
            ...(extra.messageExpiryInterval !== undefined
              ? { messageExpiryInterval: extra.messageExpiryInterval }
              : {}),
          };
          assert.deepStrictEqual(template.encode(version, withV5Fields), template.encode(version, base));
        },
      ),
      runs(300),
    );
  });

  // Expected to fail while the codec honours omitTopic in 3.x (see the report): MQTT 3.1.1
  // has no Topic Alias, and a PUBLISH with an empty topic is invalid there (MQTT-4.7.3-1), so
  // the codec's own decoder refuses the copy. The other 5.0-only fields are ignored for 3.x.
  test('in MQTT 3.1/3.1.1 omitTopic is ignored too, so the copy still carries its topic and decodes', () => {
    for (const version of [3, 4] as const) {
      const template = new PublishTemplate('a/b', Buffer.from('x'));
      const variant: PublishVariant = { qos: 0, topicAlias: 1, omitTopic: true };
      const bytes = template.encode(version, variant);
      assert.deepStrictEqual(bytes, template.encode(version, { qos: 0 }), `version ${version}`);
      assert.equal((decodeOne(bytes, version) as PublishPacket).topic, 'a/b');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Values that do not fit their wire field. encode() promises a TypeError or RangeError "for a
// packet that cannot be encoded"; these currently produce different or corrupt bytes instead
// (reported as codec bugs; expected to fail until fixed).
// ---------------------------------------------------------------------------------------------

describe('encode() refuses values that do not fit their wire field', () => {
  const publish = (properties: Properties): PublishPacket => ({
    type: 'publish',
    topic: 't',
    payload: Buffer.from('AB'),
    qos: 0,
    retain: false,
    dup: false,
    properties,
  });

  test('a Subscription Identifier above 268,435,455 throws RangeError instead of writing a five-byte integer', () => {
    // Today: 30 0b 0001 74 05 0b 8080808001 41 - the property length says 5 but 6 bytes follow,
    // and the payload loses its last byte.
    assert.throws(() => encode(publish({ subscriptionIdentifiers: [268_435_456] }), 5), RangeError);
    assert.throws(
      () =>
        encode(
          {
            type: 'subscribe',
            packetId: 1,
            subscriptions: [{ topicFilter: 'a', qos: 0 }],
            properties: { subscriptionIdentifiers: [268_435_456] },
          },
          5,
        ),
      RangeError,
    );
    const template = new PublishTemplate('t', Buffer.from('AB'));
    assert.throws(() => template.encode(5, { qos: 0, subscriptionIdentifiers: [268_435_456] }), RangeError);
  });

  test('a UTF-8 or binary property longer than 65,535 bytes throws RangeError instead of wrapping its length prefix', () => {
    // Today: a 65,536-byte Correlation Data is written with the length prefix 00 00.
    assert.throws(() => encode(publish({ correlationData: Buffer.alloc(0x10000) }), 5), RangeError);
    assert.throws(() => encode(publish({ contentType: 'x'.repeat(0x10000) }), 5), RangeError);
    assert.throws(() => encode(publish({ userProperties: [['k', 'v'.repeat(0x10000)]] }), 5), RangeError);
    assert.throws(
      () =>
        encode(
          { type: 'puback', packetId: 1, reasonCode: 0, properties: { reasonString: 'r'.repeat(0x10000) } },
          5,
        ),
      RangeError,
    );
    assert.throws(
      () => new PublishTemplate('t', Buffer.alloc(0), { correlationData: Buffer.alloc(0x10000) }),
      RangeError,
    );
  });

  test('a reason code above 255 throws RangeError instead of being truncated to a byte', () => {
    // Today: CONNACK return code 256 is written as 00, i.e. "connection accepted".
    assert.throws(() => encode({ type: 'connack', sessionPresent: false, reasonCode: 0x100 }, 4), RangeError);
    assert.throws(() => encode({ type: 'puback', packetId: 1, reasonCode: 0x100 }, 5), RangeError);
    assert.throws(() => encode({ type: 'disconnect', reasonCode: 0x100 }, 5), RangeError);
    assert.throws(() => encode({ type: 'suback', packetId: 1, reasonCodes: [0x100] }, 4), RangeError);
  });
});
