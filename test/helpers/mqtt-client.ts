import { type EventEmitter, once } from 'node:events';
import { afterEach } from 'node:test';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import type { ProtocolVersion } from '../../src/codec/mqtt/index.js';
import type { CicadaOptions } from '../../src/index.js';
import { startBroker, type TestBroker, until } from './broker.js';
import { RawClient } from './raw-client.js';

/**
 * MQTT.js clients (and RawClients) for the end-to-end tests: connecting them without
 * reconnects, recording what they receive, and closing everything a test opened after it.
 */

export type Version = 4 | 5;

/** `promise`, or a rejection naming `what` if it takes longer than `ms` (a safety net, not a measurement). */
export function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** MQTT.js connecting to `url` without reconnects, 5 s to connect. */
export function mqttConnect(url: string, options: IClientOptions): MqttClient {
  return mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

let seq = 0;

/** A client identifier unique in this test file: `${prefix}-N`. */
export function id(prefix: string): string {
  return `${prefix}-${++seq}`;
}

// ---- one list of cleanups per test ------------------------------------------------------

/** What a test opens, closed after it, newest first. */
export interface PerTest {
  /** Run after the test, newest first. */
  readonly cleanups: (() => unknown)[];
  /** A broker on a free loopback port. */
  broker(options?: CicadaOptions): Promise<TestBroker>;
  /** MQTT.js connecting to `url` (no reconnects, 5 s to connect), ended forcibly. */
  mqttClient(url: string, options: IClientOptions): MqttClient;
  /** A RawClient with an open socket, nothing sent yet. */
  raw(port: number, version?: ProtocolVersion): Promise<RawClient>;
}

/** Cleanups for the tests of a file: what each test opens is closed after it. */
export function perTest(): PerTest {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    cleanups,
    async broker(options = {}) {
      const b = await startBroker(options);
      cleanups.push(() => b.close());
      return b;
    },
    mqttClient(url, options) {
      const c = mqttConnect(url, options);
      cleanups.push(() => c.end(true));
      return c;
    },
    async raw(port, version = 4) {
      const r = await RawClient.open(port, version);
      cleanups.push(() => r.end());
      return r;
    },
  };
}

/** The CONNACK `c` gets; rejects with its refusal (whose `code` is the return/reason code), or after 10 s. */
export function connackOf(c: MqttClient): Promise<IConnackPacket> {
  return within(
    new Promise<IConnackPacket>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    }),
    'CONNACK',
  );
}

/** Resolves when the broker has detached `clientId`'s connection. */
export function detached(b: TestBroker, clientId: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (info: { clientId: string }): void => {
      if (info.clientId !== clientId) return;
      b.broker.off('clientDisconnected', listener);
      resolve();
    };
    b.broker.on('clientDisconnected', listener);
  });
}

/** Ends with a DISCONNECT (`opts` for its 5.0 reason code and properties) and waits for the broker to take it. */
export async function leave(
  b: TestBroker,
  c: MqttClient,
  opts?: Parameters<MqttClient['endAsync']>[1],
): Promise<void> {
  const gone = detached(b, c.options.clientId!);
  await c.endAsync(false, opts);
  await within(gone, `the broker to detach ${c.options.clientId}`);
}

// ---- clients closed after each test -------------------------------------------------------

/** The clients a test opens: all ended after it (MQTT.js forcibly). */
export interface OpenClients {
  readonly clients: MqttClient[];
  readonly raws: RawClient[];
}

export function clientsClosedAfterEach(): OpenClients {
  const clients: MqttClient[] = [];
  const raws: RawClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    for (const r of raws.splice(0)) r.end();
  });
  return { clients, raws };
}

export interface TestClients extends OpenClients {
  /**
   * MQTT.js connected at protocol `version` to `on` (the file's broker unless told), as
   * `${prefix}${version}-N` unless `options` say otherwise; no reconnects.
   */
  client(version: Version, options?: IClientOptions, on?: TestBroker): Promise<MqttClient>;
  /** A RawClient through CONNECT/CONNACK to `on` as `raw${version}-N`; fails unless the broker accepts. */
  raw(version: Version, on?: TestBroker): Promise<RawClient>;
}

/**
 * The clients of a file's tests, closed after each test: `broker()` is the file's broker
 * (started in its `before`), and `prefix` starts the MQTT.js client identifiers.
 */
export function testClients(prefix: string, broker: () => TestBroker): TestClients {
  const { clients, raws } = clientsClosedAfterEach();
  return {
    clients,
    raws,
    async client(version, options = {}, on = broker()) {
      const c = await mqtt.connectAsync(on.url, {
        protocolVersion: version,
        clientId: id(`${prefix}${version}`),
        reconnectPeriod: 0,
        ...options,
      });
      clients.push(c);
      return c;
    },
    async raw(version, on = broker()) {
      const r = await RawClient.connect(on.port, { protocolVersion: version, clientId: id(`raw${version}`) });
      raws.push(r);
      return r;
    },
  };
}

/** A PUBLISH an MQTT.js client received. */
export interface Received {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

/** Records every message `c` receives from now on. */
export function collect(c: MqttClient): Received[] {
  const list: Received[] = [];
  c.on('message', (topic, payload, packet) => list.push({ topic, payload, packet }));
  return list;
}

/** Waits until `list` holds a message on `topic` (a marker sent after whatever must not arrive). */
export async function untilTopic(list: Received[], topic: string): Promise<void> {
  await until(() => list.some((m) => m.topic === topic), `a message on ${topic}`);
}

/** Waits until `list` holds a message with payload `payload`. */
export async function untilPayload(list: Received[], payload: string): Promise<void> {
  await until(() => list.some((m) => m.payload.toString() === payload), `a message '${payload}'`);
}

// ---- peers: clients with what they received as text -------------------------------------

/** A PUBLISH an MQTT.js client received, its payload as text. */
export interface TextMessage {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

export interface Peer {
  client: MqttClient;
  /** Every message received since it connected. */
  messages: TextMessage[];
  connack: IConnackPacket;
}

/** Resolves with the CONNACK once `client` is connected; rejects on an 'error' before that. */
export async function connected(client: MqttClient): Promise<IConnackPacket> {
  const [packet] = (await once(client as unknown as EventEmitter, 'connect')) as [IConnackPacket];
  return packet;
}

/** An MQTT.js client (5.0 unless told) whose messages are recorded from the moment it connects. */
export async function openPeer(
  clients: MqttClient[],
  url: string,
  options: IClientOptions = {},
): Promise<Peer> {
  const client = mqttConnect(url, { protocolVersion: 5, ...options });
  clients.push(client);
  const messages: TextMessage[] = [];
  client.on('message', (topic, payload, packet) =>
    messages.push({ topic, payload: payload.toString(), packet }),
  );
  return { client, messages, connack: await connected(client) };
}
