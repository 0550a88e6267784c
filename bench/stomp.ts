/**
 * STOMP benchmark: Cicada's STOMP beside its own MQTT, on one broker, in one run.
 *
 *   npm run bench:stomp                  # 3 rounds of 3 s per case (~2 min)
 *   node dist/bench/stomp.js --quick     # 1 round of 1.5 s
 *   node dist/bench/stomp.js --only queue --rounds 5
 *
 * Cases (each on a fresh broker with the embedded durable store in a temporary directory):
 *   pairs      20 publisher/subscriber pairs, one topic each, 100 messages in flight end to
 *              end per pair (a publisher sends more as its subscriber receives), 16 B bodies:
 *              stomp→stomp (SEND /topic/bench.N, ack auto), mqtt→mqtt (QoS 0), and the two
 *              cross-protocol directions. Deliveries/s.
 *   queue      1 producer → 4 consumers of one queue, 16 B bodies. STOMP: SEND /queue/bench
 *              with a receipt each (at most 200 awaiting RECEIPT), consumers with
 *              ack:client-individual, prefetch-count 100, an ACK per MESSAGE. MQTT: QoS 1
 *              PUBLISH to $queue/bench (200 awaiting PUBACK), consumers SUBSCRIBE $queue/bench
 *              at QoS 1 and PUBACK each. Messages acknowledged by consumers per second; every
 *              one is written to the durable store before its RECEIPT/PUBACK.
 *
 * The broker runs as a child process; the clients run in this process (raw sockets, frames
 * from Cicada's codecs, so that client-side cost stays small). `gen` is this process's CPU
 * use: near 100 % means the client side bounds the figure. Figures are medians over rounds
 * with min–max; ratios are medians of per-round ratios against the mqtt→mqtt (pairs) and
 * mqtt (queue) cases of the same round. Machines here are shared: compare ratios, not
 * absolute rates.
 */
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from '../src/codec/mqtt/index.js';
import { encodeFrame, getHeader, StompDecoder, type StompFrame } from '../src/codec/stomp/index.js';
import { parseFlags, parseOrExit, type RunOptions } from './lib/args.js';
import {
  BrokerProcess,
  cicadaCommand,
  cicadaConfig,
  freePort,
  HOST,
  makeTempDir,
  removeTempDir,
  runMain,
} from './lib/brokers.js';
import { type ConnectionOwner, PUBACK, RawConnection } from './lib/raw-mqtt.js';
import { fmtRange, pct, rateF, us, writeJson } from './lib/report.js';
import { median, ratios, renderTable } from './stats.js';

type Options = RunOptions;

const HELP = `Usage: node dist/bench/stomp.js [--quick] [--rounds N] [--duration S] [--warmup S] [--only A,B] [--json FILE]
  cases: pairs/mqtt→mqtt, pairs/stomp→stomp, pairs/stomp→mqtt, pairs/mqtt→stomp, queue/mqtt, queue/stomp
`;

const BODY = Buffer.alloc(16, 0x61);
const PAIRS = 20;
const PAIR_WINDOW = 100;
const QUEUE_CONSUMERS = 4;
const QUEUE_WINDOW = 200;
const QUEUE_PREFETCH = 100;

function parseOptions(argv: string[]): Options {
  const o: Options = { quick: false, rounds: 3, durationMs: 3000, warmupMs: 500, only: [], json: undefined };
  parseFlags(argv, o, HELP, { rounds: 1, durationMs: 1500, warmupMs: 300 }, () => false);
  return o;
}

/** Cicada with an MQTT and a STOMP listener and a durable store in a temporary directory. */
class Cicada extends BrokerProcess {
  stompPort = 0;
  private dir = '';

  async start(): Promise<void> {
    this.port = await freePort();
    this.stompPort = await freePort();
    this.dir = makeTempDir(tmpdir(), 'cicada-bench-stomp-');
    const conf = cicadaConfig(this.dir, { queues: { maxMessages: 10_000_000 } });
    const args = ['--log-level', 'warn', '--data', join(this.dir, 'data'), '--config', conf];
    await this.spawn(cicadaCommand(this.port, [...args, '--listen', `stomp://${HOST}:${this.stompPort}`]));
    await this.listening(15_000, 50);
    const mqttPort = this.port;
    this.port = this.stompPort;
    await this.listening(15_000, 50);
    this.port = mqttPort;
  }

  async stop(): Promise<void> {
    await this.shutdown(2000);
    removeTempDir(this.dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

/** What every client reports to: errors end the run. */
class Owner implements ConnectionOwner {
  readonly conns = new Set<RawConnection>();
  readonly stomps = new Set<StompClient>();
  failure: string | undefined;
  error(message: string): void {
    this.failure ??= message;
  }
  closeAll(): void {
    for (const c of this.conns) {
      c.closing = true;
      c.socket.destroy();
    }
    for (const s of this.stomps) s.close();
  }
}

/** A raw STOMP 1.2 client: frames encoded once where they repeat, decoded with Cicada's codec. */
class StompClient {
  readonly socket: Socket;
  onMessage: (frame: StompFrame) => void = () => {};
  onReceipt: (id: string) => void = () => {};
  private readonly decoder = new StompDecoder({ maxFrameSize: 16 * 1024 * 1024 });
  private connected: (() => void) | undefined;
  private closing = false;

  constructor(
    port: number,
    private readonly owner: Owner,
  ) {
    this.socket = connect({ host: HOST, port, noDelay: true });
    owner.stomps.add(this);
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (frame) => this.frame(frame));
      } catch (error) {
        owner.error(`stomp decode: ${(error as Error).message}`);
        this.socket.destroy();
      }
    });
    this.socket.on('error', (error) => {
      if (!this.closing) owner.error(`stomp: ${error.message}`);
    });
    this.socket.on('close', () => {
      if (!this.closing) owner.error('stomp connection closed by broker');
    });
  }

  connect(): Promise<void> {
    return new Promise((resolve) => {
      this.connected = resolve;
      this.write('CONNECT', [
        ['accept-version', '1.2'],
        ['host', 'bench'],
        ['heart-beat', '0,0'],
      ]);
    });
  }

  write(command: string, headers: [string, string][], body?: Buffer): void {
    this.socket.write(encodeFrame(command, headers, body, '1.2'));
  }

  close(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private frame(frame: StompFrame): void {
    switch (frame.command) {
      case 'CONNECTED':
        this.decoder.version = '1.2';
        this.connected?.();
        return;
      case 'MESSAGE':
        this.onMessage(frame);
        return;
      case 'RECEIPT':
        this.onReceipt(getHeader(frame, 'receipt-id') ?? '');
        return;
      case 'ERROR':
        this.owner.error(`stomp ERROR: ${getHeader(frame, 'message') ?? ''} ${frame.body.toString()}`);
    }
  }
}

/** A raw MQTT 3.1.1 client (bench/lib/raw-mqtt.ts) that counts what it gets and acknowledges QoS 1. */
class MqttClient extends RawConnection {
  received = 0;
  acked = 0;
  onReceive: () => void = () => {};
  onAck: () => void = () => {};

  protected publishFrame(qos: number, id: number): void {
    this.received++;
    if (qos === 1) this.queueAck(PUBACK, id);
    this.onReceive();
  }

  protected ackFrame(type: number): void {
    if (type === 4) {
      this.acked++;
      this.onAck();
    }
  }
}

/** `count` copies of `frame`, back to back, for writing many messages at once. */
function repeated(frame: Buffer, count: number): Buffer {
  const out = Buffer.allocUnsafe(frame.length * count);
  for (let i = 0; i < count; i++) frame.copy(out, i * frame.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cases

type Protocol = 'stomp' | 'mqtt';

interface Measured {
  rate: number;
  cpuPerMsg: number;
  genCpu: number;
}

interface Running {
  /** Messages counted so far (deliveries or acknowledged consumptions). */
  count(): number;
}

async function measure(
  b: Cicada,
  o: Options,
  setup: () => Promise<Running>,
  owner: Owner,
): Promise<Measured> {
  const running = await setup();
  await sleepChecked(o.warmupMs, owner);
  const c0 = running.count();
  const cpu0 = b.cpu();
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  await sleepChecked(o.durationMs, owner);
  const seconds = (performance.now() - t0) / 1000;
  const messages = running.count() - c0;
  const cpu = b.cpu() - cpu0;
  const gen = process.cpuUsage(gen0);
  owner.closeAll();
  if (owner.failure !== undefined) throw new Error(owner.failure);
  return {
    rate: messages / seconds,
    cpuPerMsg: messages > 0 ? (cpu / messages) * 1e6 : Number.NaN,
    genCpu: ((gen.user + gen.system) / 1e6 / seconds) * 100,
  };
}

async function sleepChecked(ms: number, owner: Owner): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (owner.failure !== undefined) throw new Error(owner.failure);
    await new Promise((r) => setTimeout(r, Math.min(50, end - performance.now())));
  }
}

/** One publisher → one subscriber per pair; a publisher refills its window as its subscriber receives. */
async function pairs(b: Cicada, from: Protocol, to: Protocol, owner: Owner): Promise<Running> {
  let delivered = 0;
  const starts: (() => void)[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const topic = `bench/pair${i}`;
    let sent = 0;
    let received = 0;
    let refill: () => void = () => {};
    const onReceive = (): void => {
      received++;
      delivered++;
      if (sent - received <= PAIR_WINDOW / 2) refill();
    };
    if (to === 'stomp') {
      const sub = new StompClient(b.stompPort, owner);
      await sub.connect();
      sub.onMessage = onReceive;
      await subscribeStomp(sub, `/topic/bench.pair${i}`, 'auto');
    } else {
      const sub = new MqttClient(HOST, b.port, owner);
      await sub.handshake(`bench-sub-${i}`, true, 0);
      await sub.subscribe(topic, 0);
      sub.onReceive = onReceive;
    }
    if (from === 'stomp') {
      const pub = new StompClient(b.stompPort, owner);
      await pub.connect();
      const frame = encodeFrame(
        'SEND',
        [
          ['destination', `/topic/bench.pair${i}`],
          ['content-length', String(BODY.length)],
        ],
        BODY,
        '1.2',
      );
      const burst = repeated(frame, PAIR_WINDOW);
      refill = () => {
        const n = PAIR_WINDOW - (sent - received);
        if (n <= 0) return;
        pub.socket.write(burst.subarray(0, n * frame.length));
        sent += n;
      };
    } else {
      const pub = new MqttClient(HOST, b.port, owner);
      await pub.handshake(`bench-pub-${i}`, true, 0);
      const frame = encode({ type: 'publish', topic, payload: BODY, qos: 0, retain: false, dup: false }, 4);
      const burst = repeated(frame, PAIR_WINDOW);
      refill = () => {
        const n = PAIR_WINDOW - (sent - received);
        if (n <= 0) return;
        pub.socket.write(burst.subarray(0, n * frame.length));
        sent += n;
      };
    }
    starts.push(() => refill());
  }
  for (const start of starts) start();
  return { count: () => delivered };
}

/** Subscribes and waits for the RECEIPT, so that no message is sent before the subscription exists. */
function subscribeStomp(
  client: StompClient,
  destination: string,
  ack: string,
  extra: [string, string][] = [],
): Promise<void> {
  return new Promise((resolve) => {
    client.onReceipt = (id) => {
      if (id === 'sub') resolve();
    };
    client.write('SUBSCRIBE', [
      ['id', '0'],
      ['destination', destination],
      ['ack', ack],
      ['receipt', 'sub'],
      ...extra,
    ]);
  });
}

/** One producer → QUEUE_CONSUMERS consumers of one queue; each consumption acknowledged. */
async function queue(b: Cicada, protocol: Protocol, owner: Owner): Promise<Running> {
  let consumed = 0;
  if (protocol === 'stomp') {
    for (let i = 0; i < QUEUE_CONSUMERS; i++) {
      const consumer = new StompClient(b.stompPort, owner);
      await consumer.connect();
      await subscribeStomp(consumer, '/queue/bench', 'client-individual', [
        ['prefetch-count', String(QUEUE_PREFETCH)],
      ]);
      let acks: Buffer[] = [];
      const flush = (): void => {
        consumer.socket.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
        acks = [];
      };
      consumer.onMessage = (frame) => {
        consumed++;
        if (acks.length === 0) process.nextTick(flush);
        acks.push(encodeFrame('ACK', [['id', getHeader(frame, 'ack') ?? '']], undefined, '1.2'));
      };
    }
    const producer = new StompClient(b.stompPort, owner);
    await producer.connect();
    let next = 0;
    let outstanding = 0;
    const send = (): void => {
      const frames: Buffer[] = [];
      while (outstanding < QUEUE_WINDOW) {
        frames.push(
          encodeFrame(
            'SEND',
            [
              ['destination', '/queue/bench'],
              ['receipt', String(next++)],
              ['content-length', String(BODY.length)],
            ],
            BODY,
            '1.2',
          ),
        );
        outstanding++;
      }
      if (frames.length > 0) producer.socket.write(Buffer.concat(frames));
    };
    producer.onReceipt = () => {
      outstanding--;
      if (outstanding <= QUEUE_WINDOW / 2) send();
    };
    send();
  } else {
    for (let i = 0; i < QUEUE_CONSUMERS; i++) {
      const consumer = new MqttClient(HOST, b.port, owner);
      await consumer.handshake(`bench-consumer-${i}`, true, 0);
      await consumer.subscribe('$queue/bench', 1);
      consumer.onReceive = () => {
        consumed++;
      };
    }
    const producer = new MqttClient(HOST, b.port, owner);
    await producer.handshake('bench-producer', true, 0);
    let packetId = 0;
    let outstanding = 0;
    const send = (): void => {
      const frames: Buffer[] = [];
      while (outstanding < QUEUE_WINDOW) {
        packetId = packetId === 0xffff ? 1 : packetId + 1;
        frames.push(
          encode(
            {
              type: 'publish',
              topic: '$queue/bench',
              payload: BODY,
              qos: 1,
              retain: false,
              dup: false,
              packetId,
            },
            4,
          ),
        );
        outstanding++;
      }
      if (frames.length > 0) producer.socket.write(Buffer.concat(frames));
    };
    producer.onAck = () => {
      outstanding--;
      if (outstanding <= QUEUE_WINDOW / 2) send();
    };
    send();
  }
  return { count: () => consumed };
}

// ---------------------------------------------------------------------------------------------
// Main

interface Case {
  scenario: 'pairs' | 'queue';
  name: string;
  /** The case of the same scenario this one is compared with. */
  baseline: string;
  run(b: Cicada, owner: Owner): Promise<Running>;
}

const CASES: Case[] = [
  { scenario: 'pairs', name: 'mqtt→mqtt', baseline: 'mqtt→mqtt', run: (b, w) => pairs(b, 'mqtt', 'mqtt', w) },
  {
    scenario: 'pairs',
    name: 'stomp→stomp',
    baseline: 'mqtt→mqtt',
    run: (b, w) => pairs(b, 'stomp', 'stomp', w),
  },
  {
    scenario: 'pairs',
    name: 'stomp→mqtt',
    baseline: 'mqtt→mqtt',
    run: (b, w) => pairs(b, 'stomp', 'mqtt', w),
  },
  {
    scenario: 'pairs',
    name: 'mqtt→stomp',
    baseline: 'mqtt→mqtt',
    run: (b, w) => pairs(b, 'mqtt', 'stomp', w),
  },
  { scenario: 'queue', name: 'mqtt', baseline: 'mqtt', run: (b, w) => queue(b, 'mqtt', w) },
  { scenario: 'queue', name: 'stomp', baseline: 'mqtt', run: (b, w) => queue(b, 'stomp', w) },
];

async function runCase(c: Case, o: Options): Promise<Measured> {
  const b = new Cicada('cicada');
  const owner = new Owner();
  try {
    await b.start();
    return await measure(b, o, () => c.run(b, owner), owner);
  } finally {
    owner.closeAll();
    await b.stop();
  }
}

async function main(): Promise<void> {
  const o = parseOrExit(() => parseOptions(process.argv.slice(2)));
  const cases = CASES.filter(
    (c) => o.only.length === 0 || o.only.some((w) => `${c.scenario}/${c.name}`.includes(w)),
  );
  console.log('Cicada STOMP benchmark: STOMP beside MQTT on one broker (durable store on)');
  console.log(
    `node ${process.version}; ${o.rounds} round(s), ${o.warmupMs / 1000} s warm-up + ${o.durationMs / 1000} s measured`,
  );
  const results = new Map<string, Measured[]>();
  const log: { case: string; round: number; result: Measured }[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const c of cases) {
      const key = `${c.scenario}/${c.name}`;
      const m = await runCase(c, o);
      results.set(key, [...(results.get(key) ?? []), m]);
      log.push({ case: key, round, result: m });
      console.log(
        `  ${key.padEnd(18)} round ${round}/${o.rounds}  ${rateF(m.rate).padStart(8)}/s  CPU ${us(m.cpuPerMsg)}/msg  gen ${pct(m.genCpu)}`,
      );
    }
  }
  const rows = cases.map((c) => {
    const key = `${c.scenario}/${c.name}`;
    const ms = results.get(key)!;
    const base = results.get(`${c.scenario}/${c.baseline}`);
    const ratio =
      base === undefined || c.name === c.baseline
        ? '1'
        : `${median(
            ratios(
              ms.map((m) => m.rate),
              base.map((m) => m.rate),
            ),
          ).toFixed(2)}x`;
    return [
      key,
      `${rateF(median(ms.map((m) => m.rate)))} ${fmtRange(
        ms.map((m) => m.rate),
        rateF,
      )}`,
      ratio,
      us(median(ms.map((m) => m.cpuPerMsg))),
      pct(median(ms.map((m) => m.genCpu))),
    ];
  });
  console.log('');
  console.log(
    'pairs: deliveries/s; queue: messages consumed and acknowledged/s. ratio: against mqtt of the same scenario',
  );
  console.log(
    renderTable(['case', 'msg/s median [min–max]', 'ratio', 'broker CPU/msg', 'gen'], rows, [
      'left',
      'right',
      'right',
      'right',
      'right',
    ]),
  );
  writeJson(o.json, o, log);
}

runMain(main);
