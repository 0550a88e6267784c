/**
 * Transport and authentication benchmark: what TLS, WebSocket and password checks cost each
 * broker, as ratios to the same broker over plain TCP, on loopback.
 *
 *   node dist/bench/transports.js                 # 3 rounds (~10 min)
 *   node dist/bench/transports.js --quick         # 1 round, 1 s runs, fewer connections
 *   node dist/bench/transports.js --only connect/cicada --rounds 5
 *
 * Scenarios:
 *   pairs    `--pairs` (50) publisher/subscriber pairs, one topic each, QoS 0, `--payload`
 *            (16) bytes, as fast as the end-to-end window (`--window0`, 1000 messages in
 *            flight in total, as in bench/load.ts) allows: msg/s delivered and the broker's
 *            CPU µs per message, for Cicada and Aedes over tcp, tls, ws and wss and Mosquitto
 *            over tcp and tls (and ws, wss when its build has WebSocket support).
 *   connect  `--connections` (2000) connections, `--concurrency` (64) at a time, each opened
 *            (TCP, TLS handshake, CONNECT) and kept open once CONNACKed: conn/s and the
 *            broker's CPU µs per connection, anonymous over tcp and tls, and with a password
 *            file: Cicada's scrypt (`cicada passwd`) and Mosquitto's PBKDF2-SHA512
 *            (`mosquitto_passwd`, which Cicada reads too). Password runs open
 *            `--password-connections` (200): scrypt is slow on purpose. After each, a wrong
 *            password must be refused, or the run counts as failed.
 *
 * Every run gets a fresh broker process and a fresh generator process (bench/loadgen.ts,
 * over TLS or WebSocket via bench/lib/raw-mqtt.ts); the order of the runs rotates per round.
 * Tables give the median over rounds with [min–max], and ratios as the median of per-round
 * ratios to the same broker's tcp run. Certificates: test/helpers/certs.ts (an EC P-256 CA
 * and server certificate, made with openssl); the generator verifies them, and every TLS
 * connection makes a full handshake (no session resumption).
 */
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseFlags, parseOrExit, selectBrokers } from './lib/args.js';
import {
  ALL_BROKERS,
  aedesVersion,
  type BrokerName,
  brokerUnavailable,
  mosquittoVersion,
  root,
  runMain,
  runnable,
} from './lib/brokers.js';
import type { FlowResult, IdleResult } from './lib/generator.js';
import { fmtRange, ms, pct, rateF, ratioCell, us, writeJson } from './lib/report.js';
import { makeSecurity, type Scheme } from './lib/secure-brokers.js';
import {
  allCases,
  type Case,
  type Entry,
  FD_LIMIT,
  makeCase,
  runCase,
  runnableCases,
  type TransportOptions,
} from './lib/transport-runs.js';
import { formatRatio, median, renderTable } from './stats.js';

const HELP = `Usage: node dist/bench/transports.js [options]

  --quick                   1 round of 1 s, 1000 connections (password runs: 50)
  --rounds N                rounds (default 3; --quick: 1)
  --duration S              measured seconds per pairs run (default 2; --quick: 1)
  --warmup S                seconds of load before the window opens (default 0.5; --quick: 0.3)
  --only A,B                only runs whose name contains A or B (pairs/cicada, connect, /tls,
                            scrypt), each with its broker's tcp run for the ratios
  --brokers A,B             among cicada, aedes, mosquitto (default: all three)
  --pairs N                 publisher/subscriber pairs (default 50)
  --payload N               payload bytes (default 16)
  --window0 N               QoS 0 messages in flight end to end, all pairs together (default 1000)
  --connections N           connections per connect run (default 2000; --quick: 1000)
  --password-connections N  connections per connect run with a password file (default 200; --quick: 50)
  --concurrency N           connection attempts in flight (default 64)
  --drain S                 longest wait for deliveries to settle after a run (default 10)
  --json FILE               also write every measurement to FILE
`;

function parseArgs(argv: string[]): TransportOptions {
  const o: TransportOptions = {
    quick: false,
    rounds: 3,
    durationMs: 2000,
    warmupMs: 500,
    only: [],
    json: undefined,
    brokers: [...ALL_BROKERS],
    pairs: 50,
    payload: 16,
    window0: 1000,
    connections: 2000,
    passwordConnections: 200,
    concurrency: 64,
    drainMs: 10_000,
  };
  const given = parseFlags(argv, o, HELP, { rounds: 1, durationMs: 1000, warmupMs: 300 }, (flag, value) => {
    const whole = (lo: number): number => Math.round(value.num(lo));
    if (flag === '--brokers') o.brokers = selectBrokers(value.list(), ALL_BROKERS);
    else if (flag === '--pairs') o.pairs = whole(1);
    else if (flag === '--payload') o.payload = whole(0);
    else if (flag === '--window0') o.window0 = whole(0);
    else if (flag === '--connections') o.connections = whole(1);
    else if (flag === '--password-connections') o.passwordConnections = whole(1);
    else if (flag === '--concurrency') o.concurrency = whole(1);
    else if (flag === '--drain') o.drainMs = value.num(0.1) * 1000;
    else return false;
    return true;
  });
  if (o.quick && !given.has('--connections')) o.connections = 1000;
  if (o.quick && !given.has('--password-connections')) o.passwordConnections = 50;
  if (Math.max(o.connections, o.passwordConnections) > FD_LIMIT - 500)
    throw new Error(`--connections: the fd limit is ${FD_LIMIT}`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Reporting

type Results = Map<string, Entry[]>;

const ok = (entries: Entry[] | undefined): (FlowResult | IdleResult)[] =>
  (entries ?? []).filter((e): e is FlowResult | IdleResult => e.kind !== 'error');

/** Per-round ratios of `value`, case `c` over its broker's anonymous tcp run. */
function ratiosToTcp(c: Case, results: Results, value: (r: FlowResult | IdleResult) => number): number[] {
  const base = ok(results.get(makeCase(c.scenario, c.broker, 'tcp', 'none').name));
  const out: number[] = [];
  for (const r of ok(results.get(c.name))) {
    const b = base.find((x) => x.round === r.round);
    const ratio = b === undefined ? Number.NaN : value(r) / value(b);
    // 0 is a CPU reading below one 10 ms tick: no ratio to tell.
    if (Number.isFinite(ratio) && ratio > 0) out.push(ratio);
  }
  return out;
}

const flowRate = (r: FlowResult | IdleResult): number => (r as FlowResult).rate;
const flowCpu = (r: FlowResult | IdleResult): number => (r as FlowResult).cpuPerMsgUs;
const connRate = (r: FlowResult | IdleResult): number => (r as IdleResult).connRate;
const connCpu = (r: FlowResult | IdleResult): number => (r as IdleResult).cpuPerConnUs;

/** Notes on a case's runs: failures, errors, loss, a generator near a full core. */
function caseNotes(c: Case, entries: Entry[], notes: string[]): boolean {
  let genBound = false;
  for (const e of entries) {
    if (e.kind === 'error') notes.push(`${c.name} round ${e.round + 1}: ${e.message}`);
    else if (e.genPct >= 90) genBound = true;
    if (e.kind === 'flow' && e.errors > 0)
      notes.push(`${c.name}: ${e.errors} client errors (${e.firstError})`);
    if (e.kind === 'flow' && e.loss > 0)
      notes.push(`${c.name} round ${e.round + 1}: ${e.loss} messages lost`);
    if (e.kind === 'idle' && e.failed > 0)
      notes.push(`${c.name}: ${e.failed} connections failed (${e.firstError})`);
  }
  return genBound;
}

function printPairs(cases: Case[], results: Results, o: TransportOptions): void {
  const notes: string[] = [];
  let genBound = false;
  const rows = cases.map((c) => {
    const entries = results.get(c.name) ?? [];
    genBound = caseNotes(c, entries, notes) || genBound;
    const rs = ok(entries) as FlowResult[];
    if (rs.length === 0) return [c.broker, c.variant, 'failed'];
    const vsTcp =
      c.scheme === 'tcp'
        ? ['', '']
        : [ratioCell(ratiosToTcp(c, results, flowRate)), ratioCell(ratiosToTcp(c, results, flowCpu))];
    return [
      c.broker,
      c.variant,
      fmtRange(rs.map(flowRate), rateF),
      fmtRange(rs.map(flowCpu), us),
      pct(median(rs.map((r) => r.cpuPct))),
      pct(median(rs.map((r) => r.genPct))),
      ms(median(rs.map((r) => r.p50))),
      ...vsTcp,
    ];
  });
  console.log(
    `\npairs — ${o.pairs} publisher/subscriber pairs, QoS 0, ${o.payload} B payload, max rate ` +
      `(${o.window0} messages in flight end to end)`,
  );
  const header = [
    'broker',
    'over',
    'msg/s',
    'CPU µs/msg',
    'CPU',
    'gen',
    'p50',
    'msg/s vs tcp',
    'CPU/msg vs tcp',
  ];
  console.log(renderTable(header, rows, ['left', 'left', ...header.slice(2).map(() => 'right' as const)]));
  printNotes(notes, genBound, cases, results);

  // The headline: one row per broker, each ratio the median of per-round ratios.
  const brokers = [...new Set(cases.map((c) => c.broker))];
  const schemes: Scheme[] = ['tls', 'ws', 'wss'];
  const cell = (b: BrokerName, s: Scheme, value: (r: FlowResult | IdleResult) => number): string => {
    const c = cases.find((x) => x.broker === b && x.scheme === s);
    const xs = c === undefined ? [] : ratiosToTcp(c, results, value);
    return xs.length === 0 ? '–' : formatRatio(median(xs));
  };
  const summary = brokers.map((b) => [
    b,
    ...schemes.map((s) => cell(b, s, flowRate)),
    ...schemes.map((s) => cell(b, s, flowCpu)),
  ]);
  console.log('\npairs: ratios to the same broker over tcp (medians of per-round ratios)');
  const heads = [...schemes.map((s) => `${s}/tcp msg/s`), ...schemes.map((s) => `${s}/tcp CPU/msg`)];
  console.log(renderTable(['broker', ...heads], summary, ['left', ...heads.map(() => 'right' as const)]));
}

/** Microseconds, in thousands from 10 000 on (a password hash takes 100 000 or more). */
const usK = (x: number): string => (x >= 10_000 ? `${(x / 1000).toFixed(0)}k` : us(x));

function printConnect(cases: Case[], results: Results, o: TransportOptions): void {
  const notes: string[] = [];
  let genBound = false;
  const rows = cases.map((c) => {
    const entries = results.get(c.name) ?? [];
    genBound = caseNotes(c, entries, notes) || genBound;
    const rs = ok(entries) as IdleResult[];
    if (rs.length === 0) return [c.broker, c.variant, 'failed'];
    const baseline = c.scheme === 'tcp' && c.passwords === 'none';
    return [
      c.broker,
      c.variant,
      String(Math.round(median(rs.map((r) => r.connected)))),
      fmtRange(rs.map(connRate), rateF),
      // /proc counts CPU in 10 ms ticks: under 0.1 s in all, the figure is coarse.
      `${rs.some((r) => r.cpuPerConnUs * r.connected < 100_000) ? '~' : ''}${fmtRange(rs.map(connCpu), usK)}`,
      pct(median(rs.map((r) => r.genPct))),
      baseline ? '' : ratioCell(ratiosToTcp(c, results, connRate)),
      baseline ? '' : ratioCell(ratiosToTcp(c, results, connCpu)),
    ];
  });
  console.log(
    `\nconnect — connections opened and CONNACKed, ${o.concurrency} at a time, kept open ` +
      `(${o.connections} per run; with a password file ${o.passwordConnections})`,
  );
  const header = [
    'broker',
    'variant',
    'conns',
    'conn/s',
    'CPU µs/conn',
    'gen',
    'conn/s vs tcp',
    'CPU/conn vs tcp',
  ];
  console.log(renderTable(header, rows, ['left', 'left', ...header.slice(2).map(() => 'right' as const)]));
  if (rows.some((r) => r[4]?.startsWith('~')))
    notes.push('~: the broker used under 0.1 s of CPU in a run, read in 10 ms ticks: CPU/conn is coarse');
  printNotes(notes, genBound, cases, results);
}

function printNotes(notes: string[], genBound: boolean, cases: Case[], results: Results): void {
  if (genBound)
    notes.push('the load generator used ≥ 90% of a core in some run: those figures may be generator-bound');
  const runs = cases.flatMap((c) => ok(results.get(c.name)));
  const psi = median(runs.map((r) => r.pressurePct).filter(Number.isFinite));
  if (psi >= 10)
    notes.push(
      `CPU pressure ${psi.toFixed(0)}% (median): the machine was busy; ratios and CPU per message or connection are steadier than rates`,
    );
  for (const n of notes) console.log(`  note: ${n}`);
}

function progress(e: Entry): string {
  if (e.kind === 'error') return `FAILED: ${e.message}`;
  if (e.kind === 'flow') {
    return `${rateF(e.rate)} msg/s  CPU ${us(e.cpuPerMsgUs)} µs/msg (${pct(e.cpuPct)})  gen ${pct(e.genPct)}  loss ${e.loss}  psi ${pct(e.pressurePct)}`;
  }
  const failed = e.failed > 0 ? `  ${e.failed} failed` : '';
  return `${e.connected} conns  ${rateF(e.connRate)} conn/s  CPU ${us(e.cpuPerConnUs)} µs/conn  gen ${pct(e.genPct)}  psi ${pct(e.pressurePct)}${failed}`;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseOrExit(parseArgs);
  if (!existsSync(join(root, 'dist', 'bench', 'loadgen.js'))) {
    console.error('dist/bench/loadgen.js is missing: build first (npx tsc -p tsconfig.json)');
    process.exit(2);
  }
  console.log('Cicada transport and authentication benchmark');
  console.log(
    `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; aedes ${aedesVersion()}, mosquitto ${mosquittoVersion()}`,
  );
  o.brokers = runnable(o.brokers, brokerUnavailable);
  const notes: string[] = [];
  const security = await makeSecurity(notes);
  const wanted = allCases(o);
  if (wanted.length === 0) {
    console.error(`no run matches --only ${o.only.join(',')}`);
    process.exit(2);
  }
  const cases = await runnableCases(wanted, security, notes);
  for (const n of notes) console.log(`note: ${n}`);
  const pairs = cases.filter((c) => c.scenario === 'pairs');
  const connects = cases.filter((c) => c.scenario === 'connect');
  // Rough rates on a small machine: TLS handshakes ~200/s, scrypt checks ~6/s.
  const perConnect = (c: Case): number =>
    2 +
    (c.passwords === 'scrypt'
      ? o.passwordConnections / 6
      : (c.passwords === 'none' ? o.connections : o.passwordConnections) / (c.scheme === 'tls' ? 200 : 1000));
  const perPairs = (o.warmupMs + o.durationMs) / 1000 + 1.5;
  const estimate = o.rounds * (pairs.length * perPairs + connects.reduce((a, c) => a + perConnect(c), 0));
  console.log(
    `${cases.length} runs × ${o.rounds} round(s); pairs: ${o.warmupMs / 1000} s warm-up + ${o.durationMs / 1000} s measured; ` +
      `estimated time ~${Math.ceil(estimate / 60)} min`,
  );

  const results: Results = new Map();
  const json: unknown[] = [];
  for (const group of [pairs, connects]) {
    for (let round = 0; round < o.rounds; round++) {
      // Rotate the order so that no run always comes first (or last) in a round.
      const order = group.map((_, i) => group[(i + round) % group.length]!);
      for (const c of order) {
        const started = Date.now();
        let entry: Entry | undefined;
        // One retry: on a shared machine a run can fail for reasons of its own.
        for (let attempt = 0; entry === undefined; attempt++) {
          try {
            entry = await runCase(c, o, security, round);
          } catch (err) {
            const message = (err as Error).message.split('\n').join(' | ');
            if (attempt === 0) console.log(`  ${c.name}  round ${round + 1}: failed, retrying: ${message}`);
            else entry = { kind: 'error', round, message };
          }
        }
        results.set(c.name, [...(results.get(c.name) ?? []), entry]);
        json.push({ run: c.name, ...entry });
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        console.log(`  ${c.name.padEnd(28)} round ${round + 1}/${o.rounds}  ${progress(entry)}  (${secs} s)`);
      }
    }
  }
  if (pairs.length > 0) printPairs(pairs, results, o);
  if (connects.length > 0) printConnect(connects, results, o);
  writeJson(o.json, o, json);
}

runMain(main);
