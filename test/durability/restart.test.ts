import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  QoS,
} from '../../src/codec/mqtt/index.js';
import { DurableStore, type SubscriptionOptions } from '../../src/index.js';
import { startBroker, type TestBroker, until } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

/**
 * Durability end to end: every kind of state the broker persists, through real sockets and
 * real clients (MQTT.js, Mosquitto's command line clients, our RawClient), across a restart
 * on the same data directory. A restart is either `close()` of an embedded broker followed
 * by a new one, or the CLI process killed with SIGKILL and started again: what the broker
 * acknowledged must survive even that (the store is synced before PUBACK/PUBREC).
 *
 * Protocol times are small (1-5 s); waits are for events, with safety timeouts. The only
 * sleeps keep the broker down past an expiry, which is what those tests are about.
 */

/** dist/test/durability/ -> dist/src/cli/main.js */
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
/** A safety net against a hung broker or client: never a measurement. */
const SAFETY_MS = 15_000;

// ---- resources: everything a test opens is closed after it -----------------------------------

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (error) {
      console.error('cleanup failed:', error);
    }
  }
});

/** Child processes still running (CLI brokers, Mosquitto clients), killed by id if a test left one. */
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cicada-restart-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `promise`, or a rejection naming `what` after `ms` (a safety net, not a measurement). */
function within<T>(promise: Promise<T>, what: string, ms = SAFETY_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Keeps the test (and so the stopped broker) waiting until the wall clock passes `time`. */
async function sleepUntil(time: number): Promise<void> {
  for (let i = 0; i < 100 && Date.now() < time; i++) await delay(Math.max(1, time - Date.now()));
}

// ---- deployments: one broker on a data directory, restarted by close or by SIGKILL -----------

type Mode = 'close' | 'sigkill';

interface Deployment {
  readonly mode: Mode;
  readonly port: number;
  readonly url: string;
  /** The in-process broker, for events and state checks (mode 'close' only). */
  readonly embedded: TestBroker | undefined;
  /**
   * Stops the broker (`close()`, or SIGKILL of the CLI process), runs `whileDown`, then
   * starts a new broker on the same data directory and a new port.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
}

/** `createBroker({ dataDir })` in this process; restart is `close()` and a new broker. */
class Embedded implements Deployment {
  readonly mode = 'close';
  private constructor(
    readonly dataDir: string,
    private current: TestBroker,
  ) {}

  static async start(dataDir: string): Promise<Embedded> {
    const d = new Embedded(dataDir, await startBroker({ dataDir }));
    cleanups.push(() => d.current.close());
    return d;
  }

  get port(): number {
    return this.current.port;
  }

  get url(): string {
    return this.current.url;
  }

  get embedded(): TestBroker {
    return this.current;
  }

  async restart(whileDown?: () => Promise<void>): Promise<void> {
    await this.current.close();
    await whileDown?.();
    this.current = await startBroker({ dataDir: this.dataDir });
  }
}

/** The CLI (`node dist/src/cli/main.js --data DIR`); restart is SIGKILL and a new process. */
class Cli implements Deployment {
  readonly mode = 'sigkill';
  readonly embedded = undefined;
  port = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(readonly dataDir: string) {}

  static async start(dataDir: string): Promise<Cli> {
    const d = new Cli(dataDir);
    cleanups.push(() => d.kill());
    await d.spawn();
    return d;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async restart(whileDown?: () => Promise<void>): Promise<void> {
    await this.kill();
    await whileDown?.();
    await this.spawn();
  }

  private async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await within(this.exited, 'the killed broker to exit');
  }

  /** Starts the CLI on a free port and resolves with that port once it logged "ready". */
  private async spawn(): Promise<void> {
    const child = spawn(
      process.execPath,
      [MAIN, '--allow-anonymous', '--listen', 'mqtt://127.0.0.1:0', '--data', this.dataDir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: dirname(this.dataDir),
      },
    );
    children.add(child);
    this.child = child;
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    this.exited = once(child, 'close').then(() => {
      children.delete(child);
    });
    let port: number | undefined;
    const ready = new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (text) => {
        let line: { msg?: unknown; port?: unknown };
        try {
          line = JSON.parse(text) as typeof line;
        } catch {
          return;
        }
        if (line.msg === 'listening' && typeof line.port === 'number') port = line.port;
        if (line.msg === 'ready' && port !== undefined) resolve(port);
      });
      void this.exited.then(() =>
        reject(new Error(`the broker exited before it was ready (${child.exitCode}): ${stderr}`)),
      );
    });
    this.port = await within(ready, 'the broker to log "ready"');
  }
}

async function deploy(mode: Mode): Promise<Deployment> {
  const dir = await tempDir();
  const dataDir = join(dir, 'data');
  return mode === 'close' ? Embedded.start(dataDir) : Cli.start(dataDir);
}

/** Events need the in-process broker. */
function inProcess(d: Deployment): TestBroker {
  assert.ok(d.embedded, 'this test runs an embedded broker');
  return d.embedded;
}

// ---- clients ---------------------------------------------------------------------------------

/** One PUBLISH as a client got it off the wire. */
interface Got {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  subscriptionIds: number[] | undefined;
  messageExpiry: number | undefined;
  properties: IPublishPacket['properties'];
  at: number;
}

interface Connected {
  client: MqttClient;
  connack: IConnackPacket;
  /** Every PUBLISH received, in wire order, from the first packet on. */
  got: Got[];
}

/** MQTT.js, connected (no reconnection), recording every PUBLISH it receives. */
async function mqttConnect(url: string, options: IClientOptions): Promise<Connected> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: SAFETY_MS, ...options });
  cleanups.push(() => client.end(true));
  const got: Got[] = [];
  client.on('packetreceive', (packet) => {
    if (packet.cmd !== 'publish') return;
    const sid = packet.properties?.subscriptionIdentifier;
    got.push({
      topic: packet.topic,
      payload: packet.payload.toString(),
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
      subscriptionIds: sid === undefined ? undefined : Array.isArray(sid) ? sid : [sid],
      messageExpiry: packet.properties?.messageExpiryInterval,
      properties: packet.properties,
      at: Date.now(),
    });
  });
  const connack = await within(
    new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    }),
    `CONNACK for ${options.clientId ?? 'a client'}`,
  );
  // A broker killed under it resets the socket: not this test's failure.
  client.on('error', () => {});
  return { client, connack, got };
}

/** A clean MQTT 5 client for publishing. */
async function publisher(d: Deployment): Promise<MqttClient> {
  return (
    await mqttConnect(d.url, { protocolVersion: 5, clientId: `pub-${Math.random().toString(36).slice(2)}` })
  ).client;
}

/** A RawClient that sent CONNECT (persistent by default) and was accepted, with its CONNACK. */
async function rawConnect(
  port: number,
  connect: Partial<ConnectPacket> & { protocolVersion?: ProtocolVersion },
): Promise<{ raw: RawClient; connack: ConnackPacket }> {
  const version = connect.protocolVersion ?? 5;
  const raw = await RawClient.open(port, version);
  cleanups.push(() => raw.end());
  raw.send({
    type: 'connect',
    protocolVersion: version,
    clean: false,
    keepAlive: 60,
    clientId: '',
    ...connect,
  });
  const connack = await raw.next('connack');
  assert.equal(connack.reasonCode, 0, `${connect.clientId} accepted`);
  return { raw, connack };
}

async function rawSubscribe(raw: RawClient, topicFilter: string, qos: QoS): Promise<void> {
  raw.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter, qos }] });
  const suback = await raw.next('suback');
  assert.deepEqual(suback.reasonCodes, [qos]);
}

/**
 * Normal DISCONNECT, resolved once the broker closed the socket: it detached the session
 * first, so what is published next finds the session offline (works for the CLI too).
 */
async function rawLeave(raw: RawClient): Promise<void> {
  raw.send({ type: 'disconnect' });
  await raw.closedByBroker(SAFETY_MS);
}

/** Resolves when the embedded broker has detached `clientId`'s connection. */
function detached(b: TestBroker, clientId: string): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      const listener = (info: { clientId: string }): void => {
        if (info.clientId !== clientId) return;
        b.broker.off('clientDisconnected', listener);
        resolve();
      };
      b.broker.on('clientDisconnected', listener);
    }),
    `the broker to detach ${clientId}`,
  );
}

/** A persistent MQTT 5 session subscribed to `filter`, then offline. */
async function offlineSubscriber(d: Deployment, clientId: string, filter: string, qos: QoS): Promise<void> {
  const { raw } = await rawConnect(d.port, { clientId, properties: { sessionExpiryInterval: 3600 } });
  await rawSubscribe(raw, filter, qos);
  await rawLeave(raw);
}

function publishPacket(topic: string, payload: string, qos: QoS, packetId: number, dup = false): Packet {
  return { type: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup, packetId };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; the safety net kills it (by its own id) and reports its output. */
function run(command: string, args: string[]): Promise<Run> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SAFETY_MS);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new Error(`${command} could not run (install Debian's mosquitto-clients): ${error.message}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

async function mosquittoPub(d: Deployment, args: string[]): Promise<void> {
  const result = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(d.port), ...args]);
  assert.equal(result.code, 0, `mosquitto_pub ${args.join(' ')}: ${result.stderr}`);
}

const payloads = (got: readonly Got[]): string[] => got.map((m) => m.payload);

// ---- the tests -------------------------------------------------------------------------------

describe('state survives a broker restart', { timeout: 60_000 }, () => {
  test('(1) a persistent session keeps its subscriptions and their options (QoS, No Local, Retain As Published, Retain Handling, Subscription Identifier)', async () => {
    const d = await deploy('close');
    const id = 'opts';
    const opts: IClientOptions = {
      protocolVersion: 5,
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    };
    const first = await mqttConnect(d.url, opts);
    assert.equal(first.connack.sessionPresent, false);
    const c = first.client;
    await c.subscribeAsync('opt/q0/+', { qos: 0 });
    await c.subscribeAsync('opt/q1/#', { qos: 1, properties: { subscriptionIdentifier: 11 } });
    await c.subscribeAsync('opt/nl', { qos: 2, nl: true, properties: { subscriptionIdentifier: 12 } });
    await c.subscribeAsync('opt/rap', { qos: 1, rap: true });
    await c.subscribeAsync('opt/norap', { qos: 1, rap: false });
    await c.subscribeAsync('opt/rh1', { qos: 1, rh: 1 });
    await c.subscribeAsync('opt/rh2', { qos: 1, rh: 2, properties: { subscriptionIdentifier: 13 } });
    // Two overlapping subscriptions: one copy with both identifiers (MQTT-3.3.4-4/5).
    await c.subscribeAsync('opt/both/+', { qos: 1, properties: { subscriptionIdentifier: 21 } });
    await c.subscribeAsync('opt/both/#', { qos: 2, properties: { subscriptionIdentifier: 22 } });
    const before = inProcess(d).broker.broker.sessions.get(id)!;
    const expected = new Map<string, SubscriptionOptions>(
      [...before.subscriptions.values()].map((s) => [s.filter, { ...s.options }]),
    );
    assert.equal(expected.size, 9);
    const gone = detached(inProcess(d), id);
    await c.endAsync();
    await gone;

    await d.restart();
    const restored = inProcess(d).broker.broker.sessions.get(id);
    assert.ok(restored, 'the session is back after the restart');
    assert.deepEqual(
      new Map([...restored.subscriptions.values()].map((s) => [s.filter, s.options])),
      expected,
      'every subscription with exactly its options',
    );

    const again = await mqttConnect(d.url, opts);
    assert.equal(again.connack.sessionPresent, true, 'MQTT-3.2.2-2: session present 1');
    const sub = again.client;
    const pub = await publisher(d);
    const got = again.got;
    const nextMessage = async (n: number, what: string): Promise<Got> => {
      await until(() => got.length >= n, what, SAFETY_MS);
      assert.equal(got.length, n, `exactly one new message for ${what}`);
      return got[n - 1]!;
    };

    // QoS: the lower of the message's and the subscription's (MQTT-3.8.4-8).
    await pub.publishAsync('opt/q0/a', 'q0', { qos: 2 });
    let m = await nextMessage(1, 'QoS 0 subscription');
    assert.deepEqual([m.topic, m.payload, m.qos, m.subscriptionIds], ['opt/q0/a', 'q0', 0, undefined]);

    await pub.publishAsync('opt/q1/a/b', 'q1', { qos: 2 });
    m = await nextMessage(2, 'QoS 1 subscription with identifier 11');
    assert.deepEqual([m.payload, m.qos, m.subscriptionIds], ['q1', 1, [11]]);

    // No Local (MQTT-3.8.3-3): its own message is routed (acknowledged) first and must not come back.
    await sub.publishAsync('opt/nl', 'own', { qos: 1 });
    await pub.publishAsync('opt/nl', 'other', { qos: 2 });
    m = await nextMessage(3, 'No Local subscription');
    assert.deepEqual([m.payload, m.qos, m.subscriptionIds], ['other', 2, [12]], 'not its own message');

    // Retain As Published (MQTT-3.3.1-12/13).
    await pub.publishAsync('opt/rap', 'rap', { qos: 1, retain: true });
    m = await nextMessage(4, 'Retain As Published');
    assert.deepEqual([m.payload, m.retain], ['rap', true]);
    await pub.publishAsync('opt/norap', 'norap', { qos: 1, retain: true });
    m = await nextMessage(5, 'without Retain As Published');
    assert.deepEqual([m.payload, m.retain], ['norap', false]);

    await pub.publishAsync('opt/rh2', 'rh2', { qos: 2 });
    m = await nextMessage(6, 'Retain Handling 2 subscription');
    assert.deepEqual([m.payload, m.qos, m.subscriptionIds], ['rh2', 1, [13]]);

    await pub.publishAsync('opt/both/x', 'both', { qos: 2 });
    m = await nextMessage(7, 'overlapping subscriptions');
    assert.deepEqual([m.payload, m.qos, [...(m.subscriptionIds ?? [])].sort()], ['both', 2, [21, 22]]);

    // Retain Handling 1 (MQTT-3.3.1-10): subscribing again to a filter that survived the
    // restart is not a new subscription, so no retained message is sent.
    await pub.publishAsync('opt/rh1', 'retained', { qos: 1, retain: true });
    m = await nextMessage(8, 'the live copy of the retained message');
    assert.deepEqual([m.payload, m.retain], ['retained', false]);
    const [grant] = await sub.subscribeAsync('opt/rh1', { qos: 1, rh: 1 });
    assert.equal(grant?.qos, 1);
    await pub.publishAsync('opt/rh1', 'marker', { qos: 1 });
    m = await nextMessage(9, 'the marker after subscribing again');
    assert.equal(m.payload, 'marker', 'no retained message before the marker');
  });

  for (const mode of ['close', 'sigkill'] as const) {
    test(`(2) [${mode}] the offline queue (QoS 1 and 2) is delivered after the restart, in order`, async () => {
      const d = await deploy(mode);
      await offlineSubscriber(d, 'queue-v5', 'q/#', 2);
      // A 3.1.1 session for mosquitto_sub to resume; at QoS 1, as libmosquitto hands a QoS 2
      // message over only at PUBREL, so its output order would not be the wire order.
      const { raw } = await rawConnect(d.port, { protocolVersion: 4, clientId: 'queue-mosq' });
      await rawSubscribe(raw, 'q/#', 1);
      await rawLeave(raw);

      const pub = await publisher(d);
      const sent = Array.from({ length: 12 }, (_, i) => ({
        topic: `q/${i % 3}`,
        payload: `m${i}`,
        qos: (i % 2 === 0 ? 1 : 2) as QoS,
      }));
      // All in flight at once: they share commits, yet keep their order.
      await Promise.all(sent.map((s) => pub.publishAsync(s.topic, s.payload, { qos: s.qos })));

      await d.restart();
      const again = await mqttConnect(d.url, {
        protocolVersion: 5,
        clientId: 'queue-v5',
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      assert.equal(again.connack.sessionPresent, true);
      await until(() => again.got.length >= sent.length, 'the queued messages', SAFETY_MS);
      assert.deepEqual(
        again.got.map((m) => ({ topic: m.topic, payload: m.payload, qos: m.qos })),
        sent,
        'every message once, in publish order, at its QoS',
      );
      assert.ok(
        again.got.every((m) => !m.dup),
        'never sent before, so no DUP',
      );

      const mosq = await run('mosquitto_sub', [
        ...['-h', '127.0.0.1', '-p', String(d.port), '-c', '-i', 'queue-mosq', '-q', '1'],
        ...['-t', 'q/#', '-C', String(sent.length), '-W', String(SAFETY_MS / 1000), '-F', '%q %t %p'],
      ]);
      assert.equal(mosq.code, 0, `mosquitto_sub: ${mosq.stderr}`);
      assert.deepEqual(
        mosq.stdout.trim().split('\n'),
        sent.map((s) => `1 ${s.topic} ${s.payload}`),
        'the 3.1.1 session too, each at the QoS of its subscription',
      );
    });
  }

  test('(3) MQTT-4.4.0-1: in-flight messages are resent with DUP and the same packet id; a QoS 2 message past PUBREC gets PUBREL', async () => {
    const d = await deploy('close');
    const connect = {
      protocolVersion: 5,
      clientId: 'inflight',
      properties: { sessionExpiryInterval: 3600, receiveMaximum: 3 },
    } as const;
    const { raw: first } = await rawConnect(d.port, connect);
    await rawSubscribe(first, 'inf/#', 2);
    let pub = await publisher(d);
    await pub.publishAsync('inf/1', 'one', { qos: 1 });
    await pub.publishAsync('inf/2', 'two', { qos: 2 });
    await pub.publishAsync('inf/3', 'three', { qos: 2 });
    // Receive Maximum 3: the fourth stays queued, unsent.
    await pub.publishAsync('inf/4', 'four', { qos: 1 });
    const one = await first.next('publish');
    const two = await first.next('publish');
    const three = await first.next('publish');
    assert.deepEqual(
      [one, two, three].map((p) => [p.payload.toString(), p.qos, p.dup]),
      [
        ['one', 1, false],
        ['two', 2, false],
        ['three', 2, false],
      ],
    );
    // PUBREC for the third only; no PUBACK for the first, nothing for the second.
    first.send({ type: 'pubrec', packetId: three.packetId! });
    const rel = await first.next('pubrel');
    assert.equal(rel.packetId, three.packetId);
    assert.equal(
      first.packets.filter((p) => p.type === 'publish').length,
      0,
      'the fourth waits for the window',
    );

    await d.restart();
    const { raw: second, connack } = await rawConnect(d.port, connect);
    assert.equal(connack.sessionPresent, true);
    await until(() => second.packets.length >= 3, 'the resent packets', SAFETY_MS);
    const [r1, r2, r3] = second.packets.splice(0, 3);
    assert.ok(
      r1?.type === 'publish' && r2?.type === 'publish',
      `two PUBLISH first, got ${r1?.type}, ${r2?.type}`,
    );
    assert.deepEqual(
      [r1, r2].map((p) => [p.topic, p.payload.toString(), p.qos, p.dup, p.packetId]),
      [
        ['inf/1', 'one', 1, true, one.packetId],
        ['inf/2', 'two', 2, true, two.packetId],
      ],
      'resent in order, with DUP and the same packet ids',
    );
    assert.equal(r3?.type, 'pubrel', 'PUBREL, not the PUBLISH');
    assert.equal(r3.packetId, three.packetId);
    assert.equal(second.packets.length, 0, 'nothing else while the window is full');

    // Completing the exchanges frees the window: the queued fourth goes out, new.
    second.send({ type: 'puback', packetId: one.packetId! });
    const four = await second.next('publish');
    assert.deepEqual([four.payload.toString(), four.qos, four.dup], ['four', 1, false]);
    assert.ok(
      four.packetId !== two.packetId && four.packetId !== three.packetId,
      'MQTT-2.2.1-3: a packet id not in use',
    );
    second.send({ type: 'pubrec', packetId: two.packetId! });
    assert.equal((await second.next('pubrel')).packetId, two.packetId);
    second.send({ type: 'pubcomp', packetId: two.packetId! });
    second.send({ type: 'pubcomp', packetId: three.packetId! });
    second.send({ type: 'puback', packetId: four.packetId! });
    // Packets are handled in order: PINGRESP means the acknowledgements were taken.
    second.send({ type: 'pingreq' });
    await second.next('pingresp');

    // All acknowledged: after another restart nothing is resent.
    await d.restart();
    const { raw: third, connack: connack3 } = await rawConnect(d.port, connect);
    assert.equal(connack3.sessionPresent, true);
    pub = await publisher(d);
    await pub.publishAsync('inf/5', 'marker', { qos: 1 });
    const next = await third.next('publish');
    assert.deepEqual([next.payload.toString(), next.dup], ['marker', false]);
    assert.deepEqual(
      third.packets.map((p) => p.type),
      [],
      'no resend of completed deliveries',
    );
  });

  for (const [mode, version] of [
    ['close', 5],
    ['close', 4],
    ['sigkill', 5],
  ] as const) {
    test(`(4) [${mode}, v${version}] an inbound QoS 2 id awaiting PUBREL survives: the resent PUBLISH is not delivered twice`, async () => {
      const d = await deploy(mode);
      await offlineSubscriber(d, 'in-sub', 'in/#', 2);
      const connect = {
        protocolVersion: version,
        clientId: 'in-pub',
        ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      };
      const { raw: first } = await rawConnect(d.port, connect);
      first.send(publishPacket('in/x', 'exactly once', 2, 42));
      const rec = await first.next('pubrec');
      assert.equal(rec.packetId, 42);
      assert.equal(rec.reasonCode ?? 0, 0);

      // No PUBREL before the restart.
      await d.restart();
      const { raw: second, connack } = await rawConnect(d.port, connect);
      assert.equal(connack.sessionPresent, true);
      second.send(publishPacket('in/x', 'exactly once', 2, 42, true));
      const rec2 = await second.next('pubrec');
      assert.equal(rec2.packetId, 42);
      assert.equal(rec2.reasonCode ?? 0, 0);
      second.send({ type: 'pubrel', packetId: 42 });
      const comp = await second.next('pubcomp');
      assert.equal(comp.packetId, 42);
      assert.equal(comp.reasonCode ?? 0, 0, 'the id was known (not 0x92 Packet Identifier not found)');
      second.send(publishPacket('in/x', 'marker', 1, 43));
      assert.equal((await second.next('puback')).packetId, 43);

      const sub = await mqttConnect(d.url, {
        protocolVersion: 5,
        clientId: 'in-sub',
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      assert.equal(sub.connack.sessionPresent, true);
      await until(() => sub.got.some((m) => m.payload === 'marker'), 'the marker', SAFETY_MS).catch(
        (error: Error) => {
          throw new Error(`${error.message}; got ${JSON.stringify(payloads(sub.got))}`);
        },
      );
      assert.deepEqual(payloads(sub.got), ['exactly once', 'marker'], 'MQTT-4.3.3-10: delivered once');
    });
  }

  for (const mode of ['close', 'sigkill'] as const) {
    test(`(5) [${mode}] retained messages (set, replaced, cleared) survive`, async () => {
      const d = await deploy(mode);
      // Mosquitto's client waits for PUBACK, which comes once the store has synced.
      await mosquittoPub(d, ['-q', '1', '-r', '-t', 'ret/a', '-m', 'a1']);
      await mosquittoPub(d, ['-q', '1', '-r', '-t', 'ret/b', '-m', 'b1']);
      await mosquittoPub(d, ['-q', '1', '-r', '-t', 'ret/c', '-m', 'c1']);
      await mosquittoPub(d, ['-q', '1', '-r', '-t', 'ret/a', '-m', 'a2']);
      await mosquittoPub(d, ['-q', '1', '-r', '-t', 'ret/b', '-n']);
      let pub = await publisher(d);
      const properties = {
        contentType: 'text/plain',
        responseTopic: 'ret/reply',
        correlationData: Buffer.from([1, 2, 3]),
        payloadFormatIndicator: true,
        userProperties: { origin: 'restart-test' },
      };
      await pub.publishAsync('ret/d', 'd1', { qos: 2, retain: true, properties });
      // Cleared and set again, then cleared for good.
      await pub.publishAsync('ret/e', 'e1', { qos: 1, retain: true });
      await pub.publishAsync('ret/e', '', { qos: 1, retain: true });

      await d.restart();
      const sub = await mqttConnect(d.url, { protocolVersion: 5, clientId: 'ret-sub' });
      await sub.client.subscribeAsync('ret/#', { qos: 2 });
      pub = await publisher(d);
      await pub.publishAsync('ret/marker', 'marker', { qos: 1 });
      await until(() => sub.got.some((m) => m.payload === 'marker'), 'the marker', SAFETY_MS);
      const retained = sub.got.filter((m) => m.payload !== 'marker');
      assert.deepEqual(
        retained.map((m) => [m.topic, m.payload, m.qos, m.retain]).sort(),
        [
          ['ret/a', 'a2', 1, true],
          ['ret/c', 'c1', 1, true],
          ['ret/d', 'd1', 2, true],
        ],
        'the replacement, not the original; nothing for the cleared topics',
      );
      const d1 = retained.find((m) => m.topic === 'ret/d')!;
      assert.equal(d1.properties?.contentType, 'text/plain');
      assert.equal(d1.properties?.responseTopic, 'ret/reply');
      assert.deepEqual(d1.properties?.correlationData, Buffer.from([1, 2, 3]));
      assert.equal(d1.properties?.payloadFormatIndicator, true);
      assert.deepEqual({ ...d1.properties?.userProperties }, { origin: 'restart-test' });
    });
  }

  test('(6) a pending delayed will (Will Delay Interval 2 s) survives the restart and is published when due', async () => {
    const d = await deploy('close');
    const watchOpts: IClientOptions = {
      protocolVersion: 5,
      clientId: 'will-watch',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    };
    const watch = await mqttConnect(d.url, watchOpts);
    await watch.client.subscribeAsync('will/#', { qos: 1 });
    const watching = detached(inProcess(d), 'will-watch');
    await watch.client.endAsync();
    await watching;

    const { raw } = await rawConnect(d.port, {
      clientId: 'will-delayed',
      properties: { sessionExpiryInterval: 3600 },
      will: {
        topic: 'will/delayed',
        payload: Buffer.from('gone'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 2, contentType: 'text/plain' },
      },
    });
    const droppedAt = Date.now();
    const gone = detached(inProcess(d), 'will-delayed');
    raw.end(); // no DISCONNECT: the will is due in 2 s
    await gone;

    await d.restart();
    const restored = inProcess(d).broker.broker.sessions.get('will-delayed');
    assert.ok(restored, 'the session is back after the restart');
    const again = await mqttConnect(d.url, watchOpts);
    assert.equal(again.connack.sessionPresent, true);
    await until(() => again.got.length > 0, 'the delayed will', SAFETY_MS);
    const [will] = again.got;
    assert.deepEqual([will!.topic, will!.payload, will!.qos], ['will/delayed', 'gone', 1]);
    assert.equal(will!.properties?.contentType, 'text/plain');
    assert.ok(
      will!.at >= droppedAt + 2000,
      `not before its delay: ${will!.at - droppedAt} ms after the drop`,
    );
    assert.equal(restored.pendingWill, undefined, 'published, so no longer pending');
  });

  test('(6b) a delayed will that came due while the broker was down is published at start; one cancelled by reconnecting is not', async () => {
    const d = await deploy('close');
    const b = inProcess(d);
    const watchOpts: IClientOptions = {
      protocolVersion: 5,
      clientId: 'due-watch',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    };
    const watch = await mqttConnect(d.url, watchOpts);
    await watch.client.subscribeAsync('due/#', { qos: 1 });
    const watching = detached(b, 'due-watch');
    await watch.client.endAsync();
    await watching;

    const will = (payload: string, delay: number) => ({
      topic: 'due/will',
      payload: Buffer.from(payload),
      qos: 1 as const,
      retain: false,
      properties: { willDelayInterval: delay },
    });
    const { raw: overdue } = await rawConnect(d.port, {
      clientId: 'due-overdue',
      properties: { sessionExpiryInterval: 3600 },
      will: will('overdue', 1),
    });
    const { raw: cancelled } = await rawConnect(d.port, {
      clientId: 'due-cancelled',
      properties: { sessionExpiryInterval: 3600 },
      will: will('cancelled', 3),
    });
    const gone = Promise.all([detached(b, 'due-overdue'), detached(b, 'due-cancelled')]);
    overdue.end();
    cancelled.end();
    await gone;
    const droppedAt = b.broker.broker.sessions.get('due-overdue')!.disconnectedAt!;

    // Down for longer than the 1 s delay; the 3 s one is still pending at the restart.
    await d.restart(() => sleepUntil(droppedAt + 1000 + 200));
    // MQTT-3.1.3-9: the client is back before the delay ended, so its will is not published.
    const back = await rawConnect(d.port, {
      clientId: 'due-cancelled',
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(back.connack.sessionPresent, true);
    assert.ok(Date.now() < droppedAt + 3000, 'precondition: back before the 3 s will was due');

    const again = await mqttConnect(d.url, watchOpts);
    await until(() => again.got.length > 0, 'the overdue will', SAFETY_MS);
    // The cancelled will would have been due 3 s after the drop: wait past that, then a marker.
    await sleepUntil(droppedAt + 3000 + 200);
    const pub = await publisher(d);
    await pub.publishAsync('due/marker', 'marker', { qos: 1 });
    await until(() => again.got.some((m) => m.payload === 'marker'), 'the marker', SAFETY_MS);
    assert.deepEqual(
      payloads(again.got),
      ['overdue', 'marker'],
      'the overdue will once, the cancelled one never',
    );
  });

  test('(6c) [sigkill] the will of a client still connected when the broker is killed is published after the restart', async () => {
    const d = await deploy('sigkill');
    await offlineSubscriber(d, 'live-will-watch', 'live-will/#', 1);
    // Connected, persistent, with a will (no delay) and one with a 1 s delay: neither may be
    // lost when the broker dies under them, for their connections end without DISCONNECT.
    await rawConnect(d.port, {
      clientId: 'live-will-now',
      properties: { sessionExpiryInterval: 3600 },
      will: { topic: 'live-will/now', payload: Buffer.from('crashed'), qos: 1, retain: false },
    });
    await rawConnect(d.port, {
      clientId: 'live-will-later',
      properties: { sessionExpiryInterval: 3600 },
      will: {
        topic: 'live-will/later',
        payload: Buffer.from('crashed later'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
    });
    // A marker through the same path shows the sessions (and their wills) were stored.
    const pub = await publisher(d);
    await pub.publishAsync('live-will/marker', 'marker', { qos: 1 });

    await d.restart();
    const watch = await mqttConnect(d.url, {
      protocolVersion: 5,
      clientId: 'live-will-watch',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(watch.connack.sessionPresent, true);
    await until(() => watch.got.length >= 3, 'the marker and both wills', SAFETY_MS);
    assert.deepEqual(watch.got.map((g) => g.payload).sort(), ['crashed', 'crashed later', 'marker']);
  });

  test('(7) session expiry counts from the stored disconnect time: expired while down (its will published at start), expiring on time after, long-lived kept', async () => {
    const d = await deploy('close');
    const b = inProcess(d);
    const watchOpts: IClientOptions = {
      protocolVersion: 5,
      clientId: 'exp-watch',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    };
    const watch = await mqttConnect(d.url, watchOpts);
    await watch.client.subscribeAsync('expwill/#', { qos: 1 });
    const watching = detached(b, 'exp-watch');
    await watch.client.endAsync();
    await watching;

    // Expires 2 s after dropping; its will waits for a delay far longer, so it goes at session end.
    const { raw: short } = await rawConnect(d.port, {
      clientId: 'exp-short',
      properties: { sessionExpiryInterval: 2 },
      will: {
        topic: 'expwill/short',
        payload: Buffer.from('short expired'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 3600 },
      },
    });
    await rawSubscribe(short, 'exp/short', 1);
    // Expires 5 s after leaving: after the restart, but counted from before it.
    const { raw: mid } = await rawConnect(d.port, {
      clientId: 'exp-mid',
      properties: { sessionExpiryInterval: 5 },
    });
    await rawSubscribe(mid, 'exp/mid', 1);
    const { raw: long } = await rawConnect(d.port, {
      clientId: 'exp-long',
      properties: { sessionExpiryInterval: 3600 },
    });
    await rawSubscribe(long, 'exp/long', 1);
    // Connects for an hour, leaves with 2 s (MQTT 5 DISCONNECT Session Expiry Interval).
    const { raw: changed } = await rawConnect(d.port, {
      clientId: 'exp-changed',
      properties: { sessionExpiryInterval: 3600 },
    });
    await rawSubscribe(changed, 'exp/changed', 1);

    const shortGone = detached(b, 'exp-short');
    short.end();
    await shortGone;
    await rawLeave(mid);
    await rawLeave(long);
    changed.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 2 } });
    await changed.closedByBroker(SAFETY_MS);
    const at = (id: string): number => b.broker.broker.sessions.get(id)!.disconnectedAt!;
    const shortAt = at('exp-short');
    const midAt = at('exp-mid');
    const changedAt = at('exp-changed');

    let restartedAt = 0;
    await d.restart(async () => {
      // Down for longer than the 2 s expiries.
      await sleepUntil(Math.max(shortAt, changedAt) + 2000 + 200);
      restartedAt = Date.now();
    });
    const b2 = inProcess(d);
    assert.ok(restartedAt < midAt + 5000, 'precondition: the 5 s session is still alive at the restart');
    const midExpired = within(
      new Promise<number>((resolve) => {
        b2.broker.on('sessionExpired', (clientId) => {
          if (clientId === 'exp-mid') resolve(Date.now());
        });
      }),
      'exp-mid to expire',
    );
    assert.equal(b2.broker.broker.sessions.has('exp-short'), false, 'expired while the broker was down');
    assert.equal(
      b2.broker.broker.sessions.has('exp-changed'),
      false,
      'the expiry set at DISCONNECT was kept',
    );
    assert.equal(b2.broker.broker.sessions.has('exp-mid'), true);

    const watch2 = await mqttConnect(d.url, watchOpts);
    assert.equal(watch2.connack.sessionPresent, true);
    await until(() => watch2.got.length > 0, "the expired session's will", SAFETY_MS);
    assert.deepEqual(
      watch2.got.map((m) => [m.topic, m.payload]),
      [['expwill/short', 'short expired']],
      'MQTT 3.1.3.2.2: the will is published when its session ends, here at start',
    );

    const expiredAt = await midExpired;
    assert.ok(expiredAt >= midAt + 5000, 'not before its expiry');
    assert.ok(
      expiredAt < restartedAt + 5000,
      `counted from the stored disconnect time, not from the restart (${expiredAt - restartedAt} ms after it)`,
    );

    const shortAgain = await rawConnect(d.port, {
      clientId: 'exp-short',
      properties: { sessionExpiryInterval: 2 },
    });
    assert.equal(shortAgain.connack.sessionPresent, false, 'session present 0 after expiry');
    const midAgain = await rawConnect(d.port, {
      clientId: 'exp-mid',
      properties: { sessionExpiryInterval: 5 },
    });
    assert.equal(midAgain.connack.sessionPresent, false);
    const changedAgain = await rawConnect(d.port, {
      clientId: 'exp-changed',
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(changedAgain.connack.sessionPresent, false);
    const longAgain = await rawConnect(d.port, {
      clientId: 'exp-long',
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(longAgain.connack.sessionPresent, true, 'the long-lived session is present');
    // It still has its subscription.
    const pub = await publisher(d);
    await pub.publishAsync('exp/long', 'still subscribed', { qos: 1 });
    const m = await longAgain.raw.next('publish');
    assert.equal(m.payload.toString(), 'still subscribed');
  });

  test('(8) Message Expiry across a restart: an expired queued message is dropped, a live one is delivered with the remaining interval', async () => {
    const d = await deploy('close');
    await offlineSubscriber(d, 'mx-sub', 'mx/#', 2);
    const pub = await publisher(d);
    await pub.publishAsync('mx/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync('mx/long', 'long', { qos: 2, properties: { messageExpiryInterval: 3600 } });
    await pub.publishAsync('mx/none', 'none', { qos: 1 });
    await pub.publishAsync('mxr/short', 'short', {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 1 },
    });
    await pub.publishAsync('mxr/long', 'long', {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 3600 },
    });
    const publishedBy = Date.now();

    // Down for 2 s: the 1 s messages expire meanwhile.
    await d.restart(() => sleepUntil(publishedBy + 2000));
    const sub = await mqttConnect(d.url, {
      protocolVersion: 5,
      clientId: 'mx-sub',
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(sub.connack.sessionPresent, true);
    const pub2 = await publisher(d);
    await pub2.publishAsync('mx/marker', 'marker', { qos: 1 });
    await until(() => sub.got.some((m) => m.payload === 'marker'), 'the marker', SAFETY_MS);
    assert.deepEqual(
      sub.got.map((m) => [m.topic, m.qos]),
      [
        ['mx/long', 2],
        ['mx/none', 1],
        ['mx/marker', 1],
      ],
      'MQTT-3.3.2-5: the expired message is not delivered',
    );
    const long = sub.got[0]!;
    assert.ok(
      long.messageExpiry !== undefined && long.messageExpiry <= 3598 && long.messageExpiry > 0,
      `MQTT-3.3.2-6: the remaining interval (${long.messageExpiry}) counts the time down`,
    );
    assert.equal(sub.got[1]!.messageExpiry, undefined, 'no expiry stays no expiry');

    const reader = await mqttConnect(d.url, { protocolVersion: 5, clientId: 'mx-reader' });
    await reader.client.subscribeAsync('mxr/#', { qos: 1 });
    await pub2.publishAsync('mxr/marker', 'marker', { qos: 1 });
    await until(() => reader.got.some((m) => m.payload === 'marker'), 'the retained marker', SAFETY_MS);
    assert.deepEqual(
      reader.got.map((m) => [m.topic, m.retain]),
      [
        ['mxr/long', true],
        ['mxr/marker', false],
      ],
      'an expired retained message is gone',
    );
    const retained = reader.got[0]!;
    assert.ok(
      retained.messageExpiry !== undefined && retained.messageExpiry <= 3598,
      `retained: remaining interval ${retained.messageExpiry}`,
    );
  });

  test('(9) a clean (non-persistent) session leaves nothing in the store', async () => {
    const d = await deploy('close');
    const b = inProcess(d);
    // The control: a persistent session, offline, that must be in the store with its queue.
    await offlineSubscriber(d, 'kept', 'clean/#', 1);
    const pub = await publisher(d);

    // 5.0 Clean Start with Session Expiry 0; it holds an unacknowledged delivery and an inbound QoS 2 id.
    const { raw: v5 } = await rawConnect(d.port, { clientId: 'clean-v5', clean: true });
    await rawSubscribe(v5, 'clean/#', 2);
    v5.send(publishPacket('other/x', 'pending PUBREL', 2, 7));
    assert.equal((await v5.next('pubrec')).packetId, 7);
    await pub.publishAsync('clean/x', 'unacked', { qos: 2 });
    assert.equal((await v5.next('publish')).payload.toString(), 'unacked');

    // 3.1.1 clean session.
    const { raw: v4 } = await rawConnect(d.port, { protocolVersion: 4, clientId: 'clean-v4', clean: true });
    await rawSubscribe(v4, 'clean/#', 1);

    // A persistent session taken over by a clean one.
    const { raw: was } = await rawConnect(d.port, {
      clientId: 'clean-was',
      properties: { sessionExpiryInterval: 3600 },
    });
    await rawSubscribe(was, 'clean/#', 1);
    await rawLeave(was);
    await pub.publishAsync('clean/y', 'queued for clean-was', { qos: 1 });
    const { raw: wasClean } = await rawConnect(d.port, { clientId: 'clean-was', clean: true });
    await rawSubscribe(wasClean, 'clean/#', 1);

    // A persistent session ended by DISCONNECT with Session Expiry 0.
    const { raw: disc } = await rawConnect(d.port, {
      clientId: 'clean-disc',
      properties: { sessionExpiryInterval: 3600 },
    });
    await rawSubscribe(disc, 'clean/#', 1);
    disc.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await disc.closedByBroker(SAFETY_MS);

    // A persistent session resumed (Clean Start 0) with Session Expiry 0: it lasts the connection.
    const { raw: res } = await rawConnect(d.port, {
      clientId: 'clean-resumed',
      properties: { sessionExpiryInterval: 3600 },
    });
    await rawSubscribe(res, 'clean/#', 1);
    await rawLeave(res);
    const { raw: resumed, connack: resumedAck } = await rawConnect(d.port, { clientId: 'clean-resumed' });
    assert.equal(resumedAck.sessionPresent, true);
    await rawSubscribe(resumed, 'clean/#', 1);

    const v4Gone = detached(b, 'clean-v4');
    v4.end();
    await v4Gone;

    let stored: string[] = [];
    // clean-v5, clean-was and clean-resumed are still connected when the broker closes.
    await d.restart(async () => {
      const store = new DurableStore({ directory: (d as Embedded).dataDir });
      const state = await store.open(Date.now());
      await store.close();
      stored = state.sessions.map((s) => s.record.clientId).sort();
    });
    assert.deepEqual(stored, ['kept'], 'only the persistent session is in the store');

    for (const [clientId, version] of [
      ['clean-v5', 5],
      ['clean-v4', 4],
      ['clean-was', 5],
      ['clean-disc', 5],
      ['clean-resumed', 5],
    ] as const) {
      const { raw, connack } = await rawConnect(d.port, {
        protocolVersion: version,
        clientId,
        ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      });
      assert.equal(connack.sessionPresent, false, `${clientId}: no session after the restart`);
      if (clientId === 'clean-v5') {
        raw.send({ type: 'pubrel', packetId: 7 });
        const comp = await raw.next('pubcomp');
        assert.equal(comp.reasonCode, 0x92, 'the inbound QoS 2 id was not kept');
      }
      raw.end();
    }
    const kept = await rawConnect(d.port, { clientId: 'kept', properties: { sessionExpiryInterval: 3600 } });
    assert.equal(kept.connack.sessionPresent, true);
    assert.equal((await kept.raw.next('publish')).payload.toString(), 'unacked', 'its queue survived');
    assert.equal((await kept.raw.next('publish')).payload.toString(), 'queued for clean-was');
  });
});
