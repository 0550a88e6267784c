/**
 * Persistence benchmark: what the durable store costs, and what a large queue costs.
 *
 *   npm run bench:persist                      # full run, 3 rounds, 1 000 000 queued (~6–9 min)
 *   node dist/bench/persist.js --quick         # 1 round, 100 000 queued (~1 min)
 *   node dist/bench/persist.js --only fan-in --rounds 5
 *   node dist/bench/persist.js --only queue --queue-count 2000000 --json out.json
 *
 * Three brokers, each a child process on its own port with a fresh temporary directory:
 *   cicada durable   node dist/src/cli/main.js --data DIR  (LMDB, group commit: a QoS 1
 *                    PUBLISH is acknowledged only after its deliveries were fsync'd)
 *   cicada memory    the same with --memory
 *   mosquitto        Mosquitto 2 with `persistence true`, `persistence_location DIR/`, and
 *                    the default autosave_interval (1800 s). Its persistence is a periodic
 *                    snapshot of its in-memory state (and one at a clean shutdown): it never
 *                    writes per message, so its figures are those of an in-memory broker,
 *                    and a crash loses every message since the last snapshot, acknowledged
 *                    or not. The `crash` part shows it.
 * Both get the same limits: 2 000 000 queued messages per client (Cicada's
 * broker.maxQueuedMessages, Mosquitto's max_queued_messages, max_queued_bytes 0) and
 * `--inflight` (1024) outbound in flight per connection (mqtt.maxInflightMessages,
 * max_inflight_messages).
 *
 * The load is generated in this process (MQTT 3.1.1 over raw sockets, Cicada's codec; the
 * broker is another process, so the two do not share a core). Publishers use clean sessions
 * and QoS 1 with at most `--window` (50) PUBLISHes awaiting PUBACK each, so the broker always
 * has concurrent writes to share a commit; only acknowledged messages count. Subscribers use
 * persistent sessions (clean session 0) and QoS 1, and acknowledge every delivery.
 *
 * Parts:
 *   fan-in/1    20 publishers → 1 persistent subscriber on bench/in/+ (online)
 *   fan-in/10   20 publishers → 10 persistent subscribers on bench/#, 5 online and 5 offline
 *               (their sessions queue every message)
 *               Per run: `--warmup` then `--duration` seconds measured. msg/s: PUBACKs per
 *               second; CPU µs/msg: broker CPU (utime + stime from /proc) per acknowledged
 *               PUBLISH; PUBACK p50/p99: publish-to-acknowledgement time (for the durable store,
 *               mostly waiting for the group commit's fsync); loss: acknowledged messages an
 *               online subscriber never got. Every round runs all brokers back to back (the
 *               order rotates); tables give medians with the [min–max] over rounds, and ratios
 *               are medians of per-round ratios. Target: durable ≥ 0.5x memory.
 *   queue       An offline persistent subscriber (QoS 1 on bench/q/#); `--queue-count`
 *               (1 000 000) QoS 1 messages of 16 B published to it. Then: broker RSS (and peak),
 *               the data directory's size on disk (du: allocated blocks, and apparent size).
 *               Cicada durable is then killed with SIGKILL and restarted on the same directory:
 *               the time to "ready" (which includes the store's verification pass in a child
 *               process and loading the queue), against a start on an empty directory; then
 *               the subscriber reconnects and every message is drained and checked (each
 *               message carries its publisher and sequence number: lost and duplicated
 *               messages are counted). Mosquitto is stopped with SIGTERM (it writes its
 *               snapshot then) and restarted the same way. Cicada memory: RSS only.
 *   crash       `--crash-count` (10 000) messages queued for an offline subscriber, broker
 *               killed with SIGKILL, restarted, queue drained: how many acknowledged messages
 *               survived a crash (Cicada durable and Mosquitto).
 *
 * Memory: RSS is VmRSS from /proc, a second after the last PUBACK (Node's heap is not
 * collected on demand, so RSS includes garbage not yet collected); peak is VmHWM. `psi cpu`
 * and `psi io` are the machine's pressure (Linux PSI: share of the window in which some task
 * waited for a CPU, or for I/O). On a shared machine they are high at times: throughput is
 * then noisy (durable throughput also with other processes' fsyncs), CPU µs/msg less so.
 *
 * Diagnostics: CICADA_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' passes flags to the
 * Cicada processes (they are stopped with SIGTERM first, so the profile gets written);
 * `--no-restart` drains the queue from the running broker instead.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encode, PublishTemplate } from '../src/codec/mqtt/index.js';
import { parseFlags, parseOrExit, selectBrokers } from './lib/args.js';
import { sleep, withTimeout } from './lib/async.js';
import {
  BrokerProcess,
  CICADA_MAIN,
  cicadaCommand,
  cicadaConfig,
  freePort,
  HOST,
  MOSQUITTO,
  makeTempDir,
  mosquittoCommand,
  mosquittoVersion,
  pressureUs,
  removeTempDir,
  runMain,
  runnable,
} from './lib/brokers.js';
import { PUBACK, RawConnection, V } from './lib/raw-mqtt.js';
import { fmtRange, ms, pct, rateF, ratioCell, us, writeJson } from './lib/report.js';
import { formatBytes, formatRatio, median, renderTable } from './stats.js';

const QUEUE_LIMIT = 2_000_000;

// ---------------------------------------------------------------------------------------------
// Options

type Target = 'durable' | 'memory' | 'mosquitto';
const ALL_TARGETS: Target[] = ['durable', 'memory', 'mosquitto'];
const LABEL: Record<Target, string> = {
  durable: 'cicada durable',
  memory: 'cicada memory',
  mosquitto: 'mosquitto (persist)',
};

interface Options {
  quick: boolean;
  rounds: number;
  durationMs: number;
  warmupMs: number;
  only: string[];
  targets: Target[];
  publishers: number;
  subscribers: number;
  offline: number;
  window: number;
  payload: number;
  inflight: number;
  queueCount: number;
  crashCount: number;
  /** Queue part: restart the broker before draining (default). */
  restart: boolean;
  dir: string;
  json: string | undefined;
}

const HELP = `Usage: node dist/bench/persist.js [options]

  --quick               1 round of 2 s, 100 000 queued messages, 5 000 in the crash check
  --rounds N            rounds of the fan-in parts (default 3; --quick: 1)
  --duration S          measured seconds per fan-in run (default 3; --quick: 2)
  --warmup S            seconds of load before the window opens (default 1)
  --only A,B            parts whose name contains A or B (or is exactly A or B): fan-in/1,
                        fan-in/10, queue, crash
  --brokers A,B         among durable, memory, mosquitto (default: all three)
  --publishers N        publishers in the fan-in and queue parts (default 20)
  --subscribers N       persistent subscribers of the second fan-in part (default 10)
  --offline N           of which offline, queueing (default 5)
  --window N            PUBLISHes awaiting PUBACK per publisher (default 50)
  --payload N           payload bytes, at least 6 (default 16)
  --inflight N          outbound QoS 1 in flight per connection, both brokers (default 1024)
  --queue-count N       messages queued in the queue part (default 1000000; --quick: 100000)
  --crash-count N       messages queued in the crash check (default 10000; --quick: 5000)
  --no-restart          queue part: drain the queue from the running broker, without restarting
  --dir DIR             where the temporary data directories go (default: the OS temp dir)
  --json FILE           also write every measurement to FILE
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    rounds: 3,
    durationMs: 3000,
    warmupMs: 1000,
    only: [],
    targets: [...ALL_TARGETS],
    publishers: 20,
    subscribers: 10,
    offline: 5,
    window: 50,
    payload: 16,
    inflight: 1024,
    queueCount: 1_000_000,
    crashCount: 10_000,
    restart: true,
    dir: tmpdir(),
    json: undefined,
  };
  const set = parseFlags(argv, o, HELP, { rounds: 1, durationMs: 2000 }, (flag, value) => {
    const { num, list } = value;
    switch (flag) {
      case '--brokers':
        o.targets = selectBrokers(list(), ALL_TARGETS);
        break;
      case '--publishers':
        o.publishers = Math.round(num(1, 1000));
        break;
      case '--subscribers':
        o.subscribers = Math.round(num(1, 1000));
        break;
      case '--offline':
        o.offline = Math.round(num(0, 1000));
        break;
      case '--window':
        o.window = Math.round(num(1, 60_000));
        break;
      case '--payload':
        o.payload = Math.round(num(6, 1 << 20));
        break;
      case '--inflight':
        o.inflight = Math.round(num(1, 65_535));
        break;
      case '--queue-count':
        o.queueCount = Math.round(num(1, QUEUE_LIMIT));
        break;
      case '--crash-count':
        o.crashCount = Math.round(num(1, QUEUE_LIMIT));
        break;
      case '--no-restart':
        o.restart = false;
        break;
      case '--dir':
        o.dir = resolve(value.text());
        break;
      default:
        return false;
    }
    return true;
  });
  if (o.quick && !set.has('--queue-count')) o.queueCount = 100_000;
  if (o.quick && !set.has('--crash-count')) o.crashCount = 5000;
  if (o.offline > o.subscribers) throw new Error('--offline: more than --subscribers');
  return o;
}

/** Whether `--only` selects part `name`: by substring, but a part's exact name selects only it. */
function wanted(o: Options, name: string): boolean {
  const names = ['fan-in/1', `fan-in/${o.subscribers}`, 'queue', 'crash'];
  return o.only.length === 0 || o.only.some((f) => f === name || (!names.includes(f) && name.includes(f)));
}

// ---------------------------------------------------------------------------------------------
// Waiting and disk usage

/**
 * Polls `done` every 20 ms until it is true. Fails when `progress()` has not changed for
 * `stallMs` or after `capMs` in all: a safety net, not a threshold of the measurement.
 */
async function until(
  done: () => boolean,
  progress: () => number,
  stallMs: number,
  capMs: number,
  what: string,
): Promise<void> {
  const t0 = performance.now();
  let last = progress();
  let lastChange = t0;
  for (;;) {
    if (done()) return;
    const now = performance.now();
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = now;
    }
    if (now - lastChange > stallMs)
      throw new Error(`${what}: no progress for ${(stallMs / 1000).toFixed(0)} s (at ${p})`);
    if (now - t0 > capMs) throw new Error(`${what}: not done after ${(capMs / 1000).toFixed(0)} s (at ${p})`);
    await sleep(20);
  }
}

interface DiskUsage {
  /** Allocated blocks (what `du` reports). */
  allocated: number;
  /** Sum of file sizes (`du --apparent-size`). */
  apparent: number;
  files: number;
}

function diskUsage(path: string): DiskUsage {
  const out: DiskUsage = { allocated: 0, apparent: 0, files: 0 };
  const walk = (p: string): void => {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p)) walk(join(p, name));
      return;
    }
    out.allocated += st.blocks * 512;
    out.apparent += st.size;
    out.files++;
  };
  walk(path);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Brokers

function unavailable(t: Target): string | undefined {
  if (t === 'mosquitto') {
    return MOSQUITTO === undefined
      ? 'mosquitto binary not found (apt-get install mosquitto): skipped'
      : undefined;
  }
  return existsSync(CICADA_MAIN)
    ? undefined
    : 'dist/src/cli/main.js is missing (build first): Cicada skipped';
}

interface StartTiming {
  /** Spawn to ready (Cicada's "ready" log line; Mosquitto: its port accepts a connection). */
  readyMs: number;
  /** Cicada: from its "starting" to its "listening" line, i.e. opening the store and loading it. */
  openMs: number;
}

/**
 * One broker over its lifetime in one directory: `start` may be called again after `signal`,
 * on the same data.
 */
class Broker extends BrokerProcess {
  readonly dataDir: string;

  constructor(
    readonly target: Target,
    /** A temporary directory of this broker's: configuration files and the data directory. */
    readonly dir: string,
    private readonly o: Options,
  ) {
    super(LABEL[target]);
    this.dataDir = join(dir, 'data');
    mkdirSync(this.dataDir, { recursive: true });
  }

  private command(): string[] {
    if (this.target === 'mosquitto') {
      return mosquittoCommand(this.dir, this.port, { inflight: this.o.inflight, queued: QUEUE_LIMIT }, [
        // Run as root, Mosquitto would switch to the user `mosquitto`, who cannot write our temp dir.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        // Persistence on, autosave_interval left at its default (1800 s).
        'persistence true',
        `persistence_location ${this.dataDir}/`,
      ]);
    }
    const conf = cicadaConfig(this.dir, {
      broker: { maxQueuedMessages: QUEUE_LIMIT },
      mqtt: { maxInflightMessages: this.o.inflight },
    });
    return cicadaCommand(0, [
      '--config',
      conf,
      ...(this.target === 'memory' ? ['--memory'] : ['--data', this.dataDir]),
    ]);
  }

  async start(): Promise<StartTiming> {
    this.port = this.target === 'mosquitto' ? await freePort() : 0;
    const argv = this.command();
    // Cicada logs JSON lines; these three mark its start-up.
    const seen: Record<string, number> = {};
    let onReady: (() => void) | undefined;
    const ready = new Promise<void>((r) => {
      onReady = r;
    });
    const onLine = (line: string): void => {
      if (!line.startsWith('{')) return;
      try {
        const rec = JSON.parse(line) as { msg?: unknown; port?: unknown };
        const msg = String(rec.msg);
        if ((msg === 'starting' || msg === 'listening' || msg === 'ready') && seen[msg] === undefined) {
          seen[msg] = performance.now();
          if (msg === 'listening' && typeof rec.port === 'number') this.port = rec.port;
          if (msg === 'ready') onReady?.();
        }
      } catch {}
    };
    const t0 = performance.now();
    await this.spawn(argv, { onLine });
    if (this.target !== 'mosquitto') {
      await withTimeout(
        Promise.race([ready, this.ended.then(() => Promise.reject(this.failure()))]),
        300_000,
        `${this.label}: waiting for "ready"`,
      );
      const readyAt = seen.ready!;
      return {
        readyMs: readyAt - t0,
        openMs: (seen.listening ?? readyAt) - (seen.starting ?? t0),
      };
    }
    await this.listening(300_000, 10);
    return { readyMs: performance.now() - t0, openMs: Number.NaN };
  }

  /** Sends `signal` and waits up to `waitMs` for the exit; returns the milliseconds it took. */
  async signal(signal: NodeJS.Signals, waitMs: number): Promise<number> {
    const took = await this.exitOn(signal, waitMs);
    if (took === undefined) {
      throw new Error(`${this.label} did not exit within ${(waitMs / 1000).toFixed(0)} s of ${signal}`);
    }
    return took;
  }
}

const makeDir = (o: Options, target: Target): string => makeTempDir(o.dir, `cicada-persist-${target}-`);

// ---------------------------------------------------------------------------------------------
// Load generation (in this process)

const LAT_CAP = 1 << 21;

/** The clients of one run and their counters. */
class Gen {
  readonly conns = new Set<Conn>();
  errors = 0;
  firstError: string | undefined;
  running = false;
  recording = false;
  acked = 0;
  sent = 0;
  received = 0;
  private lat: Float64Array | undefined;
  private latN = 0;

  constructor(readonly port: number) {}

  error(message: string): void {
    this.errors++;
    this.firstError ??= message;
  }

  sample(ms: number): void {
    this.lat ??= new Float64Array(LAT_CAP);
    if (this.latN < LAT_CAP) this.lat[this.latN++] = ms;
  }

  percentiles(): { p50: number; p99: number } {
    if (this.lat === undefined || this.latN === 0) return { p50: Number.NaN, p99: Number.NaN };
    const s = this.lat.subarray(0, this.latN).sort();
    const q = (p: number): number => s[Math.min(this.latN - 1, Math.floor(p * this.latN))]!;
    return { p50: q(0.5), p99: q(0.99) };
  }

  /** Connects `clientId` (clean session or not); resolves with CONNACK's session present flag. */
  async client(
    clientId: string,
    clean: boolean,
    onPublish?: (buf: Buffer, start: number, end: number) => void,
  ): Promise<{ conn: Conn; sessionPresent: boolean }> {
    const conn = new Conn(this);
    conn.onPublish = onPublish;
    const sessionPresent = await withTimeout(
      conn.handshake(clientId, clean, 600),
      30_000,
      `${clientId}: CONNECT`,
    );
    return { conn, sessionPresent };
  }

  close(): void {
    this.running = false;
    for (const c of this.conns) {
      c.closing = true;
      c.socket.destroy();
    }
    this.conns.clear();
  }
}

/**
 * One MQTT 3.1.1 connection. PUBLISH and PUBACK are handled in place by the frame scanner
 * (QoS 1 deliveries are acknowledged, once per received chunk); anything else goes through
 * `decodeAll` to `onControl`.
 */
class Conn extends RawConnection {
  readonly closed: Promise<void>;
  /** A PUBLISH arrived; its payload is buf[start, end). */
  onPublish: ((buf: Buffer, start: number, end: number) => void) | undefined;
  onAck: ((id: number) => void) | undefined;
  /** After each chunk received. */
  onChunk: (() => void) | undefined;

  constructor(private readonly gen: Gen) {
    super(HOST, gen.port, gen);
    this.closed = new Promise((r) => this.socket.once('close', () => r()));
  }

  protected override afterChunk(): void {
    this.onChunk?.();
  }

  protected publishFrame(
    qos: number,
    id: number,
    _dup: boolean,
    buf: Buffer,
    start: number,
    end: number,
  ): void {
    if (qos === 1) this.queueAck(PUBACK, id);
    else if (qos !== 0) this.gen.error(`unexpected QoS ${qos} delivery`);
    this.onPublish?.(buf, start, end);
  }

  /** Only PUBACKs come: publishers use QoS 1. */
  protected ackFrame(type: number, id: number): void {
    if (type === 4) this.onAck?.(id);
  }

  /** SUBSCRIBE at QoS 1. */
  subscribeQos1(filter: string): Promise<void> {
    return withTimeout(this.subscribe(filter, 1), 30_000, `SUBSCRIBE ${filter}`);
  }

  /** DISCONNECT, then waits for the broker to close the connection. */
  async disconnect(): Promise<void> {
    this.closing = true;
    this.socket.end(encode({ type: 'disconnect' }, V));
    await withTimeout(this.closed, 10_000, 'DISCONNECT').catch(() => this.socket.destroy());
  }
}

/**
 * A QoS 1 publisher with a bounded window. Its PUBLISH is encoded once; batches are copies
 * with the packet identifier and the payload's first bytes patched: publisher index (u16 LE)
 * and sequence number (u32 LE), so that a drained queue can be checked message by message.
 */
class Publisher {
  inflight = 0;
  acked = 0;
  private seq = 0;
  private nextId = 1;
  private readonly sentAt = new Float64Array(0x10000);
  private readonly packet: Buffer;
  private readonly idOffset: number;
  private readonly payloadOffset: number;

  constructor(
    private readonly gen: Gen,
    readonly conn: Conn,
    private readonly index: number,
    topic: string,
    payload: number,
    private readonly window: number,
    /** Messages still to send; Infinity: until stopped. */
    private remaining: number,
  ) {
    const body = Buffer.alloc(payload, 'x');
    this.packet = new PublishTemplate(topic, body).encode(V, { qos: 1, packetId: 1 });
    this.payloadOffset = this.packet.length - payload;
    this.idOffset = this.payloadOffset - 2;
    conn.onAck = (id) => {
      this.inflight--;
      this.acked++;
      gen.acked++;
      if (gen.recording) gen.sample(performance.now() - this.sentAt[id]!);
    };
    conn.onChunk = () => this.refill();
    conn.socket.on('drain', () => this.refill());
  }

  /** Sends nothing more; what is in flight may still be acknowledged. */
  stop(): void {
    this.remaining = 0;
  }

  get done(): boolean {
    return this.remaining === 0 && this.inflight === 0;
  }

  refill(): void {
    if (!this.gen.running) return;
    const n = Math.min(this.window - this.inflight, this.remaining);
    if (n <= 0) return;
    const len = this.packet.length;
    const out = Buffer.allocUnsafe(n * len);
    const now = performance.now();
    for (let i = 0, off = 0; i < n; i++, off += len) {
      this.packet.copy(out, off);
      const id = this.nextId;
      this.nextId = id === 0xffff ? 1 : id + 1;
      out[off + this.idOffset] = id >> 8;
      out[off + this.idOffset + 1] = id & 0xff;
      out.writeUInt16LE(this.index, off + this.payloadOffset);
      out.writeUInt32LE(this.seq++, off + this.payloadOffset + 2);
      this.sentAt[id] = now;
    }
    this.inflight += n;
    this.remaining -= n;
    this.gen.sent += n;
    this.conn.socket.write(out);
  }
}

/** Connects `n` publishers (clean sessions) on `${prefix}/i`, `count` messages each. */
async function publishers(
  gen: Gen,
  o: Options,
  idPrefix: string,
  topicPrefix: string,
  counts: number[],
): Promise<Publisher[]> {
  return Promise.all(
    counts.map(async (count, i) => {
      const { conn } = await gen.client(`${idPrefix}p${i}`, true);
      return new Publisher(gen, conn, i, `${topicPrefix}/${i}`, o.payload, o.window, count);
    }),
  );
}

/**
 * Tracks which (publisher, seq) messages a drained queue held: `perPublisher` sequence
 * numbers per publisher.
 */
class Checker {
  readonly seen: Uint8Array;
  distinct = 0;
  duplicates = 0;
  foreign = 0;

  constructor(
    readonly publishers: number,
    readonly perPublisher: number,
  ) {
    this.seen = new Uint8Array(Math.ceil((publishers * perPublisher) / 8));
  }

  /** The first `limit` messages (publisher:seq) not seen, of `counts[p]` sent by each publisher p. */
  missing(counts: readonly number[], limit: number): string[] {
    const out: string[] = [];
    for (let p = 0; p < counts.length && out.length < limit; p++) {
      for (let q = 0; q < counts[p]! && out.length < limit; q++) {
        const k = p * this.perPublisher + q;
        if ((this.seen[k >> 3]! & (1 << (k & 7))) === 0) out.push(`${p}:${q}`);
      }
    }
    return out;
  }

  add(buf: Buffer, start: number, end: number): void {
    if (end - start < 6) {
      this.foreign++;
      return;
    }
    const from = buf.readUInt16LE(start);
    const seq = buf.readUInt32LE(start + 2);
    if (from >= this.publishers || seq >= this.perPublisher) {
      this.foreign++;
      return;
    }
    const k = from * this.perPublisher + seq;
    const bit = 1 << (k & 7);
    if ((this.seen[k >> 3]! & bit) !== 0) this.duplicates++;
    else {
      this.seen[k >> 3] = this.seen[k >> 3]! | bit;
      this.distinct++;
    }
  }
}

/** Splits `total` messages over `n` publishers. */
function split(total: number, n: number): number[] {
  const base = Math.floor(total / n);
  return Array.from({ length: n }, (_, i) => base + (i < total % n ? 1 : 0));
}

let runCounter = 0;
const prefix = (): string => `pb${process.pid % 1000}r${runCounter++}`;

// ---------------------------------------------------------------------------------------------
// Part 1: fan-in

interface FlowScenario {
  name: string;
  title: string;
  subscribers: number;
  online: number;
  filter: string;
}

interface FlowResult {
  kind: 'flow';
  round: number;
  /** Acknowledged PUBLISHes per second in the window. */
  rate: number;
  /** Copies delivered to online subscribers per second. */
  deliveryRate: number;
  cpuPerMsgUs: number;
  cpuPct: number;
  genPct: number;
  pressurePct: number;
  /** Share of the window in which some task on the machine waited for I/O (fsync included). */
  ioPressurePct: number;
  /** PUBACKs inside the measured window. */
  windowAcks: number;
  rss: number;
  p50: number;
  p99: number;
  acked: number;
  loss: number;
  settled: boolean;
  errors: number;
  firstError: string | undefined;
}

interface Failure {
  kind: 'error';
  round: number;
  message: string;
}

function flowScenarios(o: Options): FlowScenario[] {
  const s = o.subscribers;
  const on = s - o.offline;
  const all: FlowScenario[] = [
    {
      name: 'fan-in/1',
      title: `${o.publishers} publishers → 1 persistent subscriber (bench/in/+, online)`,
      subscribers: 1,
      online: 1,
      filter: 'bench/in/+',
    },
    {
      name: `fan-in/${s}`,
      title: `${o.publishers} publishers → ${s} persistent subscribers on bench/# (${on} online, ${o.offline} offline: queued)`,
      subscribers: s,
      online: on,
      filter: 'bench/#',
    },
  ];
  return all.filter((sc) => wanted(o, sc.name));
}

async function runFlow(sc: FlowScenario, target: Target, o: Options, round: number): Promise<FlowResult> {
  const dir = makeDir(o, target);
  const b = new Broker(target, dir, o);
  let gen: Gen | undefined;
  try {
    await b.start();
    gen = new Gen(b.port);
    const g = gen;
    const id = prefix();
    // Subscribers first: persistent sessions; the last `subscribers - online` go offline.
    const subs = await Promise.all(
      Array.from({ length: sc.subscribers }, async (_, i) => {
        const { conn } = await g.client(`${id}s${i}`, false);
        await conn.subscribeQos1(sc.filter);
        if (i >= sc.online) {
          await conn.disconnect();
          return undefined;
        }
        conn.onPublish = () => {
          g.received++;
        };
        return conn;
      }),
    );
    const online = subs.filter((c) => c !== undefined).length;
    const forever = Array.from({ length: o.publishers }, () => Number.POSITIVE_INFINITY);
    const pubs = await publishers(g, o, id, 'bench/in', forever);
    const snap = () => {
      const before = b.cpu();
      const cpu = process.cpuUsage();
      const s = {
        t: performance.now(),
        acked: g.acked,
        received: g.received,
        genUs: cpu.user + cpu.system,
        pressureUs: pressureUs('cpu'),
        ioPressureUs: pressureUs('io'),
      };
      return { ...s, broker: (before + b.cpu()) / 2 };
    };
    g.running = true;
    for (const p of pubs) p.refill();
    await sleep(o.warmupMs);
    const a = snap();
    g.recording = true;
    await sleep(o.durationMs);
    g.recording = false;
    const z = snap();
    const { rss } = b.memory();
    g.running = false;
    for (const p of pubs) p.stop();
    // Settle: every PUBLISH acknowledged, every acknowledged one delivered to each online subscriber.
    let settled = true;
    try {
      await until(
        () => pubs.every((p) => p.done) && g.received >= g.acked * online,
        () => g.acked + g.received,
        3000,
        30_000,
        'settling',
      );
    } catch {
      settled = false;
    }
    b.alive();
    const dt = (z.t - a.t) / 1000;
    const acked = z.acked - a.acked;
    const cpu = z.broker - a.broker;
    const { p50, p99 } = g.percentiles();
    return {
      kind: 'flow',
      round,
      rate: acked / dt,
      deliveryRate: (z.received - a.received) / dt,
      cpuPerMsgUs: acked > 0 ? (cpu * 1e6) / acked : Number.NaN,
      cpuPct: (cpu / dt) * 100,
      genPct: ((z.genUs - a.genUs) / 1e6 / dt) * 100,
      pressurePct: ((z.pressureUs - a.pressureUs) / 1e6 / dt) * 100,
      ioPressurePct: ((z.ioPressureUs - a.ioPressureUs) / 1e6 / dt) * 100,
      windowAcks: acked,
      rss,
      p50,
      p99,
      acked: g.acked,
      loss: Math.max(0, g.acked * online - g.received),
      settled,
      errors: g.errors,
      firstError: g.firstError,
    };
  } finally {
    gen?.close();
    await b.shutdown(5000);
    removeTempDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: a million queued messages

interface QueueResult {
  kind: 'queue';
  target: Target;
  count: number;
  emptyStart: StartTiming;
  idleRss: number;
  fillMs: number;
  fillRate: number;
  fillCpuPerMsgUs: number;
  rss: number;
  peak: number;
  disk: DiskUsage;
  /** How the broker was stopped, and how long that took. */
  stop: string;
  stopMs: number;
  diskAfterStop: DiskUsage | undefined;
  restart: StartTiming | undefined;
  restartRss: number;
  sessionPresent: boolean | undefined;
  drained: number;
  duplicates: number;
  foreign: number;
  /** The first messages missing from the drained queue, as publisher:seq. */
  missing: string[];
  drainMs: number;
  rssAfterDrain: number;
  diskAfterDrain: DiskUsage | undefined;
  errors: number;
  firstError: string | undefined;
}

/** Registers a persistent QoS 1 subscriber on bench/q/# and disconnects it. */
async function offlineSubscriber(b: Broker, clientId: string): Promise<void> {
  const gen = new Gen(b.port);
  try {
    const { conn } = await gen.client(clientId, false);
    await conn.subscribeQos1('bench/q/#');
    await conn.disconnect();
  } finally {
    gen.close();
  }
}

/** Publishes `total` QoS 1 messages to bench/q/i from `o.publishers` publishers, until all are acknowledged. */
async function fill(b: Broker, o: Options, id: string, total: number, progress: boolean): Promise<Gen> {
  const gen = new Gen(b.port);
  const pubs = await publishers(gen, o, id, 'bench/q', split(total, o.publishers));
  gen.running = true;
  for (const p of pubs) p.refill();
  let lastShown = performance.now();
  await until(
    () => {
      if (progress && performance.now() - lastShown > 10_000) {
        lastShown = performance.now();
        process.stdout.write(`    … ${gen.acked} / ${total} acknowledged\n`);
      }
      return pubs.every((p) => p.done);
    },
    () => gen.acked,
    30_000,
    3_600_000,
    `publishing ${total}`,
  );
  gen.running = false;
  return gen;
}

/**
 * Reconnects the persistent subscriber and receives its queue until all `total` arrived
 * (or nothing came for a while: the rest is missing).
 */
async function drain(
  b: Broker,
  o: Options,
  clientId: string,
  total: number,
): Promise<{ checker: Checker; ms: number; sessionPresent: boolean; gen: Gen }> {
  const gen = new Gen(b.port);
  const per = Math.ceil(total / o.publishers);
  const checker = new Checker(o.publishers, per);
  const t0 = performance.now();
  let last = t0;
  // Set before CONNECT: the first deliveries may arrive in the same chunk as CONNACK.
  const { sessionPresent } = await gen.client(clientId, false, (buf, start, end) => {
    checker.add(buf, start, end);
    last = performance.now();
  });
  // The whole queue, or no delivery for 5 s (10 s before the first): what is missing is lost.
  let lastShown = t0;
  for (;;) {
    if (performance.now() - lastShown > 10_000) {
      lastShown = performance.now();
      process.stdout.write(`    … ${checker.distinct} / ${total} drained\n`);
    }
    if (checker.distinct >= total) break;
    const quiet = performance.now() - last;
    if (quiet > 5000) break;
    if (performance.now() - t0 > 3_600_000) break;
    await sleep(20);
  }
  const ms = (checker.distinct >= total ? last : performance.now()) - t0;

  return { checker, ms, sessionPresent, gen };
}

async function runQueue(target: Target, o: Options): Promise<QueueResult> {
  const dir = makeDir(o, target);
  const b = new Broker(target, dir, o);
  const gens: Gen[] = [];
  const total = o.queueCount;
  const id = prefix();
  const subId = `${id}q`;
  try {
    const emptyStart = await b.start();
    await sleep(300);
    const idleRss = b.memory().rss;
    await offlineSubscriber(b, subId);
    const cpu0 = b.cpu();
    const t0 = performance.now();
    const filled = await fill(b, o, id, total, true);
    gens.push(filled);
    const fillMs = performance.now() - t0;
    const fillCpu = b.cpu() - cpu0;
    filled.close();
    await sleep(1000);
    const { rss, peak } = b.memory();
    const disk = diskUsage(b.dataDir);
    const r: QueueResult = {
      kind: 'queue',
      target,
      count: total,
      emptyStart,
      idleRss,
      fillMs,
      fillRate: total / (fillMs / 1000),
      fillCpuPerMsgUs: (fillCpu * 1e6) / total,
      rss,
      peak,
      disk,
      stop: '',
      stopMs: Number.NaN,
      diskAfterStop: undefined,
      restart: undefined,
      restartRss: Number.NaN,
      sessionPresent: undefined,
      drained: Number.NaN,
      duplicates: Number.NaN,
      foreign: 0,
      missing: [],
      drainMs: Number.NaN,
      rssAfterDrain: Number.NaN,
      diskAfterDrain: undefined,
      errors: filled.errors,
      firstError: filled.firstError,
    };
    if (o.restart) {
      if (target === 'memory') {
        r.stop = 'not restarted (in memory)';
        return r;
      }
      if (target === 'durable') {
        r.stop = 'SIGKILL';
        r.stopMs = await b.signal('SIGKILL', 10_000);
      } else {
        // Mosquitto writes its snapshot at a clean shutdown.
        r.stop = 'SIGTERM (snapshot)';
        r.stopMs = await b.signal('SIGTERM', 300_000);
      }
      r.diskAfterStop = diskUsage(b.dataDir);
      r.restart = await b.start();
      r.restartRss = b.memory().rss;
    } else {
      r.stop = 'not stopped (--no-restart)';
    }
    const d = await drain(b, o, subId, total);
    gens.push(d.gen);
    r.sessionPresent = d.sessionPresent;
    r.drained = d.checker.distinct;
    r.duplicates = d.checker.duplicates;
    r.foreign = d.checker.foreign;
    r.missing = d.checker.missing(split(total, o.publishers), 20);
    r.drainMs = d.ms;
    b.alive();
    await sleep(500);
    r.rssAfterDrain = b.memory().rss;
    r.diskAfterDrain = diskUsage(b.dataDir);
    r.errors += d.gen.errors;
    r.firstError ??= d.gen.firstError;
    return r;
  } finally {
    for (const g of gens) g.close();
    await b.shutdown(5000);
    removeTempDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Part 3: crash check

interface CrashResult {
  kind: 'crash';
  target: Target;
  acked: number;
  recovered: number;
  duplicates: number;
  restartMs: number;
}

async function runCrash(target: Target, o: Options): Promise<CrashResult> {
  const dir = makeDir(o, target);
  const b = new Broker(target, dir, o);
  const gens: Gen[] = [];
  const id = prefix();
  const subId = `${id}q`;
  try {
    await b.start();
    await offlineSubscriber(b, subId);
    const filled = await fill(b, o, id, o.crashCount, false);
    gens.push(filled);
    filled.close();
    await sleep(200);
    await b.signal('SIGKILL', 10_000);
    const restart = await b.start();
    const d = await drain(b, o, subId, o.crashCount);
    gens.push(d.gen);
    return {
      kind: 'crash',
      target,
      acked: filled.acked,
      recovered: d.checker.distinct,
      duplicates: d.checker.duplicates,
      restartMs: restart.readyMs,
    };
  } finally {
    for (const g of gens) g.close();
    await b.shutdown(5000);
    removeTempDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting

const bytes = (x: number): string =>
  !Number.isFinite(x)
    ? '–'
    : x >= 1024 ** 3
      ? `${(x / 1024 ** 3).toFixed(2)} GiB`
      : formatBytes(Math.round(x));
const secs = (x: number): string =>
  Number.isFinite(x) ? `${(x / 1000).toFixed(x >= 10_000 ? 1 : 2)} s` : '–';

type FlowResults = Map<Target, (FlowResult | Failure)[]>;

function okRuns(results: FlowResults, t: Target): FlowResult[] {
  return (results.get(t) ?? []).filter((r): r is FlowResult => r.kind === 'flow');
}

/** Per-round ratios of `value`, a over b, for rounds where both ran. */
function roundRatios(results: FlowResults, a: Target, b: Target, value: (r: FlowResult) => number): number[] {
  const out: number[] = [];
  for (const r of okRuns(results, a)) {
    const other = okRuns(results, b).find((x) => x.round === r.round);
    if (other === undefined) continue;
    const ratio = value(r) / value(other);
    if (Number.isFinite(ratio)) out.push(ratio);
  }
  return out;
}

const RATIO_PAIRS: [Target, Target][] = [
  ['durable', 'memory'],
  ['durable', 'mosquitto'],
  ['memory', 'mosquitto'],
];

function printFlow(sc: FlowScenario, results: FlowResults, targets: Target[], o: Options): void {
  const rows: string[][] = [];
  const notes: string[] = [];
  const pressure: number[] = [];
  const ioPressure: number[] = [];
  for (const t of targets) {
    const all = results.get(t) ?? [];
    const ok = okRuns(results, t);
    for (const f of all)
      if (f.kind === 'error') notes.push(`${LABEL[t]} round ${f.round + 1} failed: ${f.message}`);
    if (ok.length === 0) {
      rows.push([LABEL[t], 'failed']);
      continue;
    }
    pressure.push(...ok.map((r) => r.pressurePct));
    ioPressure.push(...ok.map((r) => r.ioPressurePct));
    for (const r of ok) {
      if (r.windowAcks === 0) {
        notes.push(
          `${LABEL[t]} round ${r.round + 1}: no PUBACK inside the measured window (commits slower than the window: try a longer --duration)`,
        );
      }
    }
    const loss = ok.reduce((a, r) => a + r.loss, 0);
    const unsettled = ok.filter((r) => !r.settled).length;
    for (const r of ok) {
      if (r.errors > 0)
        notes.push(`${LABEL[t]} round ${r.round + 1}: ${r.errors} client errors (${r.firstError})`);
    }
    if (unsettled > 0)
      notes.push(`${LABEL[t]}: ${unsettled} run(s) did not settle within the safety timeout`);
    const gen = median(ok.map((r) => r.genPct));
    rows.push([
      LABEL[t],
      fmtRange(
        ok.map((r) => r.rate),
        rateF,
      ),
      fmtRange(
        ok.map((r) => r.deliveryRate),
        rateF,
      ),
      fmtRange(
        ok.map((r) => r.cpuPerMsgUs),
        us,
      ),
      pct(median(ok.map((r) => r.cpuPct))),
      `${pct(gen)}${gen >= 90 ? '*' : ''}`,
      ms(median(ok.map((r) => r.p50))),
      ms(median(ok.map((r) => r.p99))),
      bytes(median(ok.map((r) => r.rss))),
      String(loss),
    ]);
    if (gen >= 90)
      notes.push('* the load generator used ≥ 90% of a core: that figure may be generator-bound');
  }
  console.log(`\n${sc.name} — ${sc.title}; QoS 1, ${o.payload} B payload, window ${o.window}`);
  console.log(
    renderTable(
      [
        'broker',
        'msg/s (acked)',
        'deliveries/s',
        'CPU µs/msg',
        'CPU',
        'gen',
        'PUBACK p50',
        'p99',
        'RSS',
        'loss',
      ],
      rows,
      ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
  );
  const ratioRows: string[][] = [];
  for (const [a, b] of RATIO_PAIRS) {
    if (!targets.includes(a) || !targets.includes(b)) continue;
    const rate = roundRatios(results, a, b, (r) => r.rate);
    const cpu = roundRatios(results, a, b, (r) => r.cpuPerMsgUs);
    let verdict = '';
    if (a === 'durable' && b === 'memory' && rate.length > 0) {
      verdict = median(rate) >= 0.5 ? 'target ≥ 0.50x: met' : 'target ≥ 0.50x: MISSED';
    }
    ratioRows.push([`${LABEL[a]} / ${LABEL[b]}`, ratioCell(rate), ratioCell(cpu), verdict]);
  }
  if (ratioRows.length > 0) {
    console.log('');
    console.log(
      renderTable(['ratio (per round)', 'msg/s', 'CPU µs/msg', ''], ratioRows, [
        'left',
        'right',
        'right',
        'left',
      ]),
    );
  }
  const ioPsi = median(ioPressure.filter(Number.isFinite));
  if (ioPsi >= 10) {
    notes.push(
      `I/O pressure ${ioPsi.toFixed(0)}% (median): other tasks waited for the disk too; fsync latency, hence durable msg/s, is noisy`,
    );
  }
  const psi = median(pressure.filter(Number.isFinite));
  if (psi >= 10) {
    notes.push(
      `CPU pressure ${psi.toFixed(0)}% (median): other tasks competed for the CPUs; msg/s is noisy, CPU µs/msg less so`,
    );
  }
  for (const n of [...new Set(notes)]) console.log(`  note: ${n}`);
}

function printQueue(
  results: (QueueResult | { kind: 'error'; target: Target; message: string })[],
  o: Options,
): void {
  const ok = results.filter((r): r is QueueResult => r.kind === 'queue');
  for (const r of results) if (r.kind === 'error') console.log(`  ${LABEL[r.target]} failed: ${r.message}`);
  if (ok.length === 0) return;
  const row = (label: string, f: (r: QueueResult) => string): string[] => [label, ...ok.map(f)];
  const du = (d: DiskUsage | undefined): string =>
    d === undefined
      ? '–'
      : d.files === 0
        ? '0 (no file)'
        : `${bytes(d.allocated)} (apparent ${bytes(d.apparent)})`;
  const rows = [
    row('queued (acknowledged)', (r) => String(r.count)),
    row('publish time', (r) => `${secs(r.fillMs)} (${rateF(r.fillRate)}msg/s)`),
    row('broker CPU per message', (r) => `${us(r.fillCpuPerMsgUs)} µs`),
    row('RSS, empty broker', (r) => bytes(r.idleRss)),
    row('RSS with the queue', (r) => bytes(r.rss)),
    row('  per queued message', (r) => `${((r.rss - r.idleRss) / r.count).toFixed(0)} B`),
    row('peak RSS (VmHWM)', (r) => bytes(r.peak)),
    row('data dir on disk (du)', (r) => (r.target === 'memory' ? '–' : du(r.disk))),
    row('  per queued message', (r) =>
      r.target === 'memory' ? '–' : `${(r.disk.allocated / r.count).toFixed(0)} B`,
    ),
    row('stopped by', (r) => (r.target === 'memory' ? '–' : `${r.stop}, ${ms(r.stopMs)}`)),
    row('data dir after stop', (r) => du(r.diskAfterStop)),
    row('start, empty dir → ready', (r) => ms(r.emptyStart.readyMs)),
    row('restart with queue → ready', (r) => (r.restart === undefined ? '–' : ms(r.restart.readyMs))),
    row('  of which store open+load', (r) =>
      r.restart === undefined || r.target === 'mosquitto'
        ? '–'
        : `${ms(r.restart.openMs)} (empty: ${ms(r.emptyStart.openMs)})`,
    ),
    row('RSS after restart', (r) => bytes(r.restartRss)),
    row(o.restart ? 'drained after restart' : 'drained (no restart)', (r) =>
      !Number.isFinite(r.drained)
        ? '–'
        : `${r.drained}/${r.count}${r.drained < r.count ? ` (${r.count - r.drained} LOST)` : ''}, ${r.duplicates} dup`,
    ),
    row('  drain time', (r) =>
      !Number.isFinite(r.drained)
        ? '–'
        : `${secs(r.drainMs)} (${rateF(r.drained / (r.drainMs / 1000))}msg/s)`,
    ),
    row('RSS after drain', (r) => bytes(r.rssAfterDrain)),
    row('data dir after drain', (r) => du(r.diskAfterDrain)),
  ];
  console.log(
    `\nqueue — ${o.queueCount} QoS 1 messages of ${o.payload} B for 1 offline persistent subscriber, ` +
      `${o.publishers} publishers, window ${o.window}`,
  );
  console.log(
    renderTable(['', ...ok.map((r) => LABEL[r.target])], rows, ['left', ...ok.map(() => 'right' as const)]),
  );
  for (const r of ok) {
    if (r.errors > 0) console.log(`  note: ${LABEL[r.target]}: ${r.errors} client errors (${r.firstError})`);
    if (r.missing.length > 0) {
      console.log(
        `  note: ${LABEL[r.target]}: missing (publisher:seq) ${r.missing.join(' ')}${r.missing.length === 20 ? ' …' : ''}`,
      );
    }
    if (r.foreign > 0) console.log(`  note: ${LABEL[r.target]}: ${r.foreign} unexpected messages drained`);
    if (r.sessionPresent === false)
      console.log(`  note: ${LABEL[r.target]}: no session present after restart`);
  }
  if (ok.some((r) => r.target === 'mosquitto')) {
    console.log(
      '  note: Mosquitto keeps the queue in memory; with autosave_interval at its default (1800 s) the data\n' +
        '        directory stays empty until a clean shutdown writes the snapshot (the row "after stop").',
    );
  }
  if (ok.some((r) => r.target === 'durable')) {
    console.log(
      '  note: Cicada durable is killed (SIGKILL), not stopped: the restart recovers from a crash. Its restart\n' +
        '        includes the verification pass (the whole file read in a child process) and loading the queue.',
    );
  }
}

function printCrash(
  results: (CrashResult | { kind: 'error'; target: Target; message: string })[],
  o: Options,
): void {
  for (const r of results) if (r.kind === 'error') console.log(`  ${LABEL[r.target]} failed: ${r.message}`);
  const ok = results.filter((r): r is CrashResult => r.kind === 'crash');
  if (ok.length === 0) return;
  console.log(
    `\ncrash — ${o.crashCount} QoS 1 messages acknowledged for an offline persistent subscriber, then SIGKILL and restart`,
  );
  console.log(
    renderTable(
      ['broker', 'acknowledged', 'recovered', 'lost', 'dup', 'restart'],
      ok.map((r) => [
        LABEL[r.target],
        String(r.acked),
        String(r.recovered),
        String(r.acked - r.recovered),
        String(r.duplicates),
        ms(r.restartMs),
      ]),
      ['left', 'right', 'right', 'right', 'right', 'right'],
    ),
  );
}

function printSummary(all: { sc: FlowScenario; results: FlowResults }[], targets: Target[]): void {
  if (all.length === 0) return;
  const pairs = RATIO_PAIRS.filter(([a, b]) => targets.includes(a) && targets.includes(b));
  const rows = all.map(({ sc, results }) => [
    sc.name,
    ...targets.map((t) => {
      const ok = okRuns(results, t);
      return ok.length === 0
        ? '–'
        : `${rateF(median(ok.map((r) => r.rate)))} / ${us(median(ok.map((r) => r.cpuPerMsgUs)))}µs`;
    }),
    ...pairs.map(([a, b]) => {
      const xs = roundRatios(results, a, b, (r) => r.rate);
      return xs.length === 0 ? '–' : formatRatio(median(xs));
    }),
  ]);
  console.log(
    '\nSummary (msg/s / broker CPU per message, medians; ratios of msg/s are medians of per-round ratios)',
  );
  console.log(
    renderTable(['scenario', ...targets.map((t) => LABEL[t]), ...pairs.map(([a, b]) => `${a}/${b}`)], rows, [
      'left',
      ...targets.map(() => 'right' as const),
      ...pairs.map(() => 'right' as const),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseOrExit(parseArgs);
  console.log('Cicada persistence benchmark');
  console.log(
    `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; mosquitto ${mosquittoVersion()}`,
  );
  const targets = runnable(o.targets, unavailable);
  const flows = flowScenarios(o);
  const doQueue = wanted(o, 'queue');
  const doCrash = wanted(o, 'crash');
  console.log(
    `brokers: ${targets.map((t) => LABEL[t]).join(', ')}; data in ${o.dir}\n` +
      `limits (both): ${QUEUE_LIMIT} queued messages per client, ${o.inflight} QoS 1 in flight per connection\n` +
      `load: QoS 1, ${o.payload} B payloads, ${o.publishers} publishers with ${o.window} awaiting PUBACK each; ` +
      `fan-in: ${o.rounds} round(s), ${o.warmupMs / 1000} s warm-up + ${o.durationMs / 1000} s measured`,
  );
  if (targets.includes('mosquitto')) {
    console.log(
      "note: Mosquitto's persistence is a periodic snapshot (autosave_interval 1800 s by default, and at a clean\n" +
        '      shutdown): it does not write per message, so its "persistent" figures are in-memory figures, and\n' +
        '      it is not crash-safe: a crash loses every message since the last snapshot, acknowledged or not.\n' +
        "      Cicada durable acknowledges a QoS 1 PUBLISH only after its deliveries were fsync'd.",
    );
  }
  const json: unknown[] = [];
  const all: { sc: FlowScenario; results: FlowResults }[] = [];
  for (const sc of flows) {
    const results: FlowResults = new Map();
    for (let round = 0; round < o.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const t of order) {
        const started = Date.now();
        let entry: FlowResult | Failure | undefined;
        for (let attempt = 0; entry === undefined; attempt++) {
          try {
            entry = await runFlow(sc, t, o, round);
          } catch (err) {
            const message = (err as Error).message.split('\n').join(' | ');
            if (attempt === 0) {
              console.log(
                `  ${sc.name}  round ${round + 1}/${o.rounds}  ${LABEL[t]} failed, retrying: ${message}`,
              );
              continue;
            }
            entry = { kind: 'error', round, message };
          }
        }
        if (!results.has(t)) results.set(t, []);
        results.get(t)!.push(entry);
        json.push({ part: sc.name, broker: t, ...entry });
        const took = `(${((Date.now() - started) / 1000).toFixed(1)} s)`;
        console.log(
          entry.kind === 'error'
            ? `  ${sc.name}  round ${round + 1}/${o.rounds}  ${LABEL[t].padEnd(19)} FAILED: ${entry.message}`
            : `  ${sc.name}  round ${round + 1}/${o.rounds}  ${LABEL[t].padEnd(19)} ${rateF(entry.rate)}msg/s  ` +
                `CPU ${us(entry.cpuPerMsgUs)} µs/msg (${pct(entry.cpuPct)})  gen ${pct(entry.genPct)}  ` +
                `PUBACK p50 ${ms(entry.p50)} p99 ${ms(entry.p99)}  loss ${entry.loss}  psi cpu ${pct(entry.pressurePct)} io ${pct(entry.ioPressurePct)}  ${took}`,
        );
      }
    }
    printFlow(sc, results, targets, o);
    all.push({ sc, results });
  }
  printSummary(all, targets);

  if (doQueue) {
    const results: (QueueResult | { kind: 'error'; target: Target; message: string })[] = [];
    for (const t of targets) {
      const started = Date.now();
      console.log(`  queue  ${LABEL[t]}: ${o.queueCount} messages …`);
      try {
        const r = await runQueue(t, o);
        results.push(r);
        json.push({ part: 'queue', broker: t, ...r });
        console.log(
          `  queue  ${LABEL[t]}: published in ${secs(r.fillMs)}, RSS ${bytes(r.rss)}, disk ${bytes(r.disk.allocated)}` +
            (r.restart === undefined ? '' : `, restart ${ms(r.restart.readyMs)}`) +
            (Number.isFinite(r.drained) ? `, drained ${r.drained} in ${secs(r.drainMs)}` : '') +
            `  (${((Date.now() - started) / 1000).toFixed(1)} s)`,
        );
      } catch (err) {
        const message = (err as Error).message.split('\n').join(' | ');
        results.push({ kind: 'error', target: t, message });
        json.push({ part: 'queue', broker: t, kind: 'error', message });
        console.log(`  queue  ${LABEL[t]} FAILED: ${message}`);
      }
    }
    printQueue(results, o);
  }

  if (doCrash) {
    const results: (CrashResult | { kind: 'error'; target: Target; message: string })[] = [];
    for (const t of targets) {
      if (t === 'memory') continue;
      try {
        const r = await runCrash(t, o);
        results.push(r);
        json.push({ part: 'crash', broker: t, ...r });
      } catch (err) {
        const message = (err as Error).message.split('\n').join(' | ');
        results.push({ kind: 'error', target: t, message });
        json.push({ part: 'crash', broker: t, kind: 'error', message });
      }
    }
    printCrash(results, o);
  }

  writeJson(o.json, o, json);
}

runMain(main);
