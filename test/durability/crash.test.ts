/**
 * Crash test of the broker process: nothing acknowledged is lost, QoS 2 stays exactly once.
 *
 * A broker process (the CLI, `--data <tmpdir>`) runs under QoS 1 and QoS 2 load and is killed
 * with SIGKILL several times at seeded random moments, each time restarted on the same data
 * directory. The seed is printed; `CRASH_SEED=<n>` repeats a run's kill timing (the load itself
 * depends on scheduling, so a repeat is close, not identical). `CRASH_MEMORY=1` runs the broker
 * with `--memory` instead: the test must then fail.
 *
 * Publishers (every payload is unique, `<publisher>:<n>`, so a message is known by its payload):
 * - `a`: MQTT.js 3.1.1, clean session, QoS 1. Acknowledged when MQTT.js calls back (PUBACK).
 * - `b`: MQTT.js 5.0, clean start, no session expiry, QoS 2. Acknowledged when MQTT.js calls
 *   back (PUBCOMP). Both MQTT.js publishers get a new client per broker run and never
 *   republish: with a clean session an unacknowledged message is simply in doubt.
 * - `c`: our codec over a socket (`Peer`), 3.1.1 persistent session, QoS 2.
 * - `d`: `Peer`, 5.0 persistent session (expiry one hour), QoS 1 and 2 alternately.
 * - `r`: `Peer`, 5.0 clean start, QoS 1 and 2 alternately, RETAIN set, over six topics; every
 *   seventh is empty (deletes the retained message; empty payloads are left out of the
 *   delivery checks). At most one publish per topic awaits its acknowledgement, so the order
 *   of the retained publishes of a topic is the order they were acknowledged in.
 * Why our own codec for `c`, `d` and `r`: the test must know exactly which acknowledgements
 * arrived and what the client's session state is across reconnections. A QoS 1 publish is
 * acknowledged by PUBACK, a QoS 2 publish by PUBREC (the broker sends PUBREC only once the
 * message is stored, so PUBREC is where it took ownership; PUBCOMP only confirms the
 * release). The persistent publishers act as the protocol says on resuming (MQTT-4.4.0-1):
 * every PUBLISH without its PUBACK/PUBREC is sent again with DUP and the same packet id,
 * every PUBREL without its PUBCOMP again; their packet ids cycle over a few more than their
 * window, so ids are reused soon after PUBCOMP. The clean `r` forgets its in-flight state.
 *
 * Subscribers, all persistent (3.1.1 clean session 0; 5.0 Session Expiry 0xFFFFFFFF, Clean
 * Start 1 the first time and 0 afterwards), with wildcard and exact filters at QoS 1 and 2:
 * - online (`sA`, `sB` MQTT.js; `sC`, `sD` Peer): subscribed at the start; after each restart
 *   they reconnect without subscribing again and keep consuming;
 * - offline (`oA` MQTT.js; `oB`, `oC` Peer): connect and subscribe at the start, disconnect
 *   normally, and come back only after the last restart.
 * Receiving QoS 2 correctly across reconnections needs session state on the client too:
 * - MQTT.js stores an incoming QoS 2 PUBLISH in its `incomingStore` and emits it when PUBREL
 *   arrives (method A of MQTT 4.3.3). Each broker run gets a new MQTT.js client, so each
 *   subscriber passes one `mqtt.Store` to all of them: a PUBREL resent after a restart finds
 *   its message.
 * - `Peer` subscribers deliver on PUBLISH and keep the packet id until PUBREL (method B):
 *   a PUBLISH with an id still awaiting PUBREL is acknowledged again but not delivered again.
 *   That set survives their reconnections. They dedupe by packet id only, as the protocol says.
 * What a subscriber's application received is what is checked.
 *
 * The broker's queue bound is lifted (a config file): the offline subscribers hold everything.
 * Its in-flight window is small, so at a kill some deliveries are in flight and some queued.
 * After the last restart everyone reconnects, each publisher sends a last batch (all of it
 * acknowledged), and then a QoS 2 marker goes to each subscriber on a topic of its own: it is
 * queued behind everything else, so once the application has it the session is drained.
 *
 * Each of these broker faults made it fail (they are fixed): a QoS 2 PUBLISH sent before its
 * packet id was stored (resent after a crash under a new id: a duplicate for method B, and a
 * later message under the id the client still held dropped as a duplicate); PUBREL sent before
 * the PUBREC was stored (the message sent again after the client completed it); PUBCOMP sent
 * before the inbound id was forgotten (the publisher's next message under that id dropped).
 * So did a store that resolves writes before their commit, and `--memory`.
 *
 * Checked, over the whole run:
 * - every acknowledged message reached every persistent subscriber whose filters match it,
 *   at the QoS of the best matching subscription capped by the message's (at least once);
 * - no QoS 2 delivery reached an application twice, acknowledged or not (exactly once);
 * - no subscriber got a payload never published, nor one its filters do not match;
 * - every reconnection of a persistent session found it (session present 1);
 * - right after the last restart a fresh subscriber gets, per retained topic, the last
 *   acknowledged retained payload, or one published after it whose acknowledgement the kill
 *   cut off; at the end (everything acknowledged) exactly the last acknowledged one.
 * Waits are for events, with safety timeouts only; the kill moments come from the seed (after
 * a random number of further acknowledgements, plus a random few milliseconds).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import {
  type ConnackPacket,
  type ConnectPacket,
  encode,
  MqttDecoder,
  type Packet,
  type ProtocolVersion,
  type QoS,
} from '../../src/codec/mqtt/index.js';

/** dist/test/durability/ -> dist/src/cli/main.js */
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
/** Only against a hang: every wait is for an event. */
const SAFETY_MS = 30_000;
const SEED = process.env.CRASH_SEED === undefined ? randomInt(1, 2 ** 31) : Number(process.env.CRASH_SEED);
const MEMORY = process.env.CRASH_MEMORY === '1';
/** Messages each publisher sends after the last restart, all acknowledged. */
const FINAL_BATCH = 100;
/** Unacknowledged publishes per publisher. */
const WINDOW = 8;
const NEVER_EXPIRES = 0xffff_ffff;

/** mulberry32: a small seeded generator, so a seed repeats the kill timing. */
function generator(seed: number): (below: number) => number {
  let a = seed >>> 0;
  return (below) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below);
  };
}

function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = SAFETY_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(predicate: () => boolean, what: string, ms = SAFETY_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// ---------------------------------------------------------------------------------------------
// What was published and acknowledged

interface Sent {
  publisher: string;
  topic: string;
  /** Unique, or empty for a retained delete. */
  payload: string;
  qos: 1 | 2;
  retain: boolean;
  acked: boolean;
}

class Ledger {
  /** By key (`<publisher>:<n>`); the payload is the key unless empty. */
  readonly messages = new Map<string, Sent>();
  readonly byPayload = new Map<string, Sent>();
  acks = 0;
  /** Per retained topic: the last acknowledged payload ('' cleared) and those sent after it. */
  readonly retained = new Map<string, { acked: string; pending: string[] }>();
  /** Anything wrong that is not a delivery (refused publishes, client errors). */
  readonly problems: string[] = [];

  sent(key: string, message: Sent): void {
    this.messages.set(key, message);
    if (message.payload !== '') this.byPayload.set(message.payload, message);
    if (message.retain) this.retainedOf(message.topic).pending.push(message.payload);
  }

  acked(key: string): void {
    const message = this.messages.get(key)!;
    if (message.acked) return;
    message.acked = true;
    this.acks++;
    if (message.retain) {
      const r = this.retainedOf(message.topic);
      r.acked = message.payload;
      r.pending = [];
    }
  }

  private retainedOf(topic: string): { acked: string; pending: string[] } {
    let r = this.retained.get(topic);
    if (r === undefined) {
      r = { acked: '', pending: [] };
      this.retained.set(topic, r);
    }
    return r;
  }
}

// ---------------------------------------------------------------------------------------------
// The broker process

class BrokerProcess {
  private exitCode: number | null | undefined;
  private readonly lines: string[] = [];
  private stderr = '';

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly exited: Promise<void>,
  ) {}

  static async start(dataDir: string, configFile: string): Promise<BrokerProcess> {
    const store = MEMORY ? ['--memory'] : ['--data', dataDir];
    const child = spawn(
      process.execPath,
      [MAIN, '--allow-anonymous', '--config', configFile, '--listen', 'mqtt://127.0.0.1:0', ...store],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const lines: string[] = [];
    let port: number | undefined;
    let ready: () => void = () => {};
    const isReady = new Promise<void>((resolve) => {
      ready = resolve;
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'listening') port = entry.port;
        if (entry.msg === 'ready') ready();
      } catch {
        // not a log line
      }
    });
    const exited = once(child, 'close').then(() => undefined);
    await withTimeout(
      Promise.race([
        isReady,
        exited.then(() => {
          throw new Error(`the broker exited at start: ${stderr}`);
        }),
      ]),
      'the broker to start',
    );
    const broker = new BrokerProcess(child, port!, exited);
    broker.stderr = stderr;
    broker.lines.push(...lines);
    child.stderr!.on('data', (chunk: string) => {
      broker.stderr += chunk;
    });
    void exited.then(() => {
      broker.exitCode = child.exitCode;
    });
    return broker;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await withTimeout(this.exited, 'the killed broker to exit');
  }

  /** SIGTERM: a graceful stop, which must succeed. */
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await withTimeout(this.exited, 'the broker to stop');
    assert.equal(this.child.exitCode, 0, `the broker's graceful stop failed: ${this.stderr}`);
  }

  errors(): string {
    return this.stderr;
  }
}

// ---------------------------------------------------------------------------------------------
// A bare MQTT connection over our codec

type Handler = (packet: Packet, peer: Peer) => void;

class Peer {
  isClosed = false;
  readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    readonly version: ProtocolVersion,
    handler: Handler,
    onConnack: (connack: ConnackPacket) => void,
  ) {
    const decoder = new MqttDecoder(
      (packet) => (packet.type === 'connack' ? onConnack(packet) : handler(packet, this)),
      { protocolVersion: version },
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.feed(chunk);
      } catch (error) {
        socket.destroy(error as Error);
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  /**
   * Connects and waits for CONNACK. `handler` gets every later packet, from the first one
   * (possibly before this resolves), so no PUBLISH that follows CONNACK closely is missed.
   */
  static async connect(
    port: number,
    connect: ConnectPacket,
    handler: Handler,
  ): Promise<[Peer, ConnackPacket]> {
    const socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
    await withTimeout(once(socket, 'connect'), 'a TCP connection');
    let connacked: (connack: ConnackPacket) => void = () => {};
    const connack = new Promise<ConnackPacket>((resolve) => {
      connacked = resolve;
    });
    const peer = new Peer(socket, connect.protocolVersion, handler, (p) => connacked(p));
    peer.send(connect);
    const answer = await withTimeout(
      Promise.race([
        connack,
        peer.closed.then(() => {
          throw new Error(`${connect.clientId}: connection closed before CONNACK`);
        }),
      ]),
      `CONNACK for ${connect.clientId}`,
    );
    if (answer.reasonCode !== 0) throw new Error(`${connect.clientId} refused: ${answer.reasonCode}`);
    return [peer, answer];
  }

  send(packet: Packet): void {
    if (!this.isClosed) this.socket.write(encode(packet, this.version));
  }

  async disconnect(): Promise<void> {
    this.send({ type: 'disconnect' });
    this.socket.end();
    await withTimeout(this.closed, 'a disconnection');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function connectPacket(
  clientId: string,
  version: ProtocolVersion,
  persistent: boolean,
  fresh: boolean,
): ConnectPacket {
  if (version === 5) {
    return {
      type: 'connect',
      protocolVersion: 5,
      clean: !persistent || fresh,
      keepAlive: 60,
      clientId,
      properties: persistent ? { sessionExpiryInterval: NEVER_EXPIRES } : {},
    };
  }
  return { type: 'connect', protocolVersion: version, clean: !persistent, keepAlive: 60, clientId };
}

/** The CONNACK of an MQTT.js client, or its first error. */
function connected(client: MqttClient): Promise<IConnackPacket> {
  return new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
    client.once('close', () => reject(new Error(`${client.options.clientId}: closed before CONNACK`)));
  });
}

// ---------------------------------------------------------------------------------------------
// Subscribers

interface Subscriber {
  readonly id: string;
  readonly filters: readonly [string, QoS][];
  readonly offline: boolean;
  /** Payload -> the QoS of each time the application got it. */
  readonly received: Map<string, number[]>;
  /** Session Present of every reconnection (not the first connection). */
  readonly resumed: boolean[];
  readonly markers: Set<string>;
  /** Connects (the first time: a new session, subscribed to `filters`). */
  connect(port: number): Promise<void>;
  subscribe(filter: string, qos: QoS): Promise<void>;
  disconnect(): Promise<void>;
  /** Resolves when the connection is gone (after a kill). */
  lost(): Promise<void>;
  destroy(): void;
}

abstract class SubscriberBase {
  readonly received = new Map<string, number[]>();
  readonly resumed: boolean[] = [];
  readonly markers = new Set<string>();
  protected connects = 0;

  constructor(
    readonly id: string,
    readonly version: 4 | 5,
    readonly filters: readonly [string, QoS][],
    readonly offline: boolean,
  ) {}

  protected deliver(topic: string, payload: string, qos: number): void {
    if (topic.startsWith('crash-end/')) {
      this.markers.add(payload);
      return;
    }
    if (payload === '') return;
    let got = this.received.get(payload);
    if (got === undefined) {
      got = [];
      this.received.set(payload, got);
    }
    got.push(qos);
  }

  protected noteSession(sessionPresent: boolean): void {
    if (this.connects++ > 0) this.resumed.push(sessionPresent);
  }
}

/** MQTT.js: QoS 2 delivered on PUBREL from its incoming store, one store across clients. */
class MqttJsSubscriber extends SubscriberBase implements Subscriber {
  // `clean: false`: ending a client must not empty the store the next client uses.
  private readonly incomingStore = new mqtt.Store({ clean: false });
  private client: MqttClient | undefined;
  private closed: Promise<void> = Promise.resolve();

  async connect(port: number): Promise<void> {
    const fresh = this.connects === 0;
    const options: IClientOptions = {
      clientId: this.id,
      protocolVersion: this.version,
      clean: this.version === 5 && fresh,
      reconnectPeriod: 0,
      connectTimeout: SAFETY_MS,
      resubscribe: false,
      incomingStore: this.incomingStore,
    };
    if (this.version === 5) options.properties = { sessionExpiryInterval: NEVER_EXPIRES };
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, options);
    this.client = client;
    client.on('message', (topic, payload, packet) => this.deliver(topic, payload.toString(), packet.qos));
    client.on('error', () => {});
    this.closed = new Promise((resolve) => client.once('close', () => resolve()));
    const connack = await withTimeout(connected(client), `${this.id} to connect`);
    this.noteSession(connack.sessionPresent);
    if (fresh) for (const [filter, qos] of this.filters) await this.subscribe(filter, qos);
  }

  async subscribe(filter: string, qos: QoS): Promise<void> {
    const granted = await withTimeout(this.client!.subscribeAsync(filter, { qos }), `${this.id} SUBACK`);
    assert.equal(granted[0]?.qos, qos, `${this.id}: ${filter} granted ${JSON.stringify(granted)}`);
  }

  async disconnect(): Promise<void> {
    await withTimeout(this.client!.endAsync(), `${this.id} to disconnect`);
  }

  async lost(): Promise<void> {
    await withTimeout(this.closed, `${this.id} to notice the broker is gone`);
    this.client!.end(true);
  }

  destroy(): void {
    this.client?.end(true);
  }
}

/** Our codec: QoS 2 delivered on PUBLISH, its packet id kept until PUBREL (across reconnections). */
class PeerSubscriber extends SubscriberBase implements Subscriber {
  /** Packet ids of QoS 2 messages delivered and awaiting PUBREL: the client's session state. */
  private readonly awaitingRelease = new Set<number>();
  private peer: Peer | undefined;
  private subacks: ((codes: number[]) => void)[] = [];

  async connect(port: number): Promise<void> {
    const fresh = this.connects === 0;
    const [peer, connack] = await Peer.connect(
      port,
      connectPacket(this.id, this.version, true, fresh),
      (p, to) => this.onPacket(p, to),
    );
    this.peer = peer;
    this.noteSession(connack.sessionPresent);
    if (fresh) for (const [filter, qos] of this.filters) await this.subscribe(filter, qos);
  }

  async subscribe(filter: string, qos: QoS): Promise<void> {
    const answer = new Promise<number[]>((resolve) => this.subacks.push(resolve));
    this.peer!.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: filter, qos }] });
    const codes = await withTimeout(answer, `${this.id} SUBACK`);
    assert.deepEqual(codes, [qos], `${this.id}: ${filter} granted ${codes}`);
  }

  private onPacket(packet: Packet, peer: Peer): void {
    switch (packet.type) {
      case 'publish': {
        const payload = packet.payload.toString();
        const id = packet.packetId!;
        if (packet.qos === 1) {
          this.deliver(packet.topic, payload, 1);
          peer.send({ type: 'puback', packetId: id });
        } else if (packet.qos === 2) {
          // MQTT-4.3.3-9: until PUBREL, the same packet id is the same message.
          if (!this.awaitingRelease.has(id)) {
            this.awaitingRelease.add(id);
            this.deliver(packet.topic, payload, 2);
          }
          peer.send({ type: 'pubrec', packetId: id });
        } else {
          this.deliver(packet.topic, payload, 0);
        }
        break;
      }
      case 'pubrel':
        this.awaitingRelease.delete(packet.packetId);
        peer.send({ type: 'pubcomp', packetId: packet.packetId });
        break;
      case 'suback':
        this.subacks.shift()?.(packet.reasonCodes);
        break;
      default:
        break;
    }
  }

  async disconnect(): Promise<void> {
    await this.peer!.disconnect();
  }

  async lost(): Promise<void> {
    await withTimeout(this.peer!.closed, `${this.id} to notice the broker is gone`);
  }

  destroy(): void {
    this.peer?.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Publishers

interface Publisher {
  readonly name: string;
  /** Session Present of every reconnection of a persistent publisher. */
  readonly resumed: boolean[];
  /** Connects and publishes until stopped, or `budget` more messages when given. */
  start(port: number, budget?: number): Promise<void>;
  /** Resolves when the budget is published and acknowledged. */
  finished(): Promise<void>;
  disconnect(): Promise<void>;
  lost(): Promise<void>;
  destroy(): void;
}

/** MQTT.js, clean session, acknowledged when its publish callback reports success. */
class MqttJsPublisher implements Publisher {
  readonly resumed: boolean[] = [];
  private client: MqttClient | undefined;
  private closed: Promise<void> = Promise.resolve();
  private seq = 0;
  private end = Number.POSITIVE_INFINITY;
  private inflight = 0;
  private running = false;

  constructor(
    readonly name: string,
    private readonly version: 4 | 5,
    private readonly qos: 1 | 2,
    private readonly ledger: Ledger,
  ) {}

  async start(port: number, budget?: number): Promise<void> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: `pub-${this.name}`,
      protocolVersion: this.version,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: SAFETY_MS,
    });
    this.client = client;
    client.on('error', () => {});
    this.closed = new Promise((resolve) =>
      client.once('close', () => {
        this.running = false;
        resolve();
      }),
    );
    await withTimeout(connected(client), `publisher ${this.name} to connect`);
    this.inflight = 0;
    this.end = budget === undefined ? Number.POSITIVE_INFINITY : this.seq + budget;
    this.running = true;
    this.fill();
  }

  private fill(): void {
    const client = this.client!;
    while (this.running && this.inflight < WINDOW && this.seq < this.end) {
      const key = `${this.name}:${this.seq}`;
      const topic = `crash/${this.name}/${this.seq % 4}`;
      this.seq++;
      this.ledger.sent(key, {
        publisher: this.name,
        topic,
        payload: key,
        qos: this.qos,
        retain: false,
        acked: false,
      });
      this.inflight++;
      client.publish(topic, key, { qos: this.qos }, (error) => {
        if (client !== this.client) return;
        this.inflight--;
        if (error === undefined || error === null) this.ledger.acked(key);
        this.fill();
      });
    }
  }

  async finished(): Promise<void> {
    await until(() => this.seq >= this.end && this.inflight === 0, `publisher ${this.name} to finish`);
  }

  async disconnect(): Promise<void> {
    this.running = false;
    await withTimeout(this.client!.endAsync(), `publisher ${this.name} to disconnect`);
  }

  async lost(): Promise<void> {
    await withTimeout(this.closed, `publisher ${this.name} to notice the broker is gone`);
    this.client!.end(true);
  }

  destroy(): void {
    this.client?.end(true);
  }
}

interface Flight {
  key: string;
  topic: string;
  payload: string;
  qos: 1 | 2;
  retain: boolean;
  /** 'publish' until PUBACK/PUBREC, then (QoS 2) 'release' until PUBCOMP. */
  phase: 'publish' | 'release';
}

/** Our codec: the exact acknowledgements, and the protocol's resend on resuming a session. */
class PeerPublisher implements Publisher {
  readonly resumed: boolean[] = [];
  /** In flight by packet id, in the order sent (a Map keeps insertion order). */
  private readonly inflight = new Map<number, Flight>();
  /** Retained topics with a publish awaiting PUBACK/PUBREC. */
  private readonly busyTopics = new Set<string>();
  private peer: Peer | undefined;
  private connects = 0;
  private nextId = 1;
  private seq = 0;
  private end = Number.POSITIVE_INFINITY;
  private running = false;

  constructor(
    readonly name: string,
    private readonly version: 4 | 5,
    private readonly persistent: boolean,
    private readonly qosOf: (seq: number) => 1 | 2,
    private readonly ledger: Ledger,
    /** Publish retained messages to these topics instead of `crash/<name>/<n>`. */
    private readonly retainedTopics?: readonly string[],
  ) {}

  async start(port: number, budget?: number): Promise<void> {
    const fresh = this.connects++ === 0;
    const [peer, connack] = await Peer.connect(
      port,
      connectPacket(`pub-${this.name}`, this.version, this.persistent, fresh),
      (p) => this.onPacket(p),
    );
    this.peer = peer;
    void peer.closed.then(() => {
      if (this.peer === peer) this.running = false;
    });
    if (this.persistent && !fresh) this.resumed.push(connack.sessionPresent);
    this.busyTopics.clear();
    if (!this.persistent || !connack.sessionPresent) {
      // A clean session: the broker forgot these, and so do we; they stay unacknowledged.
      this.inflight.clear();
    } else {
      // MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP) and PUBREL, in order.
      for (const [packetId, f] of this.inflight) {
        if (f.phase === 'release') peer.send({ type: 'pubrel', packetId });
        else peer.send(this.publishPacket(packetId, f, true));
      }
    }
    this.end = budget === undefined ? Number.POSITIVE_INFINITY : this.seq + budget;
    this.running = true;
    this.fill();
  }

  private publishPacket(packetId: number, f: Flight, dup: boolean): Packet {
    return {
      type: 'publish',
      topic: f.topic,
      payload: Buffer.from(f.payload),
      qos: f.qos,
      retain: f.retain,
      dup,
      packetId,
    };
  }

  private allocate(): number {
    // A few more ids than the window, so ids come back soon after their PUBCOMP.
    const space = WINDOW + 3;
    for (;;) {
      const id = this.nextId;
      this.nextId = (id % space) + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  private fill(): void {
    while (this.running && this.inflight.size < WINDOW && this.seq < this.end) {
      let topic: string;
      if (this.retainedTopics === undefined) {
        topic = `crash/${this.name}/${this.seq % 4}`;
      } else {
        const free = this.retainedTopics.filter((t) => !this.busyTopics.has(t));
        if (free.length === 0) return;
        topic = free[this.seq % free.length]!;
        this.busyTopics.add(topic);
      }
      const key = `${this.name}:${this.seq}`;
      const retain = this.retainedTopics !== undefined;
      const payload = retain && this.seq % 7 === 6 ? '' : key;
      const f: Flight = { key, topic, payload, qos: this.qosOf(this.seq), retain, phase: 'publish' };
      this.seq++;
      this.ledger.sent(key, { publisher: this.name, topic, payload, qos: f.qos, retain, acked: false });
      const id = this.allocate();
      this.inflight.set(id, f);
      this.peer!.send(this.publishPacket(id, f, false));
    }
  }

  private onPacket(packet: Packet): void {
    if (packet.type !== 'puback' && packet.type !== 'pubrec' && packet.type !== 'pubcomp') return;
    const f = this.inflight.get(packet.packetId);
    const expected =
      f === undefined ? undefined : f.phase === 'release' ? 'pubcomp' : f.qos === 1 ? 'puback' : 'pubrec';
    if (f === undefined || packet.type !== expected) {
      // A PUBREC again for a message already released is answered with PUBREL again.
      if (packet.type === 'pubrec' && f?.phase === 'release')
        this.peer!.send({ type: 'pubrel', packetId: packet.packetId });
      else this.ledger.problems.push(`publisher ${this.name}: unexpected ${packet.type} ${packet.packetId}`);
      return;
    }
    const code = packet.reasonCode ?? 0;
    if (packet.type !== 'pubcomp') {
      this.busyTopics.delete(f.topic);
      if (code >= 0x80) {
        this.ledger.problems.push(`publisher ${this.name}: ${f.key} refused with ${code}`);
        this.inflight.delete(packet.packetId);
      } else {
        this.ledger.acked(f.key);
        if (packet.type === 'pubrec') {
          f.phase = 'release';
          this.peer!.send({ type: 'pubrel', packetId: packet.packetId });
        } else {
          this.inflight.delete(packet.packetId);
        }
      }
    } else {
      this.inflight.delete(packet.packetId);
    }
    this.fill();
  }

  async finished(): Promise<void> {
    await until(() => this.seq >= this.end && this.inflight.size === 0, `publisher ${this.name} to finish`);
  }

  async disconnect(): Promise<void> {
    this.running = false;
    await this.peer!.disconnect();
  }

  async lost(): Promise<void> {
    await withTimeout(this.peer!.closed, `publisher ${this.name} to notice the broker is gone`);
  }

  destroy(): void {
    this.peer?.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Retained state as a fresh subscriber sees it

let snapshots = 0;

/** Subscribes a new clean client to `filter` and returns topic -> payload of the retained messages. */
async function retainedSnapshot(port: number, filter: string): Promise<Map<string, string[]>> {
  const id = `fresh-${snapshots++}`;
  const marker = `crash-end/${id}`;
  const got = new Map<string, string[]>();
  let subacked: () => void = () => {};
  const suback = new Promise<void>((resolve) => {
    subacked = resolve;
  });
  let done: () => void = () => {};
  const end = new Promise<void>((resolve) => {
    done = resolve;
  });
  const [peer] = await Peer.connect(port, connectPacket(id, 4, false, true), (packet, to) => {
    if (packet.type === 'suback') subacked();
    if (packet.type !== 'publish') return;
    if (packet.qos > 0) to.send({ type: 'puback', packetId: packet.packetId! });
    if (packet.topic === marker) {
      done();
      return;
    }
    assert.ok(packet.retain, `a fresh subscriber got a non-retained message on ${packet.topic}`);
    got.set(packet.topic, [...(got.get(packet.topic) ?? []), packet.payload.toString()]);
  });
  peer.send({
    type: 'subscribe',
    packetId: 1,
    subscriptions: [
      { topicFilter: filter, qos: 1 },
      { topicFilter: marker, qos: 1 },
    ],
  });
  await withTimeout(suback, 'SUBACK of the fresh subscriber');
  // Queued after the retained messages the subscribe brought: once it arrives, they all have.
  peer.send({
    type: 'publish',
    topic: marker,
    payload: Buffer.from('end'),
    qos: 0,
    retain: false,
    dup: false,
  });
  await withTimeout(end, 'the retained messages');
  await peer.disconnect();
  return got;
}

// ---------------------------------------------------------------------------------------------
// The test

test('SIGKILL under load: every acknowledged message delivered, QoS 2 exactly once, sessions and retained kept', {
  timeout: 180_000,
}, async (t) => {
  const random = generator(SEED);
  const kills = 3 + random(3);
  t.diagnostic(`seed ${SEED} (CRASH_SEED=${SEED} repeats it), ${kills} kills${MEMORY ? ', --memory' : ''}`);
  const started = Date.now();

  const root = mkdtempSync(join(tmpdir(), 'cicada-crash-'));
  const dataDir = join(root, 'data');
  const configFile = join(root, 'cicada.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({ broker: { maxQueuedMessages: 1_000_000 }, mqtt: { maxInflightMessages: 16 } }),
  );

  const ledger = new Ledger();
  const publishers: Publisher[] = [
    new MqttJsPublisher('a', 4, 1, ledger),
    new MqttJsPublisher('b', 5, 2, ledger),
    new PeerPublisher('c', 4, true, () => 2, ledger),
    new PeerPublisher('d', 5, true, (n) => (n % 2 === 0 ? 1 : 2), ledger),
    new PeerPublisher(
      'r',
      5,
      false,
      (n) => (n % 2 === 0 ? 2 : 1),
      ledger,
      Array.from({ length: 6 }, (_, i) => `crash/r/${i}`),
    ),
  ];
  const subscribers: Subscriber[] = [
    new MqttJsSubscriber('sA', 4, [['crash/#', 2]], false),
    new MqttJsSubscriber(
      'sB',
      5,
      [
        ['crash/+/1', 2],
        ['crash/a/0', 1],
        ['crash/r/2', 2],
      ],
      false,
    ),
    new PeerSubscriber(
      'sC',
      4,
      [
        ['crash/c/#', 2],
        ['crash/b/+', 2],
        ['crash/r/+', 1],
      ],
      false,
    ),
    new PeerSubscriber(
      'sD',
      5,
      [
        ['crash/#', 1],
        ['crash/d/2', 2],
      ],
      false,
    ),
    new MqttJsSubscriber('oA', 5, [['crash/#', 2]], true),
    new PeerSubscriber(
      'oB',
      4,
      [
        ['crash/+/0', 2],
        ['crash/d/#', 1],
      ],
      true,
    ),
    new PeerSubscriber(
      'oC',
      5,
      [
        ['crash/c/3', 1],
        ['crash/b/#', 2],
      ],
      true,
    ),
  ];
  const online = subscribers.filter((s) => !s.offline);
  const offline = subscribers.filter((s) => s.offline);

  let broker: BrokerProcess | undefined;
  const killedAt: number[] = [];
  /** Every violation found, reported together at the end. */
  const failures: string[] = [];
  /** Milliseconds each phase took, for the diagnostic line. */
  const phases: string[] = [];
  let mark = Date.now();
  const phase = (name: string): void => {
    const now = Date.now();
    phases.push(`${name} ${now - mark}`);
    mark = now;
  };
  try {
    // ---- runs ending in SIGKILL
    for (let run = 0; run < kills; run++) {
      broker = await BrokerProcess.start(dataDir, configFile);
      phase('start');
      const { port } = broker;
      if (run === 0) {
        for (const s of offline) {
          await s.connect(port);
          await s.disconnect();
        }
      }
      for (const s of online) await s.connect(port);
      await Promise.all(publishers.map((p) => p.start(port)));
      phase('connect');
      // A random number of further acknowledgements (now and then very few, to kill it while
      // sessions are still being resumed), then a random few milliseconds.
      const target = ledger.acks + (random(4) === 0 ? random(40) : 40 + random(1200));
      await until(() => ledger.acks >= target || !broker!.alive, `${target} acknowledgements`);
      await new Promise((r) => setTimeout(r, random(15)));
      assert.ok(broker.alive, `the broker died on its own: ${broker.errors()}`);
      await broker.kill();
      killedAt.push(ledger.acks);
      await Promise.all([...online, ...publishers].map((c) => c.lost()));
      phase('load');
    }

    // ---- the last run: retained state first, then everyone back, a last batch, and drain
    broker = await BrokerProcess.start(dataDir, configFile);
    phase('start');
    const { port } = broker;
    const restored = await retainedSnapshot(port, 'crash/r/+');
    for (const [topic, r] of ledger.retained) {
      const got = restored.get(topic) ?? [''];
      if (got.length !== 1 || ![r.acked, ...r.pending].includes(got[0]!)) {
        failures.push(
          `after the last restart, retained ${topic} is ${JSON.stringify(got)}; last acknowledged ` +
            `${JSON.stringify(r.acked)}, unacknowledged since: ${JSON.stringify(r.pending)}`,
        );
      }
    }
    for (const topic of restored.keys()) {
      if (!ledger.retained.has(topic)) failures.push(`retained ${topic} was never published`);
    }

    for (const s of subscribers) {
      await s.connect(port);
      await s.subscribe(`crash-end/${s.id}`, 2);
    }
    phase('resume');
    await Promise.all(publishers.map((p) => p.start(port, FINAL_BATCH)));
    await Promise.all(publishers.map((p) => p.finished()));
    await Promise.all(publishers.map((p) => p.disconnect()));
    phase('last batch');

    // A QoS 2 marker per subscriber, queued behind everything: once its application has it,
    // every earlier message was sent, and (PUBREL being in order) released.
    const [markerPeer] = await Peer.connect(port, connectPacket('pub-marker', 4, false, true), (p, to) => {
      if (p.type === 'pubrec') to.send({ type: 'pubrel', packetId: p.packetId });
    });
    for (const [i, s] of subscribers.entries()) {
      markerPeer.send({
        type: 'publish',
        topic: `crash-end/${s.id}`,
        payload: Buffer.from('marker'),
        qos: 2,
        retain: false,
        dup: false,
        packetId: i + 1,
      });
    }
    for (const s of subscribers) await until(() => s.markers.size > 0, `${s.id} to drain its session`);
    await markerPeer.disconnect();
    phase('drain');

    const final = await retainedSnapshot(port, 'crash/r/+');
    for (const [topic, r] of ledger.retained) {
      const got = final.get(topic) ?? [''];
      if (got.length !== 1 || got[0] !== r.acked) {
        failures.push(
          `at the end, retained ${topic} is ${JSON.stringify(got)}, not ${JSON.stringify(r.acked)}`,
        );
      }
    }

    for (const s of subscribers) await s.disconnect();
    await broker.stop();
    phase('stop');

    // ---- the checks
    const acked = [...ledger.messages.values()].filter((m) => m.acked);
    t.diagnostic(
      `${ledger.messages.size} published, ${acked.length} acknowledged (kills after ${killedAt.join(', ')}), ` +
        `${Date.now() - started} ms (${phases.join(', ')})`,
    );
    failures.push(...ledger.problems);
    for (const p of publishers) {
      if (!p.resumed.every(Boolean)) failures.push(`publisher ${p.name}: session present ${p.resumed}`);
    }
    for (const s of subscribers) {
      assert.equal(s.resumed.length, s.offline ? 1 : kills, `${s.id} reconnections`);
      if (!s.resumed.every(Boolean)) failures.push(`${s.id}: session present ${s.resumed}`);
      const missing: string[] = [];
      const duplicated: string[] = [];
      const wrong: string[] = [];
      let expected = 0;
      for (const m of ledger.messages.values()) {
        if (m.payload === '') continue;
        let best = -1;
        for (const [filter, qos] of s.filters) if (matches(filter, m.topic) && qos > best) best = qos;
        const got = s.received.get(m.payload) ?? [];
        if (best < 0) {
          if (got.length > 0) wrong.push(`${m.payload} (matches no filter)`);
          continue;
        }
        const qos = Math.min(best, m.qos);
        if (m.acked) expected++;
        if (m.acked && got.length === 0) missing.push(m.payload);
        if (qos === 2 && got.length > 1) duplicated.push(`${m.payload} x${got.length}`);
        if (got.some((q) => q !== qos)) wrong.push(`${m.payload} at QoS ${got} instead of ${qos}`);
      }
      for (const payload of s.received.keys()) {
        if (!ledger.byPayload.has(payload)) wrong.push(`${payload} (never published)`);
      }
      const sample = (list: string[]): string => `${list.length} [${list.slice(0, 8).join(', ')}]`;
      if (missing.length > 0)
        failures.push(`${s.id}: missing ${sample(missing)} of ${expected} acknowledged`);
      if (duplicated.length > 0) failures.push(`${s.id}: QoS 2 delivered twice: ${sample(duplicated)}`);
      if (wrong.length > 0) failures.push(`${s.id}: wrong deliveries: ${sample(wrong)}`);
    }
    assert.deepEqual(failures, [], `seed ${SEED}`);
  } catch (error) {
    if (broker !== undefined) {
      t.diagnostic(`seed ${SEED}; broker stderr: ${broker.errors()}`);
    }
    throw error;
  } finally {
    if (broker?.alive) await broker.kill();
    for (const c of [...subscribers, ...publishers]) c.destroy();
    rmSync(root, { recursive: true, force: true });
  }
});
