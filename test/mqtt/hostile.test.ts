import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { encode, type Packet, type ProtocolVersion } from '../../src/codec/mqtt/index.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { connected, mqttConnect } from '../helpers/mqtt-client.js';
import { seeded, seedFrom } from '../helpers/random.js';

/**
 * Hostile peers against a live broker: garbage, protocol violations, stalls and fuzzed
 * packet streams on many connections, while real clients carry on. Each bad connection
 * must be closed, none may take the broker or its other clients down, and nothing may
 * reach the broker's error handler. Bounded by counts; the seed is printed for replay.
 */

const seed = seedFrom('HOSTILE_SEED');
const { random, int, pick, bytes: randomBytes, mutate } = seeded(seed);

/** A CONNECT with Keep Alive 1, so a connection that stalls after it is closed within 1.5 s. */
function connectBytes(
  version: ProtocolVersion,
  extra: Partial<Extract<Packet, { type: 'connect' }>> = {},
): Buffer {
  return encode(
    { type: 'connect', protocolVersion: version, clean: true, keepAlive: 1, clientId: '', ...extra },
    version,
  );
}

function publishBytes(version: ProtocolVersion, topic = 'hostile/x'): Buffer {
  return encode(
    { type: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: false, dup: false, packetId: 1 },
    version,
  );
}

/** A raw PUBLISH with the given topic bytes, for topics the encoder would refuse to write. */
function publishWithTopicBytes(topic: Buffer, version: ProtocolVersion): Buffer {
  const props = version === 5 ? [0x00] : [];
  const body = Buffer.concat([
    Buffer.from([topic.length >> 8, topic.length & 0xff]),
    topic,
    Buffer.from(props),
    Buffer.from('x'),
  ]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

function variableInt(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** One kind of misbehaviour: the chunks to write, and whether to half-close afterwards. */
interface Attack {
  name: string;
  chunks: (version: ProtocolVersion) => Buffer[];
  halfClose?: boolean;
}

const ATTACKS: Attack[] = [
  { name: 'random garbage', chunks: () => [randomBytes(1 + int(64))] },
  { name: 'reserved packet type 0', chunks: () => [Buffer.from([0x00, 0x00])] },
  {
    name: 'CONNECT with wrong fixed-header flags',
    chunks: (v) => {
      const bytes = connectBytes(v);
      bytes[0] = 0x13;
      return [bytes];
    },
  },
  {
    name: 'SUBSCRIBE with fixed-header flags 0',
    chunks: (v) => [connectBytes(v), Buffer.from([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00])],
  },
  {
    name: 'five-byte Remaining Length',
    chunks: (v) => [connectBytes(v), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])],
  },
  {
    name: 'declared length above the maximum packet size',
    chunks: (v) => [
      connectBytes(v),
      Buffer.concat([Buffer.from([0x30]), variableInt(2_000_000), Buffer.alloc(100)]),
    ],
  },
  { name: 'PINGREQ before CONNECT', chunks: () => [Buffer.from([0xc0, 0x00])] },
  { name: 'PUBLISH before CONNECT', chunks: (v) => [publishBytes(v)] },
  { name: 'second CONNECT', chunks: (v) => [connectBytes(v), connectBytes(v)] },
  {
    name: 'invalid UTF-8 in a topic',
    chunks: (v) => [connectBytes(v), publishWithTopicBytes(Buffer.from([0x61, 0xff, 0xfe]), v)],
  },
  {
    name: 'UTF-16 surrogate in a topic',
    chunks: (v) => [connectBytes(v), publishWithTopicBytes(Buffer.from([0xed, 0xa0, 0x80]), v)],
  },
  {
    name: 'null character in a topic',
    chunks: (v) => [connectBytes(v), publishWithTopicBytes(Buffer.from([0x61, 0x00]), v)],
  },
  {
    name: 'wildcard in a PUBLISH topic',
    chunks: (v) => [connectBytes(v), publishWithTopicBytes(Buffer.from('a/+'), v)],
  },
  {
    name: 'PUBLISH with QoS 3',
    chunks: (v) => {
      const bytes = publishBytes(v);
      bytes[0] = 0x36;
      return [connectBytes(v), bytes];
    },
  },
  {
    name: 'PUBLISH with a huge property length',
    chunks: () => [
      connectBytes(5),
      Buffer.from([0x30, 0x09, 0x00, 0x01, 0x74, 0xff, 0xff, 0xff, 0x7f, 0x78, 0x78]),
    ],
  },
  {
    name: 'CONNECT with a huge property length',
    chunks: () => {
      const head = Buffer.from([
        0x00,
        0x04,
        ...Buffer.from('MQTT'),
        0x05,
        0x02,
        0x00,
        0x3c,
        0xff,
        0xff,
        0xff,
        0x7f,
        0x00,
        0x00,
      ]);
      return [Buffer.concat([Buffer.from([0x10, head.length]), head])];
    },
  },
  { name: 'random bytes after a valid CONNECT', chunks: (v) => [connectBytes(v), randomBytes(1 + int(64))] },
  {
    name: 'unsupported protocol version',
    chunks: () => [
      Buffer.from([0x10, 0x0d, 0x00, 0x04, ...Buffer.from('MQTT'), 0x07, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]),
    ],
  },
  {
    name: 'bad protocol name',
    chunks: () => [
      Buffer.from([0x10, 0x0d, 0x00, 0x04, ...Buffer.from('MQTX'), 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]),
    ],
  },
  {
    name: 'SUBSCRIBE with no topic filter',
    chunks: (v) => [
      connectBytes(v),
      Buffer.from([0x82, v === 5 ? 0x03 : 0x02, 0x00, 0x01, ...(v === 5 ? [0x00] : [])]),
    ],
  },
  {
    name: 'PUBACK with packet id 0 and trailing bytes',
    chunks: (v) => [connectBytes(v), Buffer.from([0x40, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00])],
  },
  { name: 'partial CONNECT, then silence', chunks: (v) => [connectBytes(v).subarray(0, 6)] },
  {
    name: 'partial PUBLISH after CONNECT, then silence',
    chunks: (v) => [connectBytes(v), publishBytes(v).subarray(0, 4)],
  },
  { name: 'nothing at all', chunks: () => [] },
  {
    name: 'half-open: partial CONNECT, then FIN',
    chunks: (v) => [connectBytes(v).subarray(0, 8)],
    halfClose: true,
  },
  { name: 'half-open: valid CONNECT, then FIN', chunks: (v) => [connectBytes(v)], halfClose: true },
  {
    name: 'a CONNECT one byte at a time, then garbage',
    chunks: (v) =>
      [...connectBytes(v)].map((byte) => Buffer.from([byte])).concat([Buffer.from([0xf0, 0x00])]),
  },
];

/** Opens a socket, writes the chunks, and resolves once the broker has closed it. */
async function hostileConnection(
  port: number,
  chunks: Buffer[],
  halfClose: boolean,
  what: string,
): Promise<void> {
  const socket = tcpConnect({ host: '127.0.0.1', port, allowHalfOpen: halfClose });
  socket.on('error', () => {});
  socket.on('data', () => {});
  await once(socket, 'connect');
  for (const chunk of chunks) socket.write(chunk);
  if (halfClose) socket.end();
  await closed(socket, what);
}

/** Resolves on 'close'; a safety net destroys the socket and fails after 15 s. */
function closed(socket: Socket, what: string): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`seed ${seed}: the broker did not close the connection for '${what}'`));
    }, 15_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const clients: MqttClient[] = [];

async function open(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = mqttConnect(url, options);
  clients.push(client);
  await connected(client);
  return client;
}

describe(`hostile peers (seed ${seed}, replay with HOSTILE_SEED)`, () => {
  let b: TestBroker;
  const errors: unknown[] = [];

  before(async () => {
    b = await startBroker({ onError: (error) => errors.push(error), mqtt: { connectTimeout: 500 } });
  });

  after(async () => {
    for (const client of clients.splice(0)) client.end(true);
    await b.close();
  });

  test(`${ATTACKS.length * 3} misbehaving connections while 2000 QoS 1 messages flow between real clients: every message arrives in order, every bad connection is closed`, async () => {
    const sub = await open(b.url, { protocolVersion: 5, clientId: 'hostile-sub' });
    const received: string[] = [];
    sub.on('message', (_topic, payload) => received.push(payload.toString()));
    await sub.subscribeAsync('hostile/flow', { qos: 1 });
    const pub = await open(b.url, { protocolVersion: 4, clientId: 'hostile-pub' });

    const MESSAGES = 2000;
    const BATCH = 100;
    const attacks: Promise<void>[] = [];
    let launched = 0;
    let closedCount = 0;
    for (let start = 0; start < MESSAGES; start += BATCH) {
      // A few bad connections per batch, cycling through every kind, both protocol versions.
      for (let k = 0; k < 4 && launched < ATTACKS.length * 3; k++) {
        const attack = ATTACKS[launched % ATTACKS.length]!;
        const version: ProtocolVersion = launched % 2 === 0 ? 4 : 5;
        const what = `${attack.name} (${version === 5 ? '5.0' : '3.1.1'})`;
        attacks.push(
          hostileConnection(b.port, attack.chunks(version), attack.halfClose ?? false, what).then(
            () => void closedCount++,
          ),
        );
        launched++;
      }
      const batch = Array.from({ length: BATCH }, (_, i) =>
        pub.publishAsync('hostile/flow', String(start + i), { qos: 1 }),
      );
      await Promise.all(batch);
    }
    while (launched < ATTACKS.length * 3) {
      const attack = ATTACKS[launched % ATTACKS.length]!;
      attacks.push(
        hostileConnection(b.port, attack.chunks(5), attack.halfClose ?? false, attack.name).then(
          () => void closedCount++,
        ),
      );
      launched++;
    }

    await until(() => received.length >= MESSAGES, `${MESSAGES} messages (seed ${seed})`, 15_000);
    await Promise.all(attacks);
    assert.equal(closedCount, ATTACKS.length * 3, 'every bad connection was closed');
    assert.deepEqual(
      received,
      Array.from({ length: MESSAGES }, (_, i) => String(i)),
    );
    assert.ok(b.broker.broker.running, 'the broker is still running');
    // Sessions of the bad connections that got as far as CONNECT are gone with them.
    await until(() => b.broker.broker.sessions.size === 2, "only the real clients' sessions to remain");
    assert.deepEqual([...b.broker.broker.sessions.keys()].sort(), ['hostile-pub', 'hostile-sub']);
    assert.deepEqual(errors, [], `seed ${seed}: nothing reached the broker's error handler`);
    // The real clients are still connected and working.
    await pub.publishAsync('hostile/flow', 'after', { qos: 1 });
    await until(() => received.includes('after'), 'a message after the attacks');
  });

  test('fuzz flood: 400 mutated packet streams thrown at the live broker; afterwards a fresh client connects and round-trips a message', async (t) => {
    const STREAMS = 400;
    const PARALLEL = 40;
    let connected = 0;
    let published = 0;
    const onConnected = (): void => void connected++;
    const onPublished = (): void => void published++;
    b.broker.on('clientConnected', onConnected).on('published', onPublished);
    let finished = 0;
    let answered = 0;
    try {
      for (let start = 0; start < STREAMS; start += PARALLEL) {
        const wave = await Promise.all(
          Array.from({ length: Math.min(PARALLEL, STREAMS - start) }, (_, i) =>
            fuzzConnection(b.port, start + i),
          ),
        );
        finished += wave.length;
        answered += wave.filter(Boolean).length;
      }
    } finally {
      b.broker.off('clientConnected', onConnected).off('published', onPublished);
    }
    assert.equal(finished, STREAMS);
    // The streams must reach past CONNECT into the handlers, or the flood tests little.
    t.diagnostic(`${answered} streams answered, ${connected} connected, ${published} messages published`);
    assert.ok(connected > STREAMS / 4, `only ${connected} of ${STREAMS} streams got connected`);
    assert.ok(published > STREAMS / 10, `only ${published} messages published by ${STREAMS} streams`);
    assert.ok(b.broker.broker.running, 'the broker is still running');
    assert.deepEqual(errors, [], `seed ${seed}: nothing reached the broker's error handler`);

    for (const version of [4, 5] as const) {
      const fresh = await open(b.url, { protocolVersion: version, clientId: `after-fuzz-${version}` });
      const got: string[] = [];
      fresh.on('message', (_topic, payload) => got.push(payload.toString()));
      await fresh.subscribeAsync(`after/fuzz/${version}`, { qos: 1 });
      await fresh.publishAsync(`after/fuzz/${version}`, 'still alive', { qos: 1 });
      await until(() => got.length >= 1, 'the round trip');
      assert.deepEqual(got, ['still alive']);
    }
  });
});

/** Client packets a fuzzed stream is made of: each version's CONNECT first, then a mix. */
function seedPackets(version: ProtocolVersion): Buffer[] {
  const v5 = version === 5;
  const props = v5 ? { userProperties: [['k', 'v'] as [string, string]] } : undefined;
  const packets: Packet[] = [
    {
      type: 'connect',
      protocolVersion: version,
      clean: true,
      keepAlive: 1,
      clientId: `fuzz${int(10)}`,
      username: 'u',
      password: Buffer.from('p'),
      will: {
        topic: 'fuzz/will',
        payload: Buffer.from('bye'),
        qos: 1,
        retain: false,
        ...(v5 ? { properties: { willDelayInterval: 1 } } : {}),
      },
      ...(v5 ? { properties: { sessionExpiryInterval: 0, receiveMaximum: 10, topicAliasMaximum: 4 } } : {}),
    },
    {
      type: 'publish',
      topic: 'fuzz/a/b',
      payload: Buffer.from('payload'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 9,
      ...(v5
        ? { properties: { contentType: 'text/plain', topicAlias: 2, messageExpiryInterval: 9, ...props } }
        : {}),
    },
    {
      type: 'publish',
      topic: 'fuzz/x',
      payload: Buffer.alloc(40, 1),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 10,
    },
    { type: 'publish', topic: 'fuzz/r', payload: Buffer.from('r'), qos: 0, retain: true, dup: false },
    { type: 'puback', packetId: 1, ...(v5 ? { reasonCode: 0x10, properties: props } : {}) },
    { type: 'pubrec', packetId: 2 },
    { type: 'pubrel', packetId: 10 },
    { type: 'pubcomp', packetId: 4 },
    {
      type: 'subscribe',
      packetId: 5,
      subscriptions: [
        { topicFilter: 'fuzz/+/#', qos: 2, ...(v5 ? { noLocal: true, retainHandling: 1 as const } : {}) },
        { topicFilter: '$share/g/fuzz/s', qos: 1 },
      ],
      ...(v5 ? { properties: { subscriptionIdentifiers: [7] } } : {}),
    },
    { type: 'unsubscribe', packetId: 6, topicFilters: ['fuzz/+', '#'] },
    { type: 'pingreq' },
    { type: 'disconnect', ...(v5 ? { reasonCode: 0x04, properties: { sessionExpiryInterval: 0 } } : {}) },
  ];
  return packets.map((p) => encode(p, version));
}

function fuzzStream(): Buffer {
  if (random() < 0.1) return randomBytes(int(64));
  const version = pick([3, 4, 5] as const);
  const items = seedPackets(version);
  const parts = [items[0]!, ...Array.from({ length: 1 + int(5) }, () => pick(items.slice(1)))];
  // Mostly mutate the packets after the CONNECT, so the broker gets past it and into the handlers.
  const cut = random() < 0.7 ? 1 : 0;
  return Buffer.concat([...parts.slice(0, cut), mutate(Buffer.concat(parts.slice(cut)))]);
}

/** Writes one fuzzed stream in random chunks, half-closes, and waits for the connection to end. */
async function fuzzConnection(port: number, index: number): Promise<boolean> {
  const stream = fuzzStream();
  const socket = tcpConnect({ host: '127.0.0.1', port });
  let answered = false;
  socket.on('error', () => {});
  socket.on('data', () => {
    answered = true;
  });
  await once(socket, 'connect');
  for (let pos = 0; pos < stream.length; ) {
    const size = random() < 0.3 ? 1 : 1 + int(stream.length);
    socket.write(stream.subarray(pos, pos + size));
    pos += size;
  }
  socket.end();
  await closed(socket, `fuzz stream ${index}: ${stream.toString('hex')}`);
  return answered;
}
