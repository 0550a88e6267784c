/**
 * The load generator process (bench/loadgen.ts) seen from a benchmark (bench/load.ts,
 * bench/transports.ts): starting it, talking to it over IPC, and the two measurements made
 * with it against a broker process: a message flow (rate, CPU per message, latency, loss)
 * and a burst of connections (connect rate, CPU and memory per connection).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type {
  FinalReply,
  FromLoadgen,
  IdleReply,
  IdleSpec,
  LoadSpec,
  SnapReply,
  ToLoadgen,
} from '../loadgen.js';
import { sleep, withTimeout } from './async.js';
import { type BrokerProcess, children, pressureUs, raiseFdLimit, root } from './brokers.js';

// ---------------------------------------------------------------------------------------------
// The load generator process

/** A load generator child process with its open-file limit raised to `fdLimit`. */
export class Loadgen {
  private readonly proc: ChildProcess;
  private waiting:
    | { type: string; resolve: (m: FromLoadgen) => void; reject: (e: Error) => void }
    | undefined;
  private exited: string | undefined;
  private hello: Promise<void>;
  private stderr = '';

  constructor(fdLimit: number) {
    const script = join(root, 'dist', 'bench', 'loadgen.js');
    this.proc = spawn('bash', ['-c', `${raiseFdLimit(fdLimit)}; exec "$0" "$@"`, process.execPath, script], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    children.add(this.proc);
    // Kept for error messages, and passed through.
    this.proc.stderr!.on('data', (c: Buffer) => {
      process.stderr.write(c);
      this.stderr = (this.stderr + c.toString('utf8')).slice(-2000);
    });
    this.hello = withTimeout(
      new Promise<void>((resolve, reject) => {
        this.proc.once('message', () => resolve());
        this.proc.once('exit', () => setImmediate(() => reject(new Error(this.exited))));
      }),
      15_000,
      'load generator start',
    );
    this.hello.catch(() => {});
    this.proc.on('message', (m: FromLoadgen) => {
      const w = this.waiting;
      if (w === undefined) return;
      if (m.type === 'error') {
        this.waiting = undefined;
        w.reject(new Error(`load generator: ${m.message}`));
      } else if (m.type === w.type) {
        this.waiting = undefined;
        w.resolve(m);
      }
    });
    this.proc.on('exit', (code, signal) => {
      children.delete(this.proc);
      const lines = this.stderr.trim().split('\n');
      const tail = lines.find((l) => /Error/.test(l)) ?? lines.at(-1) ?? '';
      this.exited = `load generator exited (${signal ?? `code ${code}`})${tail ? `: ${tail}` : ''}`;
      this.waiting?.reject(new Error(this.exited));
      this.waiting = undefined;
    });
  }

  /** Resolves once the generator is listening for commands. */
  started(): Promise<void> {
    return this.hello;
  }

  send(msg: ToLoadgen): void {
    if (this.exited !== undefined) throw new Error(this.exited);
    this.proc.send(msg);
  }

  /** Sends `msg` and waits for the reply of type `type`. */
  request<T extends FromLoadgen>(msg: ToLoadgen, type: T['type'], timeoutMs: number): Promise<T> {
    const reply = new Promise<T>((resolve, reject) => {
      if (this.exited !== undefined) {
        reject(new Error(this.exited));
        return;
      }
      this.waiting = { type, resolve: resolve as (m: FromLoadgen) => void, reject };
    });
    this.send(msg);
    return withTimeout(reply, timeoutMs, `load generator: ${msg.type}`);
  }

  async close(): Promise<void> {
    if (this.exited !== undefined) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    try {
      this.proc.send({ type: 'close' } satisfies ToLoadgen);
    } catch {}
    const ok = await Promise.race([gone.then(() => true), sleep(3000).then(() => false)]);
    if (!ok) this.proc.kill('SIGKILL');
  }
}

let runCounter = 0;

/** A client identifier prefix no earlier run of this process used (`suffix` tells kinds apart). */
export function clientPrefix(suffix = ''): string {
  return `b${process.pid % 1000}r${runCounter++}${suffix}`;
}

// ---------------------------------------------------------------------------------------------
// Measurements

/** One message-flow measurement. */
export interface FlowResult {
  kind: 'flow';
  round: number;
  /** Deliveries per second (copies received by subscribers) in the window. */
  rate: number;
  /** PUBLISHes per second written by the publishers in the window. */
  pubRate: number;
  cpuPerMsgUs: number;
  cpuPct: number;
  genPct: number;
  /** Share of the window in which some runnable task on the machine waited for a CPU. */
  pressurePct: number;
  rss: number;
  p50: number;
  p99: number;
  qos: 0 | 1 | 2;
  /** Expected copies never delivered. */
  loss: number;
  lossPct: number;
  /** QoS 2: copies delivered a second time (exactly-once violated); 0 otherwise. */
  duplicates: number;
  /** QoS 2: PUBLISHes repeating an identifier awaiting PUBREL (retransmissions, not delivered). */
  resent: number;
  /** Whether `duplicates` was checked message by message (see FinalReply.sequenced). */
  sequenced: boolean;
  expected: number;
  received: number;
  settled: boolean;
  errors: number;
  firstError: string | undefined;
}

/** One burst of connections (the generator's `idle` command). */
export interface IdleResult {
  kind: 'idle';
  round: number;
  connected: number;
  failed: number;
  /** Connections CONNACKed per second. */
  connRate: number;
  rssPerConn: number;
  rssBefore: number;
  rssAfter: number;
  cpuPerConnUs: number;
  genPct: number;
  /** Share of the run in which some runnable task on the machine waited for a CPU. */
  pressurePct: number;
  firstError: string | undefined;
}

/** How long a flow measurement runs: load before the window, the window, the longest drain. */
export interface FlowTiming {
  warmupMs: number;
  durationMs: number;
  drainMs: number;
}

interface CpuSnap {
  gen: SnapReply;
  broker: number;
  pressureUs: number;
}

/** Generator counters, with the broker's CPU read on both sides of the round trip. */
async function snapshot(g: Loadgen, b: BrokerProcess, record: boolean): Promise<CpuSnap> {
  const before = b.cpu();
  const gen = await g.request<SnapReply>({ type: 'snap', record }, 'snap', 10_000);
  const after = b.cpu();
  return { gen, broker: (before + after) / 2, pressureUs: pressureUs('cpu') };
}

/**
 * Runs the flow `spec` against broker `b`: set-up, `warmupMs` of load, then a window of
 * `durationMs` whose counters and broker CPU make the result; then waits for deliveries to
 * settle (at most `spec.drainMs`) to count what was lost.
 */
export async function measureFlow(
  g: Loadgen,
  b: BrokerProcess,
  spec: LoadSpec,
  timing: FlowTiming,
  round: number,
): Promise<FlowResult> {
  await g.request({ type: 'setup', spec }, 'ready', 30_000);
  g.send({ type: 'start' });
  await sleep(timing.warmupMs);
  const a = await snapshot(g, b, true);
  await sleep(timing.durationMs);
  const z = await snapshot(g, b, false);
  const rss = b.memory().rss;
  const fin = await g.request<FinalReply>({ type: 'stop' }, 'final', timing.drainMs + 10_000);
  b.alive();
  const dt = (z.gen.t - a.gen.t) / 1000;
  const delivered = z.gen.received - a.gen.received;
  const cpu = z.broker - a.broker;
  // Distinct copies: a duplicate must not make up for a lost copy.
  const loss = Math.max(0, fin.expected - (fin.received - fin.duplicates));
  return {
    kind: 'flow',
    round,
    rate: delivered / dt,
    pubRate: (z.gen.sent - a.gen.sent) / dt,
    cpuPerMsgUs: delivered > 0 ? (cpu * 1e6) / delivered : Number.NaN,
    cpuPct: (cpu / dt) * 100,
    genPct: ((z.gen.cpuUs - a.gen.cpuUs) / 1e6 / dt) * 100,
    pressurePct: ((z.pressureUs - a.pressureUs) / 1e6 / dt) * 100,
    rss,
    p50: fin.latency?.p50 ?? Number.NaN,
    p99: fin.latency?.p99 ?? Number.NaN,
    qos: spec.qos,
    loss,
    lossPct: fin.expected > 0 ? (loss / fin.expected) * 100 : 0,
    duplicates: fin.duplicates,
    resent: fin.resent,
    sequenced: fin.sequenced,
    expected: fin.expected,
    received: fin.received,
    settled: fin.settled,
    errors: fin.errors,
    firstError: fin.firstError,
  };
}

/**
 * Opens `spec.connections` connections to broker `b` (`spec.concurrency` at a time) and keeps
 * them open: the connect rate, and the broker's CPU and memory per connection.
 */
export async function measureConnections(
  g: Loadgen,
  b: BrokerProcess,
  spec: IdleSpec,
  round: number,
): Promise<IdleResult> {
  await sleep(200);
  const rssBefore = b.memory().rss;
  const cpuBefore = b.cpu();
  const pressureBefore = pressureUs('cpu');
  const done = await g.request<IdleReply>(
    { type: 'idle', spec },
    'idle-done',
    Math.max(60_000, spec.connections * 10),
  );
  const cpuAfter = b.cpu();
  const pressure = pressureUs('cpu') - pressureBefore;
  // Let the broker finish whatever connection setup it defers, then read its memory.
  await sleep(500);
  const rssAfter = b.memory().rss;
  const n = Math.max(1, done.connected);
  return {
    kind: 'idle',
    round,
    connected: done.connected,
    failed: done.failed,
    connRate: done.connected / (done.ms / 1000),
    rssPerConn: (rssAfter - rssBefore) / n,
    rssBefore,
    rssAfter,
    cpuPerConnUs: ((cpuAfter - cpuBefore) * 1e6) / n,
    genPct: (done.cpuUs / 1000 / done.ms) * 100,
    pressurePct: (pressure / 1000 / done.ms) * 100,
    firstError: done.firstError,
  };
}
