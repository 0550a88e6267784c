/**
 * Broker load benchmark: Cicada against Aedes and Mosquitto, in one run, on loopback.
 *
 *   npm run bench                                  # full run, 3 rounds (~11 min)
 *   node dist/bench/load.js --quick                # smoke run: 1 round, 1 s, 16 B only (~1.5 min)
 *   node dist/bench/load.js --only fan-in,idle --rounds 5 --duration 5
 *   node dist/bench/load.js --brokers aedes,mosquitto --json results.json
 *
 * Every broker runs as its own child process on its own port; the load generator
 * (bench/loadgen.ts) is another child process, so that it does not share a core with the
 * broker. A fresh broker and a fresh generator are started for every measurement. Each
 * scenario is run for every broker back to back (the order rotates per round), and rounds
 * repeat that; tables give the median over rounds with the min–max range.
 *
 * Scenarios (each for QoS 0 and QoS 1, payloads of 16 B and 1 KiB; QoS 2 with 16 B payloads
 * only unless `--q2-payloads`, and with `--quick` in fan-in only unless `--only` asks):
 *   fan-in     20 publishers → 1 subscriber on `bench/in/+`, as fast as allowed; msg/s delivered
 *   fan-out    1 publisher → 10 subscribers on one topic; deliveries/s (copies)
 *   pairs-lat  50 publisher/subscriber pairs, one topic each, paced at 10 000 msg/s in total:
 *              end-to-end latency p50/p99 from a timestamp in the payload
 *   pairs-max  the same 50 pairs as fast as allowed
 *   idle       10 000 and 19 000 idle connections: broker RSS per connection, connect rate
 *
 * "As fast as allowed": QoS 1 publishers keep at most `--window` (50) PUBLISHes awaiting
 * PUBACK each, QoS 2 publishers as many awaiting PUBCOMP (PUBLISH → PUBREC → PUBREL →
 * PUBCOMP; a message counts as acknowledged at PUBCOMP). QoS 0 publishers keep at most
 * `--window0` (1000, shared out among them) messages in flight end to end, i.e. sent but
 * not yet received by every subscriber: with TCP flow control alone (`--window0 0`), megabytes pile up in loopback socket buffers and
 * the brokers' queues, and the run measures how a broker drowns (seconds of latency, most
 * messages dropped) rather than how fast it forwards. After the window, publishers stop
 * and the generator waits for deliveries to settle; loss is what was published (QoS 1 and
 * 2: acknowledged) but never delivered. At QoS 2 subscribers also check exactly-once: a
 * sequence number in the payload catches a message delivered twice (`dup`), which counts
 * as a failure like loss (a `!` in the summary). The idle scenarios run `--idle-rounds` (1)
 * rounds.
 *
 * Limits are made equal where a broker has them: Mosquitto's max_inflight_messages and
 * Cicada's mqtt.maxInflightMessages are `--inflight` (1024, Cicada's default); Mosquitto's
 * max_queued_messages and Cicada's broker.maxQueuedMessages are `--mosquitto-queue`
 * (100 000, so that no queue overflows). Aedes has neither limit.
 *
 * Broker CPU comes from /proc/<pid>/stat (utime + stime) at the window's edges, RSS from
 * /proc/<pid>/status. `gen` is the generator's own CPU use: near 100 % means the figure is
 * bounded by the generator rather than the broker. On loopback the kernel's TCP work for a
 * write is mostly charged to the writer, so both figures include network-stack time. `psi`
 * (in progress lines) is the machine's CPU pressure: the share of time some runnable task
 * waited for a CPU. On a shared machine it is high, and throughput with it is noisy; CPU
 * per message is the steadier figure.
 *
 * Cicada is started with `node dist/src/cli/main.js --listen mqtt://127.0.0.1:PORT
 * --log-level warn --config <generated limits>` (plus `--memory` with `--memory`, plus any
 * `--cicada-arg`), and skipped with a note while that file does not exist. Aedes runs in
 * bench/aedes-server.ts; Mosquitto from a generated config (persistence off unless
 * `--mosquitto-persistence`).
 */
import { existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseFlags, parseOrExit, selectBrokers } from './lib/args.js';
import {
  AEDES_SERVER,
  ALL_BROKERS,
  aedesVersion,
  type BrokerName,
  BrokerProcess,
  brokerUnavailable,
  cicadaCommand,
  cicadaConfig,
  freePort,
  HOST,
  makeTempDir,
  mosquittoCommand,
  mosquittoVersion,
  removeTempDir,
  root,
  runMain,
  runnable,
} from './lib/brokers.js';
import {
  clientPrefix,
  type FlowResult,
  type IdleResult,
  Loadgen,
  measureConnections,
  measureFlow,
} from './lib/generator.js';
import { fmtRange, ms, pct, rateF, ratioCell, us, writeJson } from './lib/report.js';
import type { IdleSpec, LoadSpec, Pattern } from './loadgen.js';
import { formatBytes, formatRate, formatRatio, max, median, renderTable } from './stats.js';

const FD_LIMIT = 20000;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  rounds: number;
  idleRounds: number;
  durationMs: number;
  warmupMs: number;
  quick: boolean;
  only: string[];
  brokers: BrokerName[];
  window: number;
  window0: number;
  inflight: number;
  mosquittoQueue: number;
  mosquittoPersistence: boolean;
  memory: boolean;
  cicadaArgs: string[];
  /** 'auto': a generated config with the same queue and in-flight limits as Mosquitto's. */
  cicadaConfig: 'auto' | 'none' | string;
  fullDecode: boolean;
  rate: number;
  pairs: number;
  fanIn: number;
  fanOut: number;
  idle: number[];
  concurrency: number;
  payloads: number[];
  /** QoS 2 payload sizes; undefined: the smallest of `payloads`; 'all': every one. */
  q2Payloads: number[] | 'all' | undefined;
  json: string | undefined;
  drainMs: number;
}

const HELP = `Usage: node dist/bench/load.js [options]

  --quick                 1 round of 1 s, 16 B payloads, 10 000 idle connections, QoS 2 in
                          fan-in only (unless --only is given)
  --rounds N              rounds per scenario and broker (default 3; --quick: 1)
  --idle-rounds N         rounds of the idle-connection scenarios (default 1: they are slow
                          to set up, and memory per connection varies little)
  --duration S            measured seconds per run (default 2; --quick: 1)
  --warmup S              seconds of load before the window opens (default 0.5; --quick: 0.3)
  --only A,B              only scenarios whose name contains A or B (e.g. fan-in, q2, pairs-lat/q0)
  --brokers A,B           among cicada, aedes, mosquitto (default: all three)
  --payloads A,B          payload sizes in bytes (default 16,1024; --quick: 16)
  --q2-payloads A,B|all   QoS 2 payload sizes (default: the smallest of --payloads, 16 B, to
                          keep the full run near 11 min; all: every --payloads size, which
                          adds the 1 KiB QoS 2 runs, ~2 min more)
  --window N              QoS 1 PUBLISHes awaiting PUBACK (QoS 2: PUBCOMP) per publisher
                          (default 50)
  --window0 N             QoS 0, max rate: messages in flight end to end, all publishers
                          together (default 1000; 0: TCP backpressure only)
  --inflight N            outbound QoS 1 and 2 in flight per connection: Mosquitto
                          max_inflight_messages and Cicada mqtt.maxInflightMessages
                          (default 1024, Cicada's default; Aedes has no such limit)
  --mosquitto-queue N     messages queued per client beyond those in flight: Mosquitto
                          max_queued_messages and Cicada broker.maxQueuedMessages
                          (default 100000, so that no queue overflows; Aedes has no limit)
  --mosquitto-persistence Mosquitto with persistence on (in a temp dir)
  --memory                pass --memory to Cicada
  --cicada-config X       auto (default): a generated config file giving Cicada Mosquitto's
                          queue and in-flight limits; none: Cicada's defaults; or a file
  --cicada-arg ARG        pass ARG to Cicada (repeatable)
  --rate N                pairs-lat offered load in msg/s, all pairs together (default 10000)
  --pairs N --fan-in N --fan-out N   clients per scenario (default 50, 20, 10)
  --idle A,B              idle connection counts (default 10000,19000; --quick: 10000)
  --concurrency N         connection attempts in flight in the idle scenario (default 64)
  --full-decode           decode everything with MqttDecoder in the generator (slower)
  --drain S               longest wait for deliveries to settle after a run (default 10)
  --json FILE             also write every measurement to FILE
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    rounds: 3,
    idleRounds: 1,
    durationMs: 2000,
    warmupMs: 500,
    quick: false,
    only: [],
    brokers: [...ALL_BROKERS],
    window: 50,
    window0: 1000,
    inflight: 1024,
    mosquittoQueue: 100_000,
    mosquittoPersistence: false,
    memory: false,
    cicadaArgs: [],
    cicadaConfig: 'auto',
    fullDecode: false,
    rate: 10_000,
    pairs: 50,
    fanIn: 20,
    fanOut: 10,
    idle: [10_000, 19_000],
    concurrency: 64,
    payloads: [16, 1024],
    q2Payloads: undefined,
    json: undefined,
    drainMs: 10_000,
  };
  const set = parseFlags(argv, o, HELP, { rounds: 1, durationMs: 1000, warmupMs: 300 }, (flag, value) => {
    const { num, list } = value;
    switch (flag) {
      case '--idle-rounds':
        o.idleRounds = Math.round(num(1));
        break;
      case '--brokers':
        o.brokers = selectBrokers(list(), ALL_BROKERS);
        break;
      case '--payloads':
        o.payloads = list().map(Number);
        if (o.payloads.some((p) => !Number.isInteger(p) || p < 0))
          throw new Error('--payloads: sizes in bytes');
        break;
      case '--q2-payloads': {
        const sizes = list();
        if (sizes.length === 1 && sizes[0] === 'all') {
          o.q2Payloads = 'all';
          break;
        }
        o.q2Payloads = sizes.map(Number);
        if (o.q2Payloads.some((p) => !Number.isInteger(p) || p < 0))
          throw new Error('--q2-payloads: sizes in bytes, or all');
        break;
      }
      case '--window':
        o.window = Math.round(num(1));
        break;
      case '--window0':
        o.window0 = Math.round(num(0));
        break;
      case '--inflight':
        o.inflight = Math.round(num(0));
        break;
      case '--mosquitto-queue':
        o.mosquittoQueue = Math.round(num(0));
        break;
      case '--mosquitto-persistence':
        o.mosquittoPersistence = true;
        break;
      case '--memory':
        o.memory = true;
        break;
      case '--cicada-config':
        o.cicadaConfig = value.text();
        break;
      case '--cicada-arg':
        o.cicadaArgs.push(value.text());
        break;
      case '--full-decode':
        o.fullDecode = true;
        break;
      case '--rate':
        o.rate = num(1);
        break;
      case '--pairs':
        o.pairs = Math.round(num(1));
        break;
      case '--fan-in':
        o.fanIn = Math.round(num(1));
        break;
      case '--fan-out':
        o.fanOut = Math.round(num(1));
        break;
      case '--idle':
        o.idle = list().map(Number);
        if (o.idle.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--idle: connection counts');
        break;
      case '--concurrency':
        o.concurrency = Math.round(num(1));
        break;
      case '--drain':
        o.drainMs = num(0.1) * 1000;
        break;
      default:
        return false;
    }
    return true;
  });
  if (o.quick && !set.has('--payloads')) o.payloads = [16];
  if (o.quick && !set.has('--idle')) o.idle = [10_000];
  const tooMany = o.idle.find((n) => n > FD_LIMIT - 500);
  if (tooMany !== undefined) throw new Error(`--idle ${tooMany}: the fd limit is ${FD_LIMIT}`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface FlowScenario
  extends Pick<LoadSpec, 'pattern' | 'publishers' | 'subscribers' | 'qos' | 'payload' | 'rate'> {
  kind: 'flow';
  name: string;
  title: string;
}

interface IdleScenario {
  kind: 'idle';
  name: string;
  title: string;
  connections: number;
}

type Scenario = FlowScenario | IdleScenario;

function sizeName(bytes: number): string {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024}KiB` : `${bytes}B`;
}

function scenarios(o: Options): Scenario[] {
  const out: Scenario[] = [];
  const flows: [string, Pattern, number, number, number, string][] = [
    ['fan-in', 'fan-in', o.fanIn, 1, 0, `${o.fanIn} publishers → 1 subscriber (bench/in/+), max rate`],
    ['fan-out', 'fan-out', 1, o.fanOut, 0, `1 publisher → ${o.fanOut} subscribers, max rate, deliveries/s`],
    [
      'pairs-lat',
      'pairs',
      o.pairs,
      o.pairs,
      o.rate,
      `${o.pairs} pairs, paced at ${formatRate(o.rate)}msg/s in total, end-to-end latency`,
    ],
    ['pairs-max', 'pairs', o.pairs, o.pairs, 0, `${o.pairs} pairs, one topic each, max rate`],
  ];
  const q2Payloads =
    o.q2Payloads === 'all'
      ? o.payloads
      : (o.q2Payloads ?? (o.payloads.length === 0 ? [] : [Math.min(...o.payloads)]));
  for (const [base, pattern, publishers, subscribers, rate, title] of flows) {
    for (const qos of [0, 1, 2] as const) {
      // --quick keeps one QoS 2 scenario, unless --only picks scenarios itself.
      if (qos === 2 && o.quick && o.only.length === 0 && base !== 'fan-in') continue;
      for (const payload of qos === 2 ? q2Payloads : o.payloads) {
        const name = `${base}/q${qos}/${sizeName(payload)}`;
        const window =
          qos === 1 ? `, window ${o.window}` : qos === 2 ? `, window ${o.window} (PUBLISH to PUBCOMP)` : '';
        out.push({
          kind: 'flow',
          name,
          title: `${title}; QoS ${qos}, ${payload} B payload${window}`,
          pattern,
          publishers,
          subscribers,
          qos,
          payload,
          rate,
        });
      }
    }
  }
  for (const n of o.idle) {
    out.push({
      kind: 'idle',
      name: `idle/${n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : n}`,
      title: `${n} idle connections (CONNECT, keep-alive 600 s), ${o.concurrency} connecting at a time`,
      connections: n,
    });
  }
  return o.only.length === 0 ? out : out.filter((s) => o.only.some((f) => s.name.includes(f)));
}

// ---------------------------------------------------------------------------------------------
// Brokers

function brokerCommand(name: BrokerName, o: Options, port: number, dir: string): string[] {
  switch (name) {
    case 'cicada': {
      const args = ['--log-level', 'warn', ...(o.memory ? ['--memory'] : ['--data', join(dir, 'data')])];
      if (o.cicadaConfig === 'auto') {
        const mqtt = o.inflight > 0 ? { maxInflightMessages: Math.min(o.inflight, 65_535) } : {};
        const broker = { maxQueuedMessages: Math.max(1, o.mosquittoQueue || Number.MAX_SAFE_INTEGER) };
        args.push('--config', cicadaConfig(dir, { broker, mqtt }));
      } else if (o.cicadaConfig !== 'none') {
        args.push('--config', resolve(o.cicadaConfig));
      }
      return cicadaCommand(port, [...args, ...o.cicadaArgs]);
    }
    case 'aedes':
      return [process.execPath, AEDES_SERVER, '--port', String(port), '--host', HOST];
    case 'mosquitto':
      return mosquittoCommand(
        dir,
        port,
        { inflight: o.inflight, queued: o.mosquittoQueue },
        o.mosquittoPersistence
          ? ['persistence true', `persistence_location ${dir}/`, 'autosave_interval 1']
          : ['persistence false'],
      );
  }
}

/** One broker for one measurement, on a free port with a fresh temporary directory. */
class Broker extends BrokerProcess {
  private dir = '';

  constructor(readonly name: BrokerName) {
    super(name);
  }

  async start(o: Options): Promise<void> {
    this.port = await freePort();
    this.dir = makeTempDir(tmpdir(), `cicada-bench-${this.name}-`);
    await this.spawn(brokerCommand(this.name, o, this.port, this.dir), { fdLimit: FD_LIMIT });
    await this.listening(15_000, 50);
  }

  async stop(): Promise<void> {
    await this.shutdown(2000);
    removeTempDir(this.dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Runs

type RunResult = FlowResult | IdleResult;

function runFlow(s: FlowScenario, b: Broker, g: Loadgen, o: Options, round: number): Promise<FlowResult> {
  const spec: LoadSpec = {
    host: HOST,
    port: b.port,
    pattern: s.pattern,
    publishers: s.publishers,
    subscribers: s.subscribers,
    qos: s.qos,
    payload: s.payload,
    rate: s.rate,
    window: o.window,
    window0: o.window0,
    fullDecode: o.fullDecode,
    clientPrefix: clientPrefix(),
    drainMs: o.drainMs,
  };
  return measureFlow(g, b, spec, o, round);
}

function runIdle(s: IdleScenario, b: Broker, g: Loadgen, o: Options, round: number): Promise<IdleResult> {
  const spec: IdleSpec = {
    host: HOST,
    port: b.port,
    connections: s.connections,
    concurrency: o.concurrency,
    clientPrefix: clientPrefix('i'),
    keepAlive: 600,
  };
  return measureConnections(g, b, spec, round);
}

async function runOne(s: Scenario, name: BrokerName, o: Options, round: number): Promise<RunResult> {
  const b = new Broker(name);
  let g: Loadgen | undefined;
  try {
    // Both start at once: Node's start-up is a good part of a short run.
    g = new Loadgen(FD_LIMIT);
    await Promise.all([b.start(o), g.started()]);
    return s.kind === 'flow' ? await runFlow(s, b, g, o, round) : await runIdle(s, b, g, o, round);
  } finally {
    await g?.close();
    await b.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting

type Results = Map<BrokerName, (RunResult | { kind: 'error'; round: number; message: string })[]>;

const count = (x: number): string => (x < 1000 ? String(Math.round(x)) : rateF(x));

/** The scenario's headline figure, and whether higher is better. */
function headline(s: Scenario): { label: string; value: (r: RunResult) => number; higher: boolean } {
  if (s.kind === 'idle') {
    return { label: 'RSS/conn', value: (r) => (r as IdleResult).rssPerConn, higher: false };
  }
  if (s.rate > 0) return { label: 'CPU µs/msg', value: (r) => (r as FlowResult).cpuPerMsgUs, higher: false };
  return {
    label: s.pattern === 'fan-out' ? 'deliveries/s' : 'msg/s',
    value: (r) => (r as FlowResult).rate,
    higher: true,
  };
}

/** Per-round ratios of the headline figure, `name` over `ref`, for rounds where both ran. */
function roundRatios(s: Scenario, results: Results, name: BrokerName, ref: BrokerName): number[] {
  const h = headline(s);
  const mine = results.get(name) ?? [];
  const theirs = results.get(ref) ?? [];
  const out: number[] = [];
  for (const r of mine) {
    if (r.kind === 'error') continue;
    const other = theirs.find((t) => t.round === r.round && t.kind !== 'error') as RunResult | undefined;
    if (other === undefined) continue;
    const ratio = h.value(r) / h.value(other);
    if (Number.isFinite(ratio)) out.push(ratio);
  }
  return out;
}

function printScenario(s: Scenario, results: Results, brokers: BrokerName[], drainMs: number): void {
  const h = headline(s);
  const drainNote = `${(drainMs / 1000).toFixed(0)} s`;
  const pressure: number[] = [];
  const refs = (['mosquitto', 'aedes'] as BrokerName[]).filter((r) => brokers.includes(r));
  const rows: string[][] = [];
  const notes: string[] = [];
  let genBound = false;
  for (const name of brokers) {
    const all = results.get(name) ?? [];
    const ok = all.filter((r): r is RunResult => r.kind !== 'error');
    for (const r of all) if (r.kind === 'error') notes.push(`${name} round ${r.round + 1}: ${r.message}`);
    const ratioCells = refs.map((ref) => (ref === name ? '' : ratioCell(roundRatios(s, results, name, ref))));
    if (ok.length === 0) {
      const what = all.length === 0 ? 'skipped' : 'failed';
      const blanks = s.kind === 'flow' ? (s.qos === 2 ? 8 : 7) : 5;
      rows.push([name, what, ...Array(blanks).fill(''), ...ratioCells]);
      continue;
    }
    if (s.kind === 'flow') {
      const fr = ok as FlowResult[];
      const gen = median(fr.map((r) => r.genPct));
      if (gen >= 90) genBound = true;
      const lossMax = max(fr.map((r) => r.lossPct));
      const loss =
        lossMax === 0
          ? '0'
          : `${median(fr.map((r) => r.lossPct)).toPrecision(2)}% (max ${lossMax.toPrecision(2)}%, ${count(max(fr.map((r) => r.loss)))})`;
      const dupCell: string[] = [];
      if (s.qos === 2) {
        const dups = fr.map((r) => r.duplicates);
        const total = dups.reduce((a, b) => a + b, 0);
        dupCell.push(total === 0 ? '0' : fmtRange(dups, count));
        if (total > 0) {
          const how = fr.every((r) => r.sequenced)
            ? 'by sequence number'
            : 'as copies received beyond those expected (payload < 14 B: no sequence numbers)';
          notes.push(
            `${name}: exactly-once violated: ${total} cop${total === 1 ? 'y' : 'ies'} delivered twice ` +
              `in ${dups.filter((d) => d > 0).length} of ${fr.length} round(s), counted ${how}`,
          );
        }
        const resent = fr.reduce((a, r) => a + r.resent, 0);
        if (resent > 0) {
          notes.push(
            `${name}: ${resent} QoS 2 PUBLISH(es) reused a packet identifier still awaiting PUBREL ` +
              '(retransmissions: acknowledged again, not delivered again)',
          );
        }
      }
      const errs = fr.reduce((a, r) => a + r.errors, 0);
      if (errs > 0)
        notes.push(`${name}: ${errs} client errors (${fr.find((r) => r.firstError)?.firstError})`);
      const unsettled = fr.filter((r) => !r.settled).length;
      if (unsettled > 0) {
        notes.push(
          `${name}: ${unsettled} round(s) ended with copies undelivered ` +
            `(no delivery for 1 s after the publishers stopped, or ${drainNote} passed)`,
        );
      }
      if (
        s.rate > 0 &&
        median(fr.map((r) => r.rate)) < s.rate * (s.pattern === 'pairs' ? 1 : s.subscribers) * 0.95
      ) {
        notes.push(
          `${name}: did not sustain the offered ${formatRate(s.rate)}msg/s (latency includes the backlog)`,
        );
      }
      pressure.push(...fr.map((r) => r.pressurePct));
      rows.push([
        name,
        fmtRange(
          fr.map((r) => r.rate),
          rateF,
        ),
        fmtRange(
          fr.map((r) => r.cpuPerMsgUs),
          us,
        ),
        pct(median(fr.map((r) => r.cpuPct))),
        `${pct(gen)}${gen >= 90 ? '*' : ''}`,
        formatBytes(median(fr.map((r) => r.rss))).replace(' ', ''),
        ms(median(fr.map((r) => r.p50))),
        ms(median(fr.map((r) => r.p99))),
        loss,
        ...dupCell,
        ...ratioCells,
      ]);
    } else {
      const ir = ok as IdleResult[];
      const idleGen = median(ir.map((r) => r.genPct));
      if (idleGen >= 90) genBound = true;
      const failed = ir.reduce((a, r) => a + r.failed, 0);
      if (failed > 0)
        notes.push(`${name}: ${failed} connections failed (${ir.find((r) => r.firstError)?.firstError})`);
      rows.push([
        name,
        fmtRange(
          ir.map((r) => r.rssPerConn),
          (x) => formatBytes(Math.round(x)).replace(' ', ''),
        ),
        fmtRange(
          ir.map((r) => r.connRate),
          rateF,
        ),
        fmtRange(
          ir.map((r) => r.cpuPerConnUs),
          us,
        ),
        `${pct(idleGen)}${idleGen >= 90 ? '*' : ''}`,
        formatBytes(median(ir.map((r) => r.rssAfter))).replace(' ', ''),
        String(Math.round(median(ir.map((r) => r.connected)))),
        ...ratioCells,
      ]);
    }
  }
  const refHeads = refs.map(
    (r) => `${h.label === 'msg/s' || h.label === 'deliveries/s' ? 'rate' : h.label} vs ${r}`,
  );
  const header =
    s.kind === 'flow'
      ? [
          'broker',
          s.pattern === 'fan-out' ? 'deliveries/s' : 'msg/s',
          'CPU µs/msg',
          'CPU',
          'gen',
          'RSS',
          'p50',
          'p99',
          'loss',
          ...(s.qos === 2 ? ['dup'] : []),
          ...refHeads,
        ]
      : ['broker', 'RSS/conn', 'conn/s', 'CPU µs/conn', 'gen', 'RSS', 'connected', ...refHeads];
  const align = header.map((_, i) => (i === 0 ? 'left' : 'right')) as ('left' | 'right')[];
  console.log(`\n${s.name} — ${s.title}`);
  console.log(renderTable(header, rows, align));
  if (genBound) notes.push('* the load generator used ≥ 90% of a core: that figure may be generator-bound');
  const psi = median(pressure.filter(Number.isFinite));
  if (psi >= 10) {
    notes.push(
      `CPU pressure ${psi.toFixed(0)}% (median): other tasks competed for the CPUs; throughput is noisy, CPU µs/msg less so`,
    );
  }
  for (const n of notes) console.log(`  note: ${n}`);
}

function printSummary(all: { s: Scenario; results: Results }[], brokers: BrokerName[]): void {
  const pairs: [BrokerName, BrokerName][] = [];
  for (let i = 0; i < brokers.length; i++) {
    for (let j = i + 1; j < brokers.length; j++) pairs.push([brokers[i]!, brokers[j]!]);
  }
  let flagged = false;
  const rows = all.map(({ s, results }) => {
    const h = headline(s);
    const cells = brokers.map((b) => {
      const ok = (results.get(b) ?? []).filter((r): r is RunResult => r.kind !== 'error');
      if (ok.length === 0) return '–';
      const v = median(ok.map(h.value));
      if (s.kind === 'idle') return formatBytes(Math.round(v)).replace(' ', '');
      // QoS 1 and 2 promise delivery, QoS 2 exactly once: flag a broker that broke that.
      const broke =
        s.qos > 0 && (ok as FlowResult[]).some((r) => r.loss > 0 || (s.qos === 2 && r.duplicates > 0));
      if (broke) flagged = true;
      return `${h.higher ? rateF(v) : us(v)}${broke ? '!' : ''}`;
    });
    const ratios = pairs.map(([a, b]) => {
      const xs = roundRatios(s, results, a, b);
      return xs.length === 0 ? '–' : formatRatio(median(xs));
    });
    return [s.name, `${h.label}${h.higher ? ' ↑' : ' ↓'}`, ...cells, ...ratios];
  });
  console.log('\nSummary (medians; ratios are medians of per-round ratios)');
  console.log(
    renderTable(['scenario', 'metric', ...brokers, ...pairs.map(([a, b]) => `${a}/${b}`)], rows, [
      'left',
      'left',
      ...brokers.map(() => 'right' as const),
      ...pairs.map(() => 'right' as const),
    ]),
  );
  if (flagged) {
    console.log(
      '  ! lost messages at QoS 1 or 2, or duplicates at QoS 2, in some round: see the scenario table',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseOrExit(parseArgs);
  if (!existsSync(join(root, 'dist', 'bench', 'loadgen.js'))) {
    console.error('dist/bench/loadgen.js is missing: build first (npx tsc -p tsconfig.json)');
    process.exit(2);
  }
  const list = scenarios(o);
  if (list.length === 0) {
    console.error(`no scenario matches --only ${o.only.join(',')}`);
    process.exit(2);
  }
  console.log('Cicada broker load benchmark');
  console.log(
    `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; aedes ${aedesVersion()}, mosquitto ${mosquittoVersion()}`,
  );
  const brokers = runnable(o.brokers, brokerUnavailable);
  const flows = list.filter((s) => s.kind === 'flow').length;
  const idles = list.filter((s): s is IdleScenario => s.kind === 'idle');
  const estimate =
    brokers.length *
    (o.rounds * flows * ((o.durationMs + o.warmupMs) / 1000 + 0.7) +
      o.idleRounds * idles.reduce((a, s) => a + 3 + s.connections / 1500, 0));
  const cicadaLine = [
    o.cicadaConfig === 'auto' ? '--config (generated: the limits above)' : '',
    o.cicadaConfig !== 'auto' && o.cicadaConfig !== 'none' ? `--config ${o.cicadaConfig}` : '',
    o.memory ? '--memory' : '',
    ...o.cicadaArgs,
  ]
    .filter((x) => x !== '')
    .join(' ');
  console.log(
    `brokers: ${brokers.join(', ')}; ${list.length} scenario(s), ${o.rounds} round(s) ` +
      `(idle: ${o.idleRounds}); ${o.warmupMs / 1000} s warm-up + ${o.durationMs / 1000} s measured per run`,
  );
  console.log(
    `load: QoS 1 and 2 window ${o.window} per publisher; QoS 0 max-rate window ${o.window0 || 'off'} in total, end to end`,
  );
  console.log(
    `limits: ${o.inflight || 'unlimited'} QoS 1 and 2 in flight and ${o.mosquittoQueue || 'unlimited'} queued per client ` +
      `(mosquitto${brokers.includes('cicada') && o.cicadaConfig === 'auto' ? ' and cicada' : ''}; aedes has no limits); ` +
      `mosquitto persistence ${o.mosquittoPersistence ? 'on' : 'off'}`,
  );
  if (brokers.includes('cicada')) console.log(`cicada: ${cicadaLine || '(defaults)'}`);
  console.log(`estimated time: ~${Math.ceil(estimate / 60)} min`);

  const failures = new Map<BrokerName, number>();
  const all: { s: Scenario; results: Results }[] = [];
  const json: unknown[] = [];
  for (const s of list) {
    const results: Results = new Map();
    const rounds = s.kind === 'idle' ? o.idleRounds : o.rounds;
    for (let round = 0; round < rounds; round++) {
      // Rotate the order so that no broker always runs first (or last) in a round.
      const order = brokers.map((_, i) => brokers[(i + round) % brokers.length]!);
      for (const name of order) {
        if ((failures.get(name) ?? 0) >= 3) continue;
        let started = Date.now();
        let entry: RunResult | { kind: 'error'; round: number; message: string } | undefined;
        // One retry: on a shared machine a run can fail for reasons of its own (a rebuild
        // of dist/ underneath it, a port taken between probe and bind).
        for (let attempt = 0; entry === undefined; attempt++) {
          try {
            entry = await runOne(s, name, o, round);
            failures.set(name, 0);
          } catch (err) {
            const message = (err as Error).message.split('\n').join(' | ');
            if (attempt === 0) {
              console.log(
                `  ${s.name}  round ${round + 1}/${rounds}  ${name.padEnd(9)} failed, retrying: ${message}`,
              );
              started = Date.now();
              continue;
            }
            entry = { kind: 'error', round, message };
            failures.set(name, (failures.get(name) ?? 0) + 1);
            if (failures.get(name) === 3)
              console.log(`  note: ${name} failed 3 runs in a row: dropped from this run`);
          }
        }
        if (!results.has(name)) results.set(name, []);
        results.get(name)!.push(entry);
        json.push({ scenario: s.name, broker: name, ...entry });
        console.log(
          `  ${s.name}  round ${round + 1}/${rounds}  ${name.padEnd(9)} ${progress(entry)}  (${((Date.now() - started) / 1000).toFixed(1)} s)`,
        );
      }
    }
    printScenario(s, results, brokers, o.drainMs);
    all.push({ s, results });
  }
  printSummary(all, brokers);
  writeJson(o.json, o, json);
}

function progress(r: RunResult | { kind: 'error'; message: string }): string {
  switch (r.kind) {
    case 'error':
      return `FAILED: ${r.message}`;
    case 'flow':
      return (
        `${rateF(r.rate)}/s  CPU ${us(r.cpuPerMsgUs)} µs/msg (${pct(r.cpuPct)})  gen ${pct(r.genPct)}` +
        `  p50 ${ms(r.p50)} p99 ${ms(r.p99)}  loss ${r.loss}${r.qos === 2 ? ` dup ${r.duplicates}` : ''}` +
        `${r.settled ? '' : ' (unsettled)'}` +
        `  psi ${pct(r.pressurePct)}`
      );
    case 'idle':
      return (
        `${r.connected} conns  ${formatBytes(Math.round(r.rssPerConn))}/conn  ${rateF(r.connRate)} conn/s` +
        `  CPU ${us(r.cpuPerConnUs)} µs/conn  gen ${pct(r.genPct)}` +
        (r.failed > 0 ? `  ${r.failed} failed` : '')
      );
  }
}

runMain(main);
