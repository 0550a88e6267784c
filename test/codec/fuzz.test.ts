import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeAll,
  encode,
  MqttCodecError,
  MqttDecoder,
  type Packet,
  type ProtocolVersion,
} from '../../src/codec/mqtt/index.js';
import { seeded, seedFrom } from '../helpers/random.js';

/**
 * Fuzzing the decoder with random and mutated byte streams. Every input must either decode
 * or raise an MqttCodecError: nothing else may throw, nothing may hang, held memory stays
 * below what was fed and below the maximum packet size, and whatever decodes re-encodes to
 * bytes that decode to the same packet. The seed is printed so a failure can be replayed
 * with FUZZ_SEED.
 */

const seed = seedFrom('FUZZ_SEED');
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 20_000);

const { random, int, pick, bytes, mutate } = seeded(seed);

function seedPackets(version: ProtocolVersion): Packet[] {
  const v5 = version === 5;
  const props = v5 ? { userProperties: [['k', 'v'] as [string, string]], reasonString: 'r' } : undefined;
  const packets: Packet[] = [
    {
      type: 'connect',
      protocolVersion: version,
      clean: true,
      keepAlive: 30,
      clientId: 'fuzz',
      username: 'u',
      password: Buffer.from('p'),
      will: {
        topic: 'w/t',
        payload: Buffer.from('bye'),
        qos: 1,
        retain: false,
        ...(v5 ? { properties: { willDelayInterval: 5 } } : {}),
      },
      ...(v5 ? { properties: { sessionExpiryInterval: 60, receiveMaximum: 10 } } : {}),
    },
    {
      type: 'connack',
      sessionPresent: false,
      reasonCode: 0,
      ...(v5 ? { properties: { maximumQoS: 1 as const } } : {}),
    },
    {
      type: 'publish',
      topic: 'a/b/c',
      payload: Buffer.from('payload'),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 9,
      ...(v5
        ? {
            properties: { contentType: 'text/plain', subscriptionIdentifiers: [3], messageExpiryInterval: 9 },
          }
        : {}),
    },
    { type: 'publish', topic: 'x', payload: Buffer.alloc(40, 1), qos: 0, retain: false, dup: false },
    { type: 'puback', packetId: 1, reasonCode: v5 ? 0x10 : 0, properties: props },
    { type: 'pubrec', packetId: 2 },
    { type: 'pubrel', packetId: 3, reasonCode: v5 ? 0x92 : 0 },
    { type: 'pubcomp', packetId: 4, properties: props },
    {
      type: 'subscribe',
      packetId: 5,
      subscriptions: [
        { topicFilter: 'a/+/#', qos: 2, ...(v5 ? { noLocal: true, retainHandling: 1 as const } : {}) },
        { topicFilter: v5 ? '$share/g/s' : 's', qos: 0 },
      ],
      ...(v5 ? { properties: { subscriptionIdentifiers: [7] } } : {}),
    },
    { type: 'suback', packetId: 5, reasonCodes: [0, 1, 0x80], properties: props },
    { type: 'unsubscribe', packetId: 6, topicFilters: ['a/+', '#'] },
    { type: 'unsuback', packetId: 6, reasonCodes: v5 ? [0, 0x11] : [], properties: props },
    { type: 'pingreq' },
    { type: 'pingresp' },
    {
      type: 'disconnect',
      reasonCode: v5 ? 0x04 : 0,
      properties: v5 ? { sessionExpiryInterval: 0 } : undefined,
    },
  ];
  if (v5)
    packets.push({
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'M', authenticationData: Buffer.from([1]) },
    });
  return packets;
}

const corpus = new Map<ProtocolVersion, Buffer[]>(
  ([3, 4, 5] as const).map((v) => [v, seedPackets(v).map((p) => encode(p, v))]),
);

function randomStream(version: ProtocolVersion): Buffer {
  if (random() < 0.15) return bytes(int(64));
  const items = corpus.get(version)!;
  const parts = Array.from({ length: 1 + int(4) }, () => pick(items));
  if (random() < 0.5 && version !== 3) parts.unshift(items[0]!);
  return mutate(Buffer.concat(parts));
}

/** Feeds `stream` in random chunks; returns the decoded packets or the codec error. */
function feedChunked(stream: Buffer, decoder: MqttDecoder): MqttCodecError | undefined {
  let pos = 0;
  try {
    while (pos < stream.length) {
      const size = random() < 0.3 ? 1 : 1 + int(stream.length);
      decoder.feed(stream.subarray(pos, pos + size));
      pos += size;
      assert.ok(decoder.bufferedBytes <= pos, 'decoder holds more than it was fed');
      assert.ok(decoder.bufferedBytes <= decoder.maxPacketSize, 'decoder holds more than one maximum packet');
    }
  } catch (error) {
    if (error instanceof MqttCodecError) return error;
    throw new Error(`seed ${seed}: non-codec error for ${stream.toString('hex')}: ${error}`);
  }
  return undefined;
}

describe(`decoder fuzz (seed ${seed}, replay with FUZZ_SEED)`, () => {
  test(`${ITERATIONS} random and mutated streams: decode or a typed error, never anything else`, () => {
    let decodedPackets = 0;
    let codecErrors = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const version = pick([3, 4, 5] as const);
      const stream = randomStream(version);
      const known = random() < 0.5;
      const packets: Packet[] = [];
      const decoder = new MqttDecoder((p) => packets.push(p), {
        ...(known ? { protocolVersion: version } : {}),
        ...(random() < 0.3 ? { maxPacketSize: 2 + int(64) } : {}),
      });
      if (feedChunked(stream, decoder)) codecErrors++;
      for (const packet of packets) {
        decodedPackets++;
        const v = decoder.protocolVersion!;
        // Whatever the decoder accepts, the encoder can write, and it reads back the same.
        const again = decodeAll(encode(packet, v), { protocolVersion: v });
        assert.deepStrictEqual(
          again,
          [packet],
          `seed ${seed}: re-encoding changed ${JSON.stringify(packet)}`,
        );
      }
    }
    // The mutations must exercise both outcomes, or the fuzzer is not testing anything.
    assert.ok(decodedPackets > ITERATIONS / 4, `only ${decodedPackets} packets decoded`);
    assert.ok(codecErrors > ITERATIONS / 4, `only ${codecErrors} codec errors`);
  });

  test('a header declaring a huge packet holds only what was sent', () => {
    const decoder = new MqttDecoder(() => {}, { protocolVersion: 4 });
    const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]);
    decoder.feed(header);
    for (let i = 0; i < 100; i++) decoder.feed(Buffer.alloc(1000));
    assert.equal(decoder.bufferedBytes, header.length + 100_000);
  });
});
