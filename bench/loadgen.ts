/**
 * The load generator of the broker load benchmark (bench/load.ts). It runs in its own
 * process, so that it does not share a core with the broker under test, and is driven by
 * its parent over the IPC channel:
 *
 *   parent ← { type: 'hello' }         listening
 *   parent → { type: 'setup', spec }   connect subscribers (and SUBSCRIBE), then publishers
 *   parent ← { type: 'ready' }
 *   parent → { type: 'start' }         publishers start (as fast as allowed, or paced)
 *   parent → { type: 'snap', record }  counters now; `record` turns latency sampling on/off
 *   parent ← { type: 'snap', ... }
 *   parent → { type: 'stop' }          publishers stop; wait until deliveries settle
 *   parent ← { type: 'final', ... }    totals, loss and latency percentiles
 *   parent → { type: 'idle', spec }    idle-connection scenario: open N connections
 *   parent ← { type: 'idle-done', ... }
 *   parent → { type: 'close' }         destroy every socket and exit
 *
 * Sockets are raw `net` sockets with Nagle off (or TLS sockets, or WebSockets, when the spec
 * names a transport), speaking MQTT 3.1.1 (every broker under test supports it). Packets are built with Cicada's codec (`encode`, `PublishTemplate`); what
 * arrives during the handshake is decoded with `decodeAll`. The hot receive path (PUBLISH,
 * PUBACK, PUBREC, PUBREL, PUBCOMP) uses a minimal frame scanner that reads the fixed header,
 * the packet identifier and the timestamp in the payload and allocates nothing, so the
 * generator stays well ahead of the brokers; `fullDecode` routes everything through
 * MqttDecoder instead, to compare.
 *
 * QoS 2: publishers run PUBLISH → PUBREC → PUBREL → PUBCOMP with the same bounded window as
 * QoS 1 (a message leaves the window at PUBCOMP) and check that every PUBREC and PUBCOMP
 * answers a packet identifier in the matching state. Subscribers answer PUBREC, and PUBCOMP
 * on PUBREL; a QoS 2 PUBLISH whose identifier still awaits PUBREL is a retransmission and is
 * acknowledged again but not delivered (the receiver's half of exactly-once). Payloads of at
 * least 14 bytes also carry a per-publisher sequence number (bytes 10–13), and subscribers
 * keep a bitmap of those seen per publisher, so that a message delivered twice in two
 * distinct flows (an exactly-once failure) is counted as a duplicate.
 *
 * Payloads carry the send time (performance.now(), float64 LE) in their first 8 bytes;
 * publisher and subscriber share this process's clock, so the end-to-end latency is a
 * plain difference. Paced publishers stamp the *scheduled* time, so a stalled broker
 * shows up as latency rather than as a lower offered rate (no coordinated omission).
 */
import { performance } from 'node:perf_hooks';
import { MqttDecoder, type Packet, PublishTemplate } from '../src/codec/mqtt/index.js';
import {
  type ClientTransport,
  type ConnectionOwner,
  type Credentials,
  PUBACK,
  PUBCOMP,
  PUBREC,
  PUBREL,
  RawConnection,
  V,
} from './lib/raw-mqtt.js';

// ---------------------------------------------------------------------------------------------
// Messages

export type Pattern = 'fan-in' | 'fan-out' | 'pairs';

export interface LoadSpec {
  host: string;
  port: number;
  pattern: Pattern;
  publishers: number;
  subscribers: number;
  qos: 0 | 1 | 2;
  payload: number;
  /** Total offered publish rate in msg/s across all publishers; 0 for as fast as allowed. */
  rate: number;
  /** QoS 1 and 2: PUBLISHes a publisher may have awaiting PUBACK (QoS 2: PUBCOMP). */
  window: number;
  /**
   * QoS 0, unpaced: PUBLISHes a publisher may have sent that have not yet reached every
   * subscriber of its topic (an end-to-end window: TCP backpressure alone lets megabytes
   * pile up in loopback socket buffers, which measures queueing rather than the broker).
   */
  window0: number;
  fullDecode: boolean;
  clientPrefix: string;
  /** Longest wait for deliveries to settle after the publishers stop. */
  drainMs: number;
  /** TLS or WebSocket instead of plain TCP (bench/transports.ts). */
  transport?: ClientTransport;
}

export interface IdleSpec {
  host: string;
  port: number;
  connections: number;
  concurrency: number;
  clientPrefix: string;
  keepAlive: number;
  /** TLS or WebSocket instead of plain TCP (bench/transports.ts). */
  transport?: ClientTransport;
  /** Sent in every CONNECT (bench/transports.ts, password checks). */
  credentials?: Credentials;
}

export interface Counters {
  /** PUBLISHes written by publishers. */
  sent: number;
  /** PUBACKs (QoS 1) or PUBCOMPs (QoS 2) received by publishers. */
  acked: number;
  /** PUBLISHes delivered to subscribers (one per copy; duplicates included). */
  received: number;
  /** Duplicate-flagged PUBLISHes received. */
  dups: number;
  /**
   * QoS 2 with sequence numbers: copies a subscriber had already received (the same
   * message in a second PUBLISH flow): exactly-once violated.
   */
  duplicates: number;
  /** QoS 2: PUBLISHes repeating an identifier that awaits PUBREL (acknowledged, not delivered). */
  resent: number;
  /** QoS 0 window: in-flight messages written off after a stall (presumed dropped by the broker). */
  writtenOff: number;
  errors: number;
}

export interface SnapReply extends Counters {
  type: 'snap';
  /** performance.now() of this process. */
  t: number;
  /** CPU time of this process in µs (user + system). */
  cpuUs: number;
}

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface FinalReply extends Counters {
  type: 'final';
  /** Copies the subscribers should have received: (acked for QoS 1 and 2, else sent) × copies per message. */
  expected: number;
  /**
   * Whether `duplicates` was counted message by message (QoS 2, payload of at least 14
   * bytes). Otherwise, at QoS 2, it is the surplus of copies received over those expected
   * once every flow completed, which a loss elsewhere can hide.
   */
  sequenced: boolean;
  /** True when every expected copy arrived (and, for QoS 1 and 2, every PUBLISH was acknowledged). */
  settled: boolean;
  drainMs: number;
  inflight: number;
  latency: LatencySummary | undefined;
  firstError: string | undefined;
}

export interface IdleReply {
  type: 'idle-done';
  connected: number;
  failed: number;
  ms: number;
  /** CPU time this process used meanwhile, µs. */
  cpuUs: number;
  firstError: string | undefined;
}

export type ToLoadgen =
  | { type: 'setup'; spec: LoadSpec }
  | { type: 'start' }
  | { type: 'snap'; record: boolean }
  | { type: 'stop' }
  | { type: 'idle'; spec: IdleSpec }
  | { type: 'close' };

export type FromLoadgen =
  | { type: 'hello' }
  | { type: 'ready'; connections: number; setupMs: number }
  | SnapReply
  | FinalReply
  | IdleReply
  | { type: 'error'; message: string };

// ---------------------------------------------------------------------------------------------
// State

const counters: Counters = {
  sent: 0,
  acked: 0,
  received: 0,
  dups: 0,
  duplicates: 0,
  resent: 0,
  writtenOff: 0,
  errors: 0,
};
let firstError: string | undefined;
/** Every open connection. */
const connections: ConnectionOwner = { conns: new Set(), error: noteError };
let running = false;

function noteError(message: string): void {
  counters.errors++;
  firstError ??= message;
}

function send(msg: FromLoadgen): void {
  if (process.send !== undefined && process.connected) process.send(msg);
}

// Latency samples (ms), recorded only inside the measurement window. When the buffer fills,
// every other sample is dropped and from then on only every `stride`-th arrival is kept.
const LAT_CAP = 1 << 20;
let lat = new Float64Array(LAT_CAP);
let latN = 0;
let latStride = 1;
let latSkip = 0;
let recording = false;

function recordLatency(sentAt: number): void {
  if (++latSkip < latStride) return;
  latSkip = 0;
  if (latN === LAT_CAP) {
    for (let i = 0, j = 0; i < LAT_CAP; i += 2, j++) lat[j] = lat[i]!;
    latN = LAT_CAP >> 1;
    latStride *= 2;
  }
  lat[latN++] = performance.now() - sentAt;
}

function latencySummary(): LatencySummary | undefined {
  if (latN === 0) return undefined;
  const s = lat.subarray(0, latN).sort();
  const q = (p: number): number => s[Math.min(latN - 1, Math.floor(p * latN))]!;
  return { n: latN, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: s[latN - 1]! };
}

// ---------------------------------------------------------------------------------------------
// Connections

/** Packet identifier states of a QoS 2 publisher (`Client.pubIds`). */
const AWAIT_PUBREC = 1;
const AWAIT_PUBCOMP = 2;

/**
 * One MQTT client connection. PUBLISH and the acknowledgements are handled in place by the
 * scanner; anything else goes through `decodeAll` to `onControl`.
 */
class Client extends RawConnection {
  private readonly decoder: MqttDecoder | undefined;
  /** Publisher side: called with the number of PUBACKs (QoS 2: PUBCOMPs) in one chunk. */
  onAcks: ((n: number) => void) | undefined;
  /** Subscriber side: copies received per publisher index (from payload bytes 8–9). */
  recv: Float64Array | undefined;
  /** Subscriber side: called after a chunk that delivered anything. */
  onDeliveries: (() => void) | undefined;
  /**
   * QoS 2 publisher side: state of each packet identifier (0 free, AWAIT_PUBREC,
   * AWAIT_PUBCOMP), set to AWAIT_PUBREC by the publisher as it sends.
   */
  pubIds: Uint8Array | undefined;
  /** QoS 2 subscriber side: 1 for each packet identifier received and awaiting PUBREL. */
  private awaitingRel: Uint8Array | undefined;
  /**
   * QoS 2 subscriber side, sequenced payloads: one bitmap of the sequence numbers seen per
   * publisher index; undefined when not checking.
   */
  seen: Uint8Array[] | undefined;
  private deliveries = 0;
  private acks = 0;

  constructor(host: string, port: number, fullDecode: boolean, transport?: ClientTransport) {
    super(host, port, connections, transport);
    if (fullDecode) this.decoder = new MqttDecoder((p) => this.onPacket(p), { protocolVersion: V });
  }

  protected override receive(chunk: Buffer): void {
    if (this.decoder !== undefined) this.decoder.feed(chunk);
    else super.receive(chunk);
  }

  protected override afterChunk(): void {
    if (this.deliveries > 0) {
      this.deliveries = 0;
      this.onDeliveries?.();
    }
    if (this.acks > 0) {
      const n = this.acks;
      this.acks = 0;
      this.onAcks?.(n);
    }
  }

  /** Full-decode path: every packet as an object. */
  private onPacket(p: Packet): void {
    switch (p.type) {
      case 'publish': {
        const n = p.payload.length;
        this.publish(
          p.qos,
          p.packetId ?? 0,
          p.dup,
          n >= 8 ? p.payload.readDoubleLE(0) : -1,
          n >= 10 ? p.payload.readUInt16LE(8) : -1,
          n >= 14 ? p.payload.readUInt32LE(10) : -1,
        );
        break;
      }
      case 'puback':
        this.acks++;
        break;
      case 'pubrec':
        this.pubrec(p.packetId);
        break;
      case 'pubrel':
        this.pubrel(p.packetId);
        break;
      case 'pubcomp':
        this.pubcomp(p.packetId);
        break;
      default:
        this.onControl(p);
    }
  }

  /** A PUBLISH arrived: acknowledge it and, unless it repeats a QoS 2 flow, deliver it. */
  private publish(qos: number, id: number, dup: boolean, sentAt: number, from: number, seq: number): void {
    if (qos === 1) {
      this.queueAck(PUBACK, id);
    } else if (qos === 2) {
      this.queueAck(PUBREC, id);
      this.awaitingRel ??= new Uint8Array(0x10000);
      const awaiting = this.awaitingRel;
      if (awaiting[id] === 1) {
        // The broker sent this identifier again before our PUBREC reached it (or lost it):
        // the same message, already delivered (MQTT-4.3.3-2, method B).
        counters.resent++;
        if (dup) counters.dups++;
        return;
      }
      awaiting[id] = 1;
    }
    counters.received++;
    this.deliveries++;
    if (this.recv !== undefined && from >= 0 && from < this.recv.length) this.recv[from]!++;
    if (dup) counters.dups++;
    if (this.seen !== undefined && seq >= 0 && from >= 0 && from < this.seen.length) this.mark(from, seq);
    if (recording && sentAt >= 0) recordLatency(sentAt);
  }

  /** Exactly-once check: sequence number `seq` of publisher `from` arrived. */
  private mark(from: number, seq: number): void {
    const byte = seq >>> 3;
    let bits = this.seen![from]!;
    if (byte >= bits.length) {
      const next = new Uint8Array(Math.max(byte + 1, bits.length * 2, 4096));
      next.set(bits);
      this.seen![from] = bits = next;
    }
    const bit = 1 << (seq & 7);
    if ((bits[byte]! & bit) !== 0) counters.duplicates++;
    else bits[byte] = bits[byte]! | bit;
  }

  /** Publisher side, QoS 2: PUBREC → PUBREL. */
  private pubrec(id: number): void {
    const ids = this.pubIds;
    if (ids !== undefined) {
      const state = ids[id];
      if (state === AWAIT_PUBREC) ids[id] = AWAIT_PUBCOMP;
      else if (state !== AWAIT_PUBCOMP) {
        // A repeated PUBREC (AWAIT_PUBCOMP) just gets its PUBREL again.
        noteError(`PUBREC for packet identifier ${id}, which awaits none`);
        return;
      }
    }
    this.queueAck(PUBREL, id);
  }

  /** Subscriber side, QoS 2: PUBREL → PUBCOMP; the identifier is free again. */
  private pubrel(id: number): void {
    if (this.awaitingRel !== undefined) this.awaitingRel[id] = 0;
    this.queueAck(PUBCOMP, id);
  }

  /** Publisher side, QoS 2: PUBCOMP completes the flow. */
  private pubcomp(id: number): void {
    const ids = this.pubIds;
    if (ids !== undefined) {
      if (ids[id] !== AWAIT_PUBCOMP) {
        noteError(`PUBCOMP for packet identifier ${id}, which awaits none`);
        return;
      }
      ids[id] = 0;
    }
    this.acks++;
  }

  protected publishFrame(qos: number, id: number, dup: boolean, buf: Buffer, p: number, end: number): void {
    const n = end - p;
    this.publish(
      qos,
      id,
      dup,
      n >= 8 ? buf.readDoubleLE(p) : -1,
      n >= 10 ? buf.readUInt16LE(p + 8) : -1,
      n >= 14 ? buf.readUInt32LE(p + 10) : -1,
    );
  }

  protected ackFrame(type: number, id: number): void {
    if (type === 4) this.acks++;
    else if (type === 5) this.pubrec(id);
    else if (type === 6) this.pubrel(id);
    else this.pubcomp(id);
  }
}

// ---------------------------------------------------------------------------------------------
// Publishers

/**
 * One publisher. Its PUBLISH is encoded once; batches are copies with the packet identifier,
 * the send time (payload bytes 0–7), the publisher's index (bytes 8–9) and, at QoS 2, a
 * sequence number (bytes 10–13) patched in.
 */
class Publisher {
  private readonly packet: Buffer;
  private readonly idOffset: number;
  private readonly stampOffset: number;
  private readonly stamped: boolean;
  private readonly tagged: boolean;
  /** QoS 2 with room for it: payloads carry a sequence number, for the exactly-once check. */
  readonly sequenced: boolean;
  private seq = 0;
  private nextId = 1;
  /** PUBLISHes written. */
  private sent = 0;
  /** QoS 1: awaiting PUBACK; QoS 2: awaiting PUBCOMP. */
  inflight = 0;
  private waitingDrain = false;
  private scheduled = false;
  /** Paced mode: scheduled send times of messages not sent yet (window full). */
  private backlog: number[] = [];
  /** Unpaced QoS 0: the end-to-end window, or 0 for TCP backpressure only. */
  private readonly window0: number;
  /** QoS 0 window: messages written off as lost, and stall detection. */
  private writtenOff = 0;
  private lastDelivered = 0;
  private lastChange = 0;
  /** Messages per write when only TCP backpressure limits a QoS 0 publisher. */
  private readonly batch: number;

  constructor(
    readonly client: Client,
    private readonly index: number,
    topic: string,
    /** The subscribers that receive this publisher's messages. */
    private readonly subs: Client[],
    private readonly spec: LoadSpec,
    window0: number,
  ) {
    const payload = Buffer.alloc(spec.payload, 'x');
    const template = new PublishTemplate(topic, payload);
    this.packet = template.encode(V, spec.qos > 0 ? { qos: spec.qos, packetId: 1 } : { qos: 0 });
    this.stampOffset = this.packet.length - payload.length;
    this.idOffset = this.stampOffset - 2;
    this.stamped = spec.payload >= 8;
    this.tagged = spec.payload >= 10;
    this.sequenced = spec.qos === 2 && spec.payload >= 14;
    if (spec.qos === 2) client.pubIds = new Uint8Array(0x10000);
    this.window0 = spec.qos === 0 && spec.rate <= 0 && this.tagged && subs.length > 0 ? window0 : 0;
    this.batch = Math.max(1, Math.min(256, Math.floor(16384 / this.packet.length)));
    client.onAcks = (n) => {
      this.inflight -= n;
      counters.acked += n;
      if (running) this.refill();
    };
    client.socket.on('drain', () => {
      this.waitingDrain = false;
      if (running) this.refill();
    });
  }

  /** Builds `n` PUBLISHes stamped `at(i)` (or now) into one buffer. */
  private build(n: number, at?: (i: number) => number): Buffer {
    const len = this.packet.length;
    const out = Buffer.allocUnsafe(n * len);
    const now = performance.now();
    const acked = this.spec.qos > 0;
    const ids = this.client.pubIds;
    for (let i = 0, off = 0; i < n; i++, off += len) {
      this.packet.copy(out, off);
      if (acked) {
        const id = this.nextId;
        this.nextId = id === 0xffff ? 1 : id + 1;
        out[off + this.idOffset] = id >> 8;
        out[off + this.idOffset + 1] = id & 0xff;
        if (ids !== undefined) {
          // The window is far below 65 535: an identifier still in use is a bug here.
          if (ids[id] !== 0) noteError(`packet identifier ${id} reused while in flight`);
          ids[id] = AWAIT_PUBREC;
        }
      }
      if (this.stamped) out.writeDoubleLE(at === undefined ? now : at(i), off + this.stampOffset);
      if (this.tagged) out.writeUInt16LE(this.index, off + this.stampOffset + 8);
      if (this.sequenced) out.writeUInt32LE(this.seq++, off + this.stampOffset + 10);
    }
    return out;
  }

  private write(buf: Buffer, n: number): void {
    counters.sent += n;
    this.sent += n;
    if (this.spec.qos > 0) this.inflight += n;
    if (!this.client.socket.write(buf)) this.waitingDrain = true;
  }

  /** Copies that reached every subscriber of this publisher (plus those written off). */
  private delivered(): number {
    let least = Number.POSITIVE_INFINITY;
    for (const c of this.subs) {
      const n = c.recv![this.index]!;
      if (n < least) least = n;
    }
    return least + this.writtenOff;
  }

  /** Sends what the window, the socket and (when paced) the backlog allow. */
  refill(): void {
    if (this.spec.rate > 0) {
      this.sendBacklog();
      return;
    }
    if (this.spec.qos > 0) {
      const n = this.spec.window - this.inflight;
      if (n > 0) this.write(this.build(n), n);
      return;
    }
    if (this.waitingDrain) return;
    if (this.window0 > 0) {
      const n = this.window0 - (this.sent - this.delivered());
      if (n > 0) this.write(this.build(n), n);
      return;
    }
    // QoS 0 without a window: keep the socket full, yielding every few batches.
    for (let k = 0; k < 4 && running; k++) {
      this.write(this.build(this.batch), this.batch);
      if (this.waitingDrain) return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (running) this.refill();
    });
  }

  /**
   * QoS 0 window: when nothing has arrived for a while with messages in flight, the broker
   * dropped them; write them off so the publisher does not wait for them forever.
   */
  checkStall(now: number): void {
    if (this.window0 === 0) return;
    const d = this.delivered();
    if (d !== this.lastDelivered) {
      this.lastDelivered = d;
      this.lastChange = now;
      return;
    }
    const outstanding = this.sent - d;
    if (outstanding > 0 && now - this.lastChange > STALL_MS) {
      this.writtenOff += outstanding;
      counters.writtenOff += outstanding;
      this.lastChange = now;
      this.refill();
    }
  }

  /** Paced mode: a message is due at `scheduledAt`. */
  due(scheduledAt: number): void {
    this.backlog.push(scheduledAt);
  }

  sendBacklog(): void {
    let n = this.backlog.length;
    if (n === 0) return;
    if (this.spec.qos > 0) n = Math.min(n, this.spec.window - this.inflight);
    if (n <= 0) return;
    const times = this.backlog;
    this.write(
      this.build(n, (i) => times[i]!),
      n,
    );
    this.backlog = n === times.length ? [] : times.slice(n);
  }
}

const STALL_MS = 500;

// ---------------------------------------------------------------------------------------------
// Scenario

let publishers: Publisher[] = [];
let spec: LoadSpec | undefined;
let pacer: NodeJS.Timeout | undefined;
let watchdog: NodeJS.Timeout | undefined;
let kickScheduled = false;

/** After deliveries: let window-limited publishers send again, once per turn of the loop. */
function kick(): void {
  if (kickScheduled || !running) return;
  kickScheduled = true;
  setImmediate(() => {
    kickScheduled = false;
    if (running) for (const p of publishers) p.refill();
  });
}

interface Topology {
  pubTopics: string[];
  subFilters: string[];
  /** Copies of each message: subscribers per publisher. */
  copies: number;
  /** Indexes of the subscribers that receive publisher i's messages. */
  receivers: (i: number) => number[];
}

function topology(s: LoadSpec): Topology {
  const pubTopics: string[] = [];
  const subFilters: string[] = [];
  const everyone = (): number[] => subFilters.map((_, j) => j);
  switch (s.pattern) {
    case 'fan-in':
      for (let i = 0; i < s.publishers; i++) pubTopics.push(`bench/in/${i}`);
      for (let i = 0; i < s.subscribers; i++) subFilters.push('bench/in/+');
      return { pubTopics, subFilters, copies: s.subscribers, receivers: everyone };
    case 'fan-out':
      for (let i = 0; i < s.publishers; i++) pubTopics.push('bench/out');
      for (let i = 0; i < s.subscribers; i++) subFilters.push('bench/out');
      return { pubTopics, subFilters, copies: s.subscribers, receivers: everyone };
    case 'pairs':
      for (let i = 0; i < s.publishers; i++) {
        pubTopics.push(`bench/pair/${i}`);
        subFilters.push(`bench/pair/${i}`);
      }
      return { pubTopics, subFilters, copies: 1, receivers: (i) => [i] };
  }
}

async function setup(s: LoadSpec): Promise<void> {
  spec = s;
  const t0 = performance.now();
  const topo = topology(s);
  const subs = await Promise.all(
    topo.subFilters.map(async (filter, i) => {
      const c = new Client(s.host, s.port, s.fullDecode, s.transport);
      c.recv = new Float64Array(topo.pubTopics.length);
      if (s.qos === 2 && s.payload >= 14) {
        c.seen = Array.from({ length: topo.pubTopics.length }, () => new Uint8Array(4096));
      }
      c.onDeliveries = kick;
      await c.handshake(`${s.clientPrefix}s${i}`, true, 600);
      await c.subscribe(filter, s.qos);
      return c;
    }),
  );
  const window0 = s.window0 > 0 ? Math.max(10, Math.round(s.window0 / topo.pubTopics.length)) : 0;
  publishers = await Promise.all(
    topo.pubTopics.map(async (topic, i) => {
      const c = new Client(s.host, s.port, s.fullDecode, s.transport);
      await c.handshake(`${s.clientPrefix}p${i}`, true, 600);
      const receivers = topo.receivers(i).map((j) => subs[j]!);
      return new Publisher(c, i, topic, receivers, s, window0);
    }),
  );
  send({ type: 'ready', connections: connections.conns.size, setupMs: performance.now() - t0 });
}

function start(): void {
  const s = spec!;
  running = true;
  watchdog = setInterval(() => {
    const now = performance.now();
    for (const p of publishers) p.checkStall(now);
  }, 100);
  if (s.rate <= 0) {
    for (const p of publishers) p.refill();
    return;
  }
  // Paced: message k of the whole stream is due at t0 + k / rate, round-robin over the
  // publishers, so the offered load is smooth rather than one burst per publisher.
  const t0 = performance.now();
  const interval = 1000 / s.rate;
  let issued = 0;
  const tick = (): void => {
    if (!running) return;
    const now = performance.now();
    const due = Math.floor((now - t0) / interval) + 1;
    const P = publishers.length;
    for (; issued < due; issued++) publishers[issued % P]!.due(t0 + issued * interval);
    for (const p of publishers) p.sendBacklog();
    pacer = setTimeout(tick, 1);
  };
  tick();
}

function snap(): SnapReply {
  const cpu = process.cpuUsage();
  return { type: 'snap', ...counters, t: performance.now(), cpuUs: cpu.user + cpu.system };
}

async function stop(): Promise<void> {
  const s = spec!;
  running = false;
  recording = false;
  if (pacer !== undefined) clearTimeout(pacer);
  if (watchdog !== undefined) clearInterval(watchdog);
  const { copies } = topology(s);
  const inflight = (): number => publishers.reduce((a, p) => a + p.inflight, 0);
  const expected = (): number => (s.qos > 0 ? counters.acked : counters.sent) * copies;
  const sequenced = s.qos === 2 && s.payload >= 14;
  // Distinct copies: a duplicate must not stand in for a lost copy.
  const distinct = (): number => counters.received - counters.duplicates;
  const t0 = performance.now();
  let lastProgress = t0;
  let last = -1;
  for (;;) {
    const done = distinct() >= expected() && (s.qos === 0 || inflight() === 0);
    const now = performance.now();
    const progress = counters.received + counters.acked;
    if (progress !== last) {
      last = progress;
      lastProgress = now;
    }
    if (done || now - t0 > s.drainMs || now - lastProgress > 1000) {
      if (s.qos === 2 && !sequenced && inflight() === 0) {
        // No sequence numbers: every flow completed, so a surplus can only be duplicates.
        counters.duplicates = Math.max(0, counters.received - expected());
      }
      send({
        type: 'final',
        ...counters,
        expected: expected(),
        sequenced,
        settled: done,
        drainMs: now - t0,
        inflight: inflight(),
        latency: latencySummary(),
        firstError,
      });
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------
// Idle connections

async function idle(s: IdleSpec): Promise<void> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let next = 0;
  let connected = 0;
  let failed = 0;
  let failure: string | undefined;
  const worker = async (): Promise<void> => {
    while (next < s.connections) {
      const i = next++;
      const c = new Client(s.host, s.port, false, s.transport);
      try {
        await c.handshake(`${s.clientPrefix}${i}`, true, s.keepAlive, s.credentials);
        connected++;
      } catch (err) {
        failed++;
        failure ??= (err as Error).message;
        c.socket.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(s.concurrency, s.connections) }, worker));
  const cpu = process.cpuUsage(cpu0);
  send({
    type: 'idle-done',
    connected,
    failed,
    ms: performance.now() - t0,
    cpuUs: cpu.user + cpu.system,
    firstError: failure ?? firstError,
  });
}

// ---------------------------------------------------------------------------------------------
// Control

function close(): void {
  running = false;
  for (const c of connections.conns) {
    c.closing = true;
    c.socket.destroy();
  }
  setImmediate(() => process.exit(0));
}

process.on('message', (msg: ToLoadgen) => {
  const fail = (err: unknown): void =>
    send({ type: 'error', message: (err as Error).message ?? String(err) });
  switch (msg.type) {
    case 'setup':
      setup(msg.spec).catch(fail);
      break;
    case 'start':
      start();
      break;
    case 'snap':
      if (msg.record) {
        latN = 0;
        latStride = 1;
        latSkip = 0;
        lat = lat.length === LAT_CAP ? lat : new Float64Array(LAT_CAP);
      }
      // Reply first, then switch, so the window's edges match the counters.
      send(snap());
      recording = msg.record;
      break;
    case 'stop':
      stop().catch(fail);
      break;
    case 'idle':
      idle(msg.spec).catch(fail);
      break;
    case 'close':
      close();
      break;
  }
});
// The parent is gone: nothing left to do.
process.on('disconnect', close);
if (process.send === undefined) {
  console.error('loadgen: run by bench/load.ts (needs an IPC channel)');
  process.exit(2);
}
send({ type: 'hello' });
