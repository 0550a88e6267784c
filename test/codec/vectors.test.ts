import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type CodecErrorCode,
  decodeAll,
  encode,
  MqttCodecError,
  MqttDecoder,
  type Packet,
  type ProtocolVersion,
  ReasonCode,
} from '../../src/codec/mqtt/index.js';
import { bytes } from '../helpers/bytes.js';

/** A valid packet: its annotated bytes and the packet they mean, checked both ways. */
interface Vector {
  name: string;
  version: ProtocolVersion;
  wire: string;
  packet: Packet;
  /** When the bytes are valid but not the encoder's canonical (shortest) form. */
  decodeOnly?: boolean;
}

const vectors: Vector[] = [
  {
    name: '3.1.1 CONNECT with zero-length client id, clean session',
    version: 4,
    wire: `10 0c            # CONNECT, remaining length 12
           0004 "MQTT"      # protocol name
           04               # protocol level 4 (3.1.1)
           02               # flags: clean session
           003c             # keep alive 60
           0000             # client id: zero length (MQTT-3.1.3-6)`,
    packet: { type: 'connect', protocolVersion: 4, clean: true, keepAlive: 60, clientId: '' },
  },
  {
    name: '3.1 CONNECT says MQIsdp, level 3',
    version: 3,
    wire: `10 11 0006 "MQIsdp" 03 02 000a 0003 "abc"`,
    packet: { type: 'connect', protocolVersion: 3, clean: true, keepAlive: 10, clientId: 'abc' },
  },
  {
    name: '3.1.1 CONNECT with will, user name and password',
    version: 4,
    wire: `10 21
           0004 "MQTT" 04
           ee               # user, password, will retain, will QoS 1, will, clean
           0000             # keep alive 0: disabled
           0001 "c"
           0003 "w/t"       # will topic
           0003 "bye"       # will payload
           0004 "user"
           0002 0001        # password: binary, may hold NUL bytes`,
    packet: {
      type: 'connect',
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: 'c',
      will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 1, retain: true },
      username: 'user',
      password: Buffer.from([0, 1]),
    },
  },
  {
    name: '5.0 CONNECT with properties, will properties and password without user name',
    version: 5,
    wire: `10 27
           0004 "MQTT" 05
           4c               # password, will QoS 1, will (no user name: allowed in 5.0)
           001e
           08               # properties: 8 bytes
             11 00000078    #   Session Expiry Interval 120
             21 0010        #   Receive Maximum 16
           0002 "id"
           05 18 0000000a   # will properties: Will Delay Interval 10
           0001 "w"
           0000             # empty will payload
           0003 "pwd"`,
    packet: {
      type: 'connect',
      protocolVersion: 5,
      clean: false,
      keepAlive: 30,
      clientId: 'id',
      will: {
        topic: 'w',
        payload: Buffer.alloc(0),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 10 },
      },
      password: Buffer.from('pwd'),
      properties: { sessionExpiryInterval: 120, receiveMaximum: 16 },
    },
  },
  {
    name: '3.1.1 CONNACK session present',
    version: 4,
    wire: `20 02 01 00`,
    packet: { type: 'connack', sessionPresent: true, reasonCode: 0, properties: undefined },
  },
  {
    name: '5.0 CONNACK advertising server limits',
    version: 5,
    wire: `20 12 00 00
           0f                # properties: 15 bytes
             24 01           #   Maximum QoS 1
             25 00           #   Retain Available 0
             27 00100000     #   Maximum Packet Size 1 MiB
             12 0001 "x"     #   Assigned Client Identifier
             2a 00           #   Shared Subscription Available 0`,
    packet: {
      type: 'connack',
      sessionPresent: false,
      reasonCode: 0,
      properties: {
        maximumQoS: 1,
        retainAvailable: false,
        maximumPacketSize: 0x100000,
        assignedClientIdentifier: 'x',
        sharedSubscriptionAvailable: false,
      },
    },
  },
  {
    name: '5.0 CONNACK refusing with 0x86',
    version: 5,
    wire: `20 03 00 86 00`,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 0x86, properties: undefined },
  },
  {
    name: '3.1.1 PUBLISH QoS 0 with an empty payload',
    version: 4,
    wire: `30 05 0003 "a/b"`,
    packet: {
      type: 'publish',
      topic: 'a/b',
      payload: Buffer.alloc(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: 0,
      properties: undefined,
    },
  },
  {
    name: '3.1.1 PUBLISH QoS 2, DUP and retain',
    version: 4,
    wire: `3d 07              # PUBLISH, DUP, QoS 2, RETAIN
           0001 "t"
           1234               # packet id
           "hi"`,
    packet: {
      type: 'publish',
      topic: 't',
      payload: Buffer.from('hi'),
      qos: 2,
      retain: true,
      dup: true,
      packetId: 0x1234,
      properties: undefined,
    },
  },
  {
    name: '5.0 PUBLISH with an empty topic and a Topic Alias',
    version: 5,
    wire: `30 08 0000           # empty topic name
           03 23 0005           # properties: Topic Alias 5
           "ok"`,
    packet: {
      type: 'publish',
      topic: '',
      payload: Buffer.from('ok'),
      qos: 0,
      retain: false,
      dup: false,
      packetId: 0,
      properties: { topicAlias: 5 },
    },
  },
  {
    name: '5.0 PUBLISH with repeated user properties and subscription identifiers, order kept',
    version: 5,
    wire: `30 17 0001 "t"
           13                   # properties: 19 bytes
             26 0001 "k" 0001 "1"
             0b 01              # Subscription Identifier 1
             26 0001 "k" 0001 "2"
             0b ff7f            # Subscription Identifier 16383
           `,
    packet: {
      type: 'publish',
      topic: 't',
      payload: Buffer.alloc(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: 0,
      properties: {
        userProperties: [
          ['k', '1'],
          ['k', '2'],
        ],
        subscriptionIdentifiers: [1, 16383],
      },
    },
    decodeOnly: true,
  },
  {
    name: '5.0 PUBLISH topic with multi-byte UTF-8',
    version: 5,
    wire: `30 0c 0009 "é/ü/€" 00`,
    packet: {
      type: 'publish',
      topic: 'é/ü/€',
      payload: Buffer.alloc(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: 0,
      properties: undefined,
    },
  },
  {
    name: '3.1.1 PUBACK',
    version: 4,
    wire: `40 02 0001`,
    packet: { type: 'puback', packetId: 1, reasonCode: 0, properties: undefined },
  },
  {
    name: '5.0 PUBACK with reason code left out means Success',
    version: 5,
    wire: `40 02 ffff`,
    packet: { type: 'puback', packetId: 0xffff, reasonCode: 0, properties: undefined },
  },
  {
    name: '5.0 PUBREC with reason code and no property length',
    version: 5,
    wire: `50 03 0007 10        # No matching subscribers`,
    packet: { type: 'pubrec', packetId: 7, reasonCode: 0x10, properties: undefined },
  },
  {
    name: '5.0 PUBREL with a reason string',
    version: 5,
    wire: `62 0a 0007 92 06 1f 0003 "bad"`,
    packet: { type: 'pubrel', packetId: 7, reasonCode: 0x92, properties: { reasonString: 'bad' } },
  },
  {
    name: '5.0 PUBCOMP with reason 0 and an empty property list',
    version: 5,
    wire: `70 04 0007 00 00`,
    packet: { type: 'pubcomp', packetId: 7, reasonCode: 0, properties: undefined },
    decodeOnly: true,
  },
  {
    name: '3.1.1 SUBSCRIBE two filters',
    version: 4,
    wire: `82 10 000a
           0003 "a/+" 01
           0005 "b/c/#" 02`,
    packet: {
      type: 'subscribe',
      packetId: 10,
      subscriptions: [
        { topicFilter: 'a/+', qos: 1 },
        { topicFilter: 'b/c/#', qos: 2 },
      ],
      properties: undefined,
    },
  },
  {
    name: '5.0 SUBSCRIBE with options and a subscription identifier',
    version: 5,
    wire: `82 0f 000a
           02 0b 2a             # Subscription Identifier 42
           0001 "#"  2d         # retain handling 2, retain as published, no local, QoS 1
           0003 "+/+" 00`,
    packet: {
      type: 'subscribe',
      packetId: 10,
      subscriptions: [
        { topicFilter: '#', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        { topicFilter: '+/+', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
      properties: { subscriptionIdentifiers: [42] },
    },
  },
  {
    name: '5.0 SUBSCRIBE to a shared subscription',
    version: 5,
    wire: `82 12 0001 00 000c "$share/g/a/#" 01`,
    packet: {
      type: 'subscribe',
      packetId: 1,
      subscriptions: [
        { topicFilter: '$share/g/a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
      properties: undefined,
    },
  },
  {
    name: '3.1.1 SUBACK with a failure',
    version: 4,
    wire: `90 04 000a 01 80`,
    packet: { type: 'suback', packetId: 10, reasonCodes: [1, 0x80], properties: undefined },
  },
  {
    name: '5.0 SUBACK',
    version: 5,
    wire: `90 05 000a 00 02 87`,
    packet: { type: 'suback', packetId: 10, reasonCodes: [2, 0x87], properties: undefined },
  },
  {
    name: '3.1.1 UNSUBSCRIBE',
    version: 4,
    wire: `a2 05 0002 0001 "x"`,
    packet: { type: 'unsubscribe', packetId: 2, topicFilters: ['x'], properties: undefined },
  },
  {
    name: '3.1.1 UNSUBACK has only a packet id',
    version: 4,
    wire: `b0 02 0002`,
    packet: { type: 'unsuback', packetId: 2, reasonCodes: [], properties: undefined },
  },
  {
    name: '5.0 UNSUBACK',
    version: 5,
    wire: `b0 05 0002 00 00 11`,
    packet: { type: 'unsuback', packetId: 2, reasonCodes: [0, 0x11], properties: undefined },
  },
  { name: 'PINGREQ', version: 4, wire: `c0 00`, packet: { type: 'pingreq' } },
  { name: 'PINGRESP', version: 5, wire: `d0 00`, packet: { type: 'pingresp' } },
  { name: '3.1.1 DISCONNECT', version: 4, wire: `e0 00`, packet: { type: 'disconnect' } },
  {
    name: '5.0 DISCONNECT with no body is a normal disconnection',
    version: 5,
    wire: `e0 00`,
    packet: { type: 'disconnect', reasonCode: 0, properties: undefined },
  },
  {
    name: '5.0 DISCONNECT with will and a new session expiry',
    version: 5,
    wire: `e0 07 04 05 11 00000000`,
    packet: { type: 'disconnect', reasonCode: 4, properties: { sessionExpiryInterval: 0 } },
  },
  {
    name: '5.0 AUTH continue',
    version: 5,
    wire: `f0 15 18 13
           15 000d "SCRAM-SHA-256"
           16 0000`,
    packet: {
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.alloc(0) },
    },
  },
];

describe('valid packets: annotated vectors', () => {
  for (const v of vectors) {
    test(`${v.name}: decodes`, () => {
      assert.deepStrictEqual(decodeAll(bytes(v.wire), { protocolVersion: v.version }), [v.packet]);
    });
    if (!v.decodeOnly) {
      test(`${v.name}: encodes to the same bytes`, () => {
        assert.equal(encode(v.packet, v.version).toString('hex'), bytes(v.wire).toString('hex'));
      });
    }
  }
});

/** Builds a QoS 0 PUBLISH whose Remaining Length is exactly `remaining`. */
function publishOfRemainingLength(remaining: number): Packet {
  return {
    type: 'publish',
    topic: 't',
    payload: Buffer.alloc(remaining - 3, 0x61),
    qos: 0,
    retain: false,
    dup: false,
    packetId: 0,
    properties: undefined,
  };
}

describe('Remaining Length boundaries (MQTT 1.5.5)', () => {
  const cases: [number, string][] = [
    [127, '7f'],
    [128, '8001'],
    [16_383, 'ff7f'],
    [16_384, '808001'],
    [2_097_151, 'ffff7f'],
    [2_097_152, '80808001'],
  ];
  for (const [remaining, encoded] of cases) {
    test(`${remaining} is encoded as ${encoded} and decodes back`, () => {
      const packet = publishOfRemainingLength(remaining);
      const wire = encode(packet, 4);
      assert.equal(wire.subarray(1, 1 + encoded.length / 2).toString('hex'), encoded);
      assert.equal(wire.length, 1 + encoded.length / 2 + remaining);
      assert.deepStrictEqual(decodeAll(wire, { protocolVersion: 4 }), [packet]);
    });
  }

  test('268435455 (ff ff ff 7f) is accepted from the header and waits for the body', () => {
    const decoder = new MqttDecoder(() => assert.fail('no packet expected'), { protocolVersion: 4 });
    decoder.feed(bytes('30 ffffff7f 0001 "t"'));
    assert.equal(decoder.bufferedBytes, 8);
  });

  test('a fifth length byte is malformed, before any body arrives', () => {
    assertRejects('30 ffffffff01', 4, 'MALFORMED_VARIABLE_INT', ReasonCode.MalformedPacket);
  });

  test('a packet over the maximum size is refused from its fixed header alone', () => {
    const decoder = new MqttDecoder(() => {}, { protocolVersion: 4, maxPacketSize: 1024 });
    // 1 + 2 + 1022 = 1025 bytes declared; only the header is sent.
    assert.throws(
      () => decoder.feed(bytes('30 fe07')),
      (e: unknown) => e instanceof MqttCodecError && e.code === 'PACKET_TOO_LARGE' && e.reasonCode === 0x95,
    );
  });

  test('a Remaining Length not minimally encoded is malformed (MQTT-1.5.5-1)', () => {
    assertRejects('30 8000', 4, 'MALFORMED_VARIABLE_INT', ReasonCode.MalformedPacket);
  });

  test('an unfinished length already over the maximum is refused at once', () => {
    const decoder = new MqttDecoder(() => {}, { protocolVersion: 4, maxPacketSize: 100 });
    // 0xff with a continuation means at least 127 + 128 bytes follow.
    assert.throws(
      () => decoder.feed(bytes('30 ff')),
      (e: unknown) => e instanceof MqttCodecError && e.code === 'PACKET_TOO_LARGE',
    );
  });

  test('a packet of exactly the maximum size is accepted', () => {
    const packet = publishOfRemainingLength(1021);
    const wire = encode(packet, 4);
    assert.equal(wire.length, 1024);
    assert.deepStrictEqual(decodeAll(wire, { protocolVersion: 4, maxPacketSize: 1024 }), [packet]);
  });
});

function assertRejects(
  wire: string,
  version: ProtocolVersion | undefined,
  code: CodecErrorCode,
  reasonCode: number,
) {
  const decoder = new MqttDecoder(() => {}, version === undefined ? {} : { protocolVersion: version });
  assert.throws(
    () => decoder.feed(bytes(wire)),
    (e: unknown) => {
      assert.ok(e instanceof MqttCodecError, `expected MqttCodecError, got ${e}`);
      assert.equal(e.code, code, e.message);
      assert.equal(e.reasonCode, reasonCode, e.message);
      return true;
    },
  );
  // Once failed, the decoder refuses everything after (the connection is to close).
  assert.throws(() => decoder.feed(bytes('c000')), MqttCodecError);
}

const M = ReasonCode.MalformedPacket;
const P = ReasonCode.ProtocolError;
const rejected: [string, ProtocolVersion | undefined, string, CodecErrorCode, number][] = [
  ['reserved packet type 0', 4, '00 00', 'RESERVED_PACKET_TYPE', M],
  ['AUTH in 3.1.1 (type 15 reserved)', 4, 'f0 00', 'RESERVED_PACKET_TYPE', M],
  ['PUBREL with flags 0 (MQTT-3.6.1-1)', 4, '60 02 0001', 'BAD_FIXED_HEADER_FLAGS', M],
  ['SUBSCRIBE with flags 0 (MQTT-3.8.1-1)', 4, '80 06 0001 0001 "a" 00', 'BAD_FIXED_HEADER_FLAGS', M],
  ['PUBACK with flags set', 4, '41 02 0001', 'BAD_FIXED_HEADER_FLAGS', M],
  ['PINGREQ with a body', 4, 'c0 01 00', 'TRAILING_BYTES', M],
  ['a packet before CONNECT (MQTT-3.1.0-1)', undefined, '30 03 0001 "t"', 'VERSION_UNKNOWN', P],
  ['PUBLISH QoS 3 (MQTT-3.3.1-4)', 4, '36 05 0001 "t" 0001', 'INVALID_QOS', M],
  ['PUBLISH QoS 0 with DUP (MQTT-3.3.1-2)', 4, '38 03 0001 "t"', 'DUP_ON_QOS0', M],
  [
    'PUBLISH topic with + (MQTT-3.3.2-2)',
    4,
    '30 05 0003 "a/+"',
    'TOPIC_NAME_INVALID',
    ReasonCode.TopicNameInvalid,
  ],
  [
    'PUBLISH topic with # (MQTT-3.3.2-2)',
    5,
    '30 04 0001 "#" 00',
    'TOPIC_NAME_INVALID',
    ReasonCode.TopicNameInvalid,
  ],
  [
    '3.1.1 PUBLISH with an empty topic (MQTT-4.7.3-1)',
    4,
    '30 02 0000',
    'TOPIC_NAME_INVALID',
    ReasonCode.TopicNameInvalid,
  ],
  ['5.0 PUBLISH with an empty topic and no alias', 5, '30 03 0000 00', 'TOPIC_NAME_INVALID', P],
  ['PUBLISH QoS 1 with packet id 0 (MQTT-2.2.1-3)', 4, '32 05 0001 "t" 0000', 'PACKET_ID_ZERO', P],
  ['PUBLISH topic with U+0000 (MQTT-1.5.4-2)', 4, '30 05 0003 61 00 62', 'NULL_CHARACTER', M],
  ['PUBLISH topic with an encoded surrogate (MQTT-1.5.4-1)', 4, '30 05 0003 eda080', 'INVALID_UTF8', M],
  ['PUBLISH topic with an overlong encoding', 4, '30 04 0002 c0af', 'INVALID_UTF8', M],
  ['PUBLISH topic with a truncated sequence', 4, '30 04 0002 61e2', 'INVALID_UTF8', M],
  ['PUBLISH topic past U+10FFFF', 4, '30 06 0004 f4908080', 'INVALID_UTF8', M],
  ['PUBLISH topic length past the packet', 4, '30 03 0005 "t"', 'TRUNCATED', M],
  ['PUBACK with packet id 0', 4, '40 02 0000', 'PACKET_ID_ZERO', P],
  ['3.1.1 PUBACK with an extra byte', 4, '40 03 0001 00', 'TRAILING_BYTES', M],
  ['5.0 PUBACK with a reason code PUBACK may not carry', 5, '40 03 0001 04', 'BAD_REASON_CODE', M],
  ['5.0 PUBLISH with an unknown property', 5, '30 06 0001 "t" 02 7f 00', 'UNKNOWN_PROPERTY', M],
  ['5.0 PUBLISH with a CONNECT-only property', 5, '30 09 0001 "t" 05 11 00000001', 'PROPERTY_NOT_ALLOWED', M],
  [
    '5.0 PUBLISH with Content Type twice',
    5,
    '30 0c 0001 "t" 08 03 0001 "a" 03 0001 "b"',
    'DUPLICATE_PROPERTY',
    P,
  ],
  [
    '5.0 PUBLISH with Topic Alias 0 (MQTT-3.3.2-8)',
    5,
    '30 07 0001 "t" 03 23 0000',
    'PROPERTY_VALUE_INVALID',
    ReasonCode.TopicAliasInvalid,
  ],
  ['5.0 PUBLISH with Payload Format Indicator 2', 5, '30 06 0001 "t" 02 01 02', 'PROPERTY_VALUE_INVALID', P],
  ['5.0 PUBLISH with Subscription Identifier 0', 5, '30 06 0001 "t" 02 0b 00', 'PROPERTY_VALUE_INVALID', P],
  [
    '5.0 PUBLISH with a Subscription Identifier not minimally encoded',
    5,
    '30 07 0001 "t" 03 0b 8000',
    'MALFORMED_VARIABLE_INT',
    M,
  ],
  ['5.0 PUBLISH with property length past the packet', 5, '30 05 0001 "t" 09 01', 'TRUNCATED', M],
  [
    '5.0 PUBLISH with a property value past the property list',
    5,
    '30 07 0001 "t" 02 02 0000',
    'TRUNCATED',
    M,
  ],
  [
    '5.0 SUBSCRIBE with two Subscription Identifiers (MQTT-3.8.2.1.2)',
    5,
    '82 0b 0001 04 0b 01 0b 02 0001 "a" 00',
    'DUPLICATE_PROPERTY',
    P,
  ],
  [
    'CONNECT with an unknown protocol name',
    undefined,
    '10 0c 0004 "MQTX" 04 02 0000 0000',
    'BAD_PROTOCOL_NAME',
    M,
  ],
  [
    'CONNECT with protocol level 6',
    undefined,
    '10 0c 0004 "MQTT" 06 02 0000 0000',
    'UNSUPPORTED_PROTOCOL_VERSION',
    ReasonCode.UnsupportedProtocolVersion,
  ],
  [
    'CONNECT "MQTT" with level 3',
    undefined,
    '10 0c 0004 "MQTT" 03 02 0000 0000',
    'UNSUPPORTED_PROTOCOL_VERSION',
    ReasonCode.UnsupportedProtocolVersion,
  ],
  [
    'CONNECT reserved flag set (MQTT-3.1.2-3)',
    undefined,
    '10 0c 0004 "MQTT" 04 03 0000 0000',
    'BAD_CONNECT_FLAGS',
    M,
  ],
  ['CONNECT Will QoS 3 (MQTT-3.1.2-12)', undefined, '10 0c 0004 "MQTT" 04 1e 0000 0000', 'INVALID_QOS', M],
  [
    'CONNECT Will Retain without will (MQTT-3.1.2-13)',
    undefined,
    '10 0c 0004 "MQTT" 04 22 0000 0000',
    'BAD_CONNECT_FLAGS',
    M,
  ],
  [
    '3.1.1 CONNECT password without user name (MQTT-3.1.2-22)',
    undefined,
    '10 0e 0004 "MQTT" 04 42 0000 0000 0000',
    'BAD_CONNECT_FLAGS',
    M,
  ],
  ['CONNECT client id past the packet', undefined, '10 0c 0004 "MQTT" 04 02 0000 0005', 'TRUNCATED', M],
  ['CONNECT with trailing bytes', undefined, '10 0d 0004 "MQTT" 04 02 0000 0000 00', 'TRAILING_BYTES', M],
  [
    'CONNECT will topic with a wildcard',
    undefined,
    '10 11 0004 "MQTT" 04 06 0000 0000 0001 "#" 0000',
    'TOPIC_NAME_INVALID',
    ReasonCode.TopicNameInvalid,
  ],
  [
    '5.0 CONNECT Authentication Data without a method',
    undefined,
    '10 10 0004 "MQTT" 05 02 0000 03 16 0000 0000',
    'PROPERTY_VALUE_INVALID',
    P,
  ],
  [
    '5.0 CONNECT Receive Maximum 0',
    undefined,
    '10 10 0004 "MQTT" 05 02 0000 03 21 0000 0000',
    'PROPERTY_VALUE_INVALID',
    P,
  ],
  [
    '5.0 CONNECT Maximum Packet Size 0',
    undefined,
    '10 12 0004 "MQTT" 05 02 0000 05 27 00000000 0000',
    'PROPERTY_VALUE_INVALID',
    P,
  ],
  [
    '5.0 CONNECT Request Problem Information 2',
    undefined,
    '10 0f 0004 "MQTT" 05 02 0000 02 17 02 0000',
    'PROPERTY_VALUE_INVALID',
    P,
  ],
  ['3.1.1 CONNACK reserved flags', 4, '20 02 02 00', 'BAD_CONNACK_FLAGS', M],
  ['3.1.1 CONNACK return code 6', 4, '20 02 00 06', 'BAD_REASON_CODE', M],
  ['3.1.1 CONNACK session present on refusal (MQTT-3.2.2-6)', 4, '20 02 01 05', 'BAD_CONNACK_FLAGS', P],
  [
    'SUBSCRIBE filter a/#/b (MQTT-4.7.1-1)',
    4,
    '82 0a 0001 0005 "a/#/b" 00',
    'TOPIC_FILTER_INVALID',
    ReasonCode.TopicFilterInvalid,
  ],
  [
    'SUBSCRIBE filter a+ (MQTT-4.7.1-2)',
    4,
    '82 07 0001 0002 "a+" 00',
    'TOPIC_FILTER_INVALID',
    ReasonCode.TopicFilterInvalid,
  ],
  [
    'SUBSCRIBE filter a# (MQTT-4.7.1-1)',
    4,
    '82 07 0001 0002 "a#" 00',
    'TOPIC_FILTER_INVALID',
    ReasonCode.TopicFilterInvalid,
  ],
  [
    'SUBSCRIBE empty filter (MQTT-4.7.3-1)',
    4,
    '82 05 0001 0000 00',
    'TOPIC_FILTER_INVALID',
    ReasonCode.TopicFilterInvalid,
  ],
  ['SUBSCRIBE with no filters (MQTT-3.8.3-3)', 4, '82 02 0001', 'EMPTY_PAYLOAD_LIST', P],
  ['SUBSCRIBE filter without options byte', 4, '82 05 0001 0001 "a"', 'TRUNCATED', M],
  ['SUBSCRIBE QoS 3', 4, '82 06 0001 0001 "a" 03', 'INVALID_QOS', M],
  [
    '3.1.1 SUBSCRIBE reserved option bits (MQTT-3.8.3-4)',
    4,
    '82 06 0001 0001 "a" 04',
    'BAD_SUBSCRIPTION_OPTIONS',
    M,
  ],
  [
    '5.0 SUBSCRIBE reserved option bits (MQTT-3.8.3-5)',
    5,
    '82 07 0001 00 0001 "a" 40',
    'BAD_SUBSCRIPTION_OPTIONS',
    M,
  ],
  ['5.0 SUBSCRIBE Retain Handling 3', 5, '82 07 0001 00 0001 "a" 30', 'BAD_SUBSCRIPTION_OPTIONS', P],
  [
    '5.0 SUBSCRIBE No Local on a shared subscription (MQTT-3.8.3-4)',
    5,
    '82 10 0001 00 000a "$share/g/a" 04',
    'BAD_SUBSCRIPTION_OPTIONS',
    P,
  ],
  [
    '5.0 SUBSCRIBE share name with a wildcard (MQTT-4.8.2-2)',
    5,
    '82 10 0001 00 000a "$share/+/a" 00',
    'TOPIC_FILTER_INVALID',
    ReasonCode.TopicFilterInvalid,
  ],
  [
    '5.0 SUBSCRIBE share without a filter (MQTT-4.8.2-1)',
    5,
    '82 0e 0001 00 0008 "$share/g" 00',
    'TOPIC_FILTER_INVALID',
    ReasonCode.TopicFilterInvalid,
  ],
  ['UNSUBSCRIBE with no filters (MQTT-3.10.3-2)', 4, 'a2 02 0001', 'EMPTY_PAYLOAD_LIST', P],
  ['3.1.1 SUBACK return code 3', 4, '90 03 0001 03', 'BAD_REASON_CODE', M],
  ['3.1.1 DISCONNECT with a body', 4, 'e0 01 00', 'TRAILING_BYTES', M],
  ['5.0 DISCONNECT reason 0x10', 5, 'e0 01 10', 'BAD_REASON_CODE', M],
  ['5.0 AUTH continue without a method', 5, 'f0 01 18', 'PROPERTY_VALUE_INVALID', P],
];

describe('invalid input: typed errors with the reason code to answer', () => {
  for (const [name, version, wire, code, reasonCode] of rejected) {
    test(`${name} -> ${code}`, () => assertRejects(wire, version, code, reasonCode));
  }
});

describe('streaming', () => {
  const stream = Buffer.concat([
    bytes('30 05 0003 "a/b"'),
    bytes('32 07 0001 "t" 0001 "hi"'),
    bytes('c0 00'),
    bytes('e0 00'),
  ]);

  test('a one-byte drip yields the same packets as one chunk', () => {
    const whole = decodeAll(stream, { protocolVersion: 4 });
    const dripped: Packet[] = [];
    const decoder = new MqttDecoder((p) => dripped.push(p), { protocolVersion: 4 });
    for (let i = 0; i < stream.length; i++) decoder.feed(stream.subarray(i, i + 1));
    assert.equal(whole.length, 4);
    assert.deepStrictEqual(dripped, whole);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('a server decoder learns the version from CONNECT', () => {
    const seen: Packet[] = [];
    const decoder = new MqttDecoder((p) => seen.push(p));
    decoder.feed(bytes('10 0d 0004 "MQTT" 05 02 0000 00 0000  e0 01 04'));
    assert.equal(decoder.protocolVersion, 5);
    assert.deepStrictEqual(seen[1], { type: 'disconnect', reasonCode: 4, properties: undefined });
  });

  test('payloads within one chunk are views of it, not copies', () => {
    const chunk = bytes('30 07 0001 "t" "data"');
    const [packet] = decodeAll(chunk, { protocolVersion: 4 });
    assert.ok(packet?.type === 'publish');
    chunk[chunk.length - 1] = 0x21;
    assert.equal(packet.payload.toString(), 'dat!');
  });

  test('a will payload is copied: it outlives the socket chunk', () => {
    const chunk = bytes('10 13 0004 "MQTT" 04 06 0000 0000 0001 "w" 0002 "hi"');
    const [packet] = decodeAll(chunk);
    assert.ok(packet?.type === 'connect' && packet.will);
    chunk.fill(0);
    assert.equal(packet.will.payload.toString(), 'hi');
  });
});
