/**
 * Topic-tree micro-benchmark: SubscriptionTree.match throughput (publishes matched per second)
 * with 10k and 100k subscriptions mixing exact and wildcard filters, and RetainedTree.match
 * for wildcard filters over 100k retained topics against a naive scan of every topic.
 *
 *   node dist/bench/topic-tree.js               # 7 rounds, ~200 ms per measurement
 *   node dist/bench/topic-tree.js --quick       # smoke run: 3 short rounds
 *   node dist/bench/topic-tree.js --rounds 11 --ms 300
 *   node --expose-gc dist/bench/topic-tree.js   # also reports heap used by each tree
 *
 * Figures are medians over rounds with min and max. Topic names are given two ways: strings
 * reused across calls (V8 caches a string's hash, so the exact-filter lookup is cheaper) and
 * fresh strings decoded from a Buffer per publish, as the codec produces them; "decode only"
 * is the cost of producing those strings without matching. The only hard failures are
 * correctness checks (tree and naive scan must visit the same number of topics).
 */
import { RetainedTree, SubscriptionTree } from '../src/broker/topic-tree.js';
import {
  formatBytes,
  formatRate,
  formatRatio,
  formatRatioRange,
  median,
  ratios,
  renderTable,
} from './stats.js';

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  rounds: number;
  ms: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { rounds: 7, ms: 200 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${arg} wants a positive integer`);
      return n;
    };
    if (arg === '--quick') {
      opts.rounds = 3;
      opts.ms = 50;
    } else if (arg === '--rounds') opts.rounds = value();
    else if (arg === '--ms') opts.ms = value();
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: node dist/bench/topic-tree.js [--quick] [--rounds N] [--ms MS]');
      process.exit(0);
    } else throw new Error(`unknown argument '${arg}' (try --help)`);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** mulberry32: a small seeded PRNG, so every run uses the same workload. */
function prng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Runs `batch` (which does `perBatch` operations) for about `ms` milliseconds; returns operations/s. */
function rate(ms: number, perBatch: number, batch: () => void): number {
  const budget = BigInt(ms) * 1_000_000n;
  const start = process.hrtime.bigint();
  let ops = 0;
  let elapsed = 0n;
  do {
    batch();
    ops += perBatch;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return ops / (Number(elapsed) / 1e9);
}

/** Heap used after a full collection, or NaN without --expose-gc. */
function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return Number.NaN;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function spread(samples: number[]): [string, string, string] {
  return [formatRate(median(samples)), formatRate(Math.min(...samples)), formatRate(Math.max(...samples))];
}

/** Subscriber values, as the broker would store them: small objects compared by identity. */
interface Subscriber {
  readonly id: number;
}

let sink = 0;
let visits = 0;
const onMatch = (value: Subscriber): void => {
  sink ^= value.id;
  visits++;
};

// ---------------------------------------------------------------------------------------------
// SubscriptionTree.match

/**
 * One filter per subscriber, roughly as a fleet of devices and dashboards would subscribe:
 * 70% exact command topics, 10% a device's whole subtree, 10% '+' over rooms of a site
 * (n/100 sites), 5% a leading '+', 5% '+' over devices for one alarm kind (n/200 kinds):
 * about ten subscribers per wildcard filter, so the figures are about matching, not fan-out.
 */
function subscriptionFilter(i: number, n: number): string {
  const r = i % 20;
  if (r < 14) return `dev/${i}/cmd`;
  if (r < 16) return `dev/${i}/#`;
  if (r < 18) return `site/${i % (n / 100)}/+/temp`;
  if (r < 19) return `+/${i}/status`;
  return `dev/+/alarm/${i % (n / 200)}`;
}

/** Published topics: mostly hits on each kind of filter, and 10% that match nothing. */
function publishTopics(n: number, count: number): string[] {
  const random = prng(42);
  const int = (k: number): number => Math.floor(random() * k);
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    const r = random();
    if (r < 0.4) out.push(`dev/${int(n)}/cmd`);
    else if (r < 0.6) out.push(`site/${int(n / 100)}/room-${int(20)}/temp`);
    else if (r < 0.75) out.push(`dev/${int(n)}/alarm/${int(n / 200)}`);
    else if (r < 0.9) out.push(`x/${int(n)}/status`);
    else out.push(`other/${int(n)}/foo/bar`);
  }
  return out;
}

const TOPICS_PER_BATCH = 4096;

function benchSubscriptions(opts: Options): void {
  const sizes = [10_000, 100_000];
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const n of sizes) {
    const heapBefore = heapUsed();
    const tree = new SubscriptionTree<Subscriber>();
    const buildStart = process.hrtime.bigint();
    for (let i = 0; i < n; i++) tree.add(subscriptionFilter(i, n), { id: i });
    const buildNs = Number(process.hrtime.bigint() - buildStart);
    const heap = heapUsed() - heapBefore;
    const topics = publishTopics(n, TOPICS_PER_BATCH);
    // The same topics as the codec hands them over: encoded, one Buffer slice per topic.
    const encoded = topics.map((t) => Buffer.from(t, 'latin1'));

    visits = 0;
    for (const t of topics) tree.match(t, onMatch);
    const visitsPerPublish = visits / topics.length;

    const cached = (): void => {
      for (let i = 0; i < topics.length; i++) tree.match(topics[i]!, onMatch);
    };
    const fresh = (): void => {
      for (let i = 0; i < encoded.length; i++) {
        const b = encoded[i]!;
        tree.match(b.toString('latin1', 0, b.length), onMatch);
      }
    };
    const decodeOnly = (): void => {
      for (let i = 0; i < encoded.length; i++) {
        const b = encoded[i]!;
        sink ^= b.toString('latin1', 0, b.length).length;
      }
    };
    const cases: [string, () => void][] = [
      ['match, reused topic strings', cached],
      ['decode + match, fresh strings', fresh],
      ['decode only (baseline)', decodeOnly],
    ];
    const samples = cases.map((): number[] => []);
    for (const [, fn] of cases) rate(Math.max(20, opts.ms / 4), TOPICS_PER_BATCH, fn); // warm-up
    for (let round = 0; round < opts.rounds; round++) {
      for (let c = 0; c < cases.length; c++) samples[c]!.push(rate(opts.ms, TOPICS_PER_BATCH, cases[c]![1]));
    }
    for (let c = 0; c < cases.length; c++) {
      rows.push([`${n / 1000}k subs`, cases[c]![0], ...spread(samples[c]!)]);
    }
    const ns = (s: number[]): string => (1e9 / median(s)).toFixed(0);
    notes.push(
      `${n / 1000}k subs (${tree.filterCount} filters): built in ${(buildNs / 1e6).toFixed(1)} ms` +
        ` (${formatRate((n * 1e9) / buildNs)}adds/s)` +
        (Number.isNaN(heap) ? '' : `, heap ${formatBytes(heap)}`) +
        `; ${visitsPerPublish.toFixed(2)} visits/publish;` +
        ` ~${ns(samples[0]!)} ns/publish reused, ~${ns(samples[1]!)} ns decode+match`,
    );
  }
  console.log('\nSubscriptionTree.match (publishes/s)\n');
  console.log(
    renderTable(['tree', 'case', 'median', 'min', 'max'], rows, ['left', 'left', 'right', 'right', 'right']),
  );
  console.log('');
  for (const note of notes) console.log(note);
}

// ---------------------------------------------------------------------------------------------
// RetainedTree.match vs a naive scan

/** Whether `topic` matches the filter given as levels (MQTT 4.7), without allocating. */
function naiveMatches(levels: readonly string[], topic: string): boolean {
  const first = levels[0];
  if (topic.charCodeAt(0) === 36 && (first === '+' || first === '#')) return false;
  let start = 0;
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '#') return true;
    if (start > topic.length) return false;
    let end = topic.indexOf('/', start);
    if (end === -1) end = topic.length;
    if (level !== '+' && (end - start !== level.length || !topic.startsWith(level, start))) return false;
    start = end + 1;
  }
  return start > topic.length;
}

function benchRetained(opts: Options): void {
  const devices = 10_000;
  const sensors = 10;
  const heapBefore = heapUsed();
  const tree = new RetainedTree<Subscriber>();
  const flat: [string, Subscriber][] = [];
  const buildStart = process.hrtime.bigint();
  for (let d = 0; d < devices; d++) {
    for (let s = 0; s < sensors; s++) {
      const topic = `dev/${d}/sensor/${s}`;
      const value = { id: d * sensors + s };
      tree.set(topic, value);
      flat.push([topic, value]);
    }
  }
  const buildNs = Number(process.hrtime.bigint() - buildStart);
  const heap = heapUsed() - heapBefore;
  const filters = [
    'dev/4242/sensor/5',
    'dev/4242/sensor/+',
    'dev/4242/#',
    'dev/+/sensor/3',
    '+/+/sensor/7',
    '+/4242/+/+',
    '#',
  ];
  const rows: string[][] = [];
  for (const filter of filters) {
    const levels = filter.split('/');
    const viaTree = (): void => tree.match(filter, onMatch);
    const viaScan = (): void => {
      for (let i = 0; i < flat.length; i++) {
        const [topic, value] = flat[i]!;
        if (naiveMatches(levels, topic)) onMatch(value);
      }
    };
    visits = 0;
    viaTree();
    const found = visits;
    visits = 0;
    viaScan();
    if (visits !== found) throw new Error(`'${filter}': tree visited ${found} topics, scan ${visits}`);

    rate(Math.max(20, opts.ms / 4), 1, viaTree);
    rate(Math.max(20, opts.ms / 4), 1, viaScan);
    const treeRates: number[] = [];
    const scanRates: number[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      const treeFirst = round % 2 === 0;
      if (treeFirst) treeRates.push(rate(opts.ms, 1, viaTree));
      scanRates.push(rate(opts.ms, 1, viaScan));
      if (!treeFirst) treeRates.push(rate(opts.ms, 1, viaTree));
    }
    const speedups = ratios(treeRates, scanRates);
    rows.push([
      filter,
      String(found),
      ...spread(treeRates),
      formatRate(median(scanRates)),
      formatRatio(median(speedups), 1),
      formatRatioRange(speedups, 1),
    ]);
  }
  console.log(`\nRetainedTree.match over ${flat.length / 1000}k retained topics (matches/s)\n`);
  console.log(
    renderTable(['filter', 'topics', 'tree median', 'min', 'max', 'scan median', 'speed-up', 'range'], rows, [
      'left',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
    ]),
  );
  console.log(
    `\nbuilt in ${(buildNs / 1e6).toFixed(1)} ms (${formatRate((flat.length * 1e9) / buildNs)}sets/s)` +
      (Number.isNaN(heap) ? '' : `, heap ${formatBytes(heap)}`),
  );
}

// ---------------------------------------------------------------------------------------------

const opts = parseArgs(process.argv.slice(2));
console.log(`topic-tree bench: node ${process.version}, ${opts.rounds} rounds x ${opts.ms} ms`);
benchSubscriptions(opts);
benchRetained(opts);
console.log(`\n(checksum ${sink})`);
