/**
 * STOMP codec micro-benchmark: decode and encode throughput in frames per second.
 *
 *   node dist/bench/codec-stomp.js                  # 7 rounds, 250 ms per measurement
 *   node dist/bench/codec-stomp.js --quick          # smoke run: 3 short rounds
 *   node dist/bench/codec-stomp.js --rounds 11 --ms 300 --filter MESSAGE
 *
 * Every round measures every (case, op) once; the table shows the median over rounds with
 * the min–max range. Decoding feeds a stream of many frames cut into 64 KiB chunks, so frames
 * straddle chunk edges as they do on a socket. Nothing fails on timing: the only hard
 * failure is a wrong frame count.
 */
import { cpus } from 'node:os';
import { encodeFrame, StompDecoder, type StompVersion } from '../src/codec/stomp/index.js';
import { eachFlag, parseOrExit } from './lib/args.js';
import { formatRate, max, median, min, nsToSeconds, renderTable } from './stats.js';

interface Options {
  rounds: number;
  ms: number;
  filter: string | undefined;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { rounds: 7, ms: 250, filter: undefined };
  eachFlag(argv, (flag, value, arg) => {
    switch (flag) {
      case '--quick':
        opts.rounds = 3;
        opts.ms = 50;
        break;
      case '--rounds':
        opts.rounds = positiveInt(flag, value());
        break;
      case '--ms':
        opts.ms = positiveInt(flag, value());
        break;
      case '--filter':
        opts.filter = value();
        break;
      case '--help':
      case '-h':
        console.log('usage: node dist/bench/codec-stomp.js [--quick] [--rounds N] [--ms MS] [--filter TEXT]');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument '${arg}' (try --help)`);
    }
  });
  return opts;
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} wants a positive integer, got '${text}'`);
  return n;
}

interface Case {
  name: string;
  version: StompVersion;
  command: string;
  headers: [string, string][];
  body: Buffer | undefined;
}

const JSON_16 = Buffer.from('{"t":21.5,"h":40');
const BODY_1K = Buffer.alloc(1024, 'abcdefghijklmnopqrstuvwxyz0123456789');

const cases: Case[] = [
  {
    name: 'SEND 16 B, no content-length',
    version: '1.2',
    command: 'SEND',
    headers: [
      ['destination', '/topic/sensors.building-7.floor-3.temperature'],
      ['content-type', 'application/json'],
    ],
    body: JSON_16,
  },
  {
    name: 'MESSAGE 1 KiB, content-length, 7 headers',
    version: '1.2',
    command: 'MESSAGE',
    headers: [
      ['subscription', 'sub-0'],
      ['message-id', 'm-123456789'],
      ['destination', '/queue/orders'],
      ['ack', 'a-123456789'],
      ['content-type', 'application/octet-stream'],
      ['trace-id', '4bf92f3577b34da6'],
      ['content-length', String(BODY_1K.length)],
    ],
    body: BODY_1K,
  },
  {
    name: 'MESSAGE 16 B, escaped headers',
    version: '1.2',
    command: 'MESSAGE',
    headers: [
      ['subscription', 'sub-0'],
      ['message-id', 'm-1'],
      ['destination', '/topic/a.b'],
      ['x-url', 'http://host:8080/path'],
      ['x-lines', 'one\ntwo'],
    ],
    body: JSON_16,
  },
  { name: 'ACK', version: '1.2', command: 'ACK', headers: [['id', 'a-123456789']], body: undefined },
];

const CHUNK_SIZE = 64 * 1024;
/** Roughly how many bytes one decode pass feeds. */
const PASS_BYTES = 4 * CHUNK_SIZE;
const ENCODE_BATCH = 256;

/** Runs `pass` (returning frames done) until `ms` have passed; returns frames per second. */
function measure(ms: number, pass: () => number): number {
  const budget = BigInt(ms) * 1_000_000n;
  const start = process.hrtime.bigint();
  let frames = 0;
  let elapsed = 0n;
  do {
    frames += pass();
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return frames / nsToSeconds(elapsed);
}

function decodePass(c: Case): () => number {
  const frame = encodeFrame(c.command, c.headers, c.body, c.version);
  const count = Math.max(1, Math.floor(PASS_BYTES / frame.length));
  const stream = Buffer.concat(Array.from({ length: count }, () => frame));
  const chunks: Buffer[] = [];
  for (let at = 0; at < stream.length; at += CHUNK_SIZE) chunks.push(stream.subarray(at, at + CHUNK_SIZE));
  const bodyBytes = count * (c.body?.length ?? 0);
  return () => {
    const decoder = new StompDecoder();
    decoder.version = c.version;
    let frames = 0;
    let bytes = 0;
    for (const chunk of chunks)
      decoder.push(chunk, (f) => {
        frames++;
        bytes += f.body.length;
      });
    if (frames !== count || bytes !== bodyBytes)
      throw new Error(
        `${c.name}: decoded ${frames} frames (${bytes} body bytes), expected ${count} (${bodyBytes})`,
      );
    return frames;
  };
}

function encodePass(c: Case): () => number {
  return () => {
    let bytes = 0;
    for (let i = 0; i < ENCODE_BATCH; i++)
      bytes += encodeFrame(c.command, c.headers, c.body, c.version).length;
    if (bytes === 0) throw new Error('nothing encoded');
    return ENCODE_BATCH;
  };
}

function main(): void {
  const opts = parseOrExit(parseArgs);
  const selected = cases.filter((c) => opts.filter === undefined || c.name.includes(opts.filter));
  const runs = selected.flatMap((c) => [
    {
      label: c.name,
      op: 'decode',
      pass: decodePass(c),
      size: encodeFrame(c.command, c.headers, c.body, c.version).length,
    },
    { label: c.name, op: 'encode', pass: encodePass(c), size: 0 },
  ]);
  const samples = runs.map(() => [] as number[]);
  console.log(
    `STOMP codec: ${opts.rounds} rounds x ${opts.ms} ms per measurement, Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`,
  );
  for (const run of runs) measure(Math.min(opts.ms, 60), run.pass); // warm-up
  for (let round = 0; round < opts.rounds; round++)
    runs.forEach((run, i) => {
      samples[i]!.push(measure(opts.ms, run.pass));
    });
  const rows = runs.map((run, i) => [
    run.label,
    run.op,
    run.size ? String(run.size) : '',
    `${formatRate(median(samples[i]!))}/s`,
    `${formatRate(min(samples[i]!))}–${formatRate(max(samples[i]!))}`,
  ]);
  console.log(
    renderTable(['case', 'op', 'bytes', 'frames/s (median)', 'min–max'], rows, [
      'left',
      'left',
      'right',
      'right',
      'right',
    ]),
  );
}

main();
