/**
 * Brokers under test as child processes, for bench/load.ts and bench/persist.ts: starting
 * Cicada and Mosquitto (and the command line of Aedes), the bookkeeping that makes sure
 * nothing outlives a benchmark, and what /proc says about a process (CPU, memory) and about
 * the machine (pressure).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { sleep, withTimeout } from './async.js';

/** The repository root: this file runs as dist/bench/lib/brokers.js. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------------------------
// Child processes: bookkeeping, so that nothing outlives the benchmark

/** Child processes (broker wrappers, load generators) to kill when the benchmark ends. */
export const children = new Set<ChildProcess>();
const brokerPids = new Set<number>();
const tempDirs = new Set<string>();

export function killEverything(): void {
  for (const pid of brokerPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  brokerPids.clear();
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Runs a benchmark's `main`, then exits (with 1 if it failed). Whatever it started is killed,
 * and its temporary directories are removed, however it ends: normally, by an error or by a
 * signal.
 */
export function runMain(main: () => Promise<void>): void {
  process.on('exit', killEverything);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping`);
      killEverything();
      process.exit(130);
    });
  }
  main().then(
    () => {
      killEverything();
      process.exit(0);
    },
    (err) => {
      console.error(err);
      killEverything();
      process.exit(1);
    },
  );
}

/** A new temporary directory `parent/prefixXXXXXX`, removed at the end if not before. */
export function makeTempDir(parent: string, prefix: string): string {
  const dir = mkdtempSync(join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------
// Ports

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts a connection on `port`. */
export function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// /proc

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) used by `pid` so far. */
export function procCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** VmRSS and VmHWM (peak) of `pid`, in bytes. */
export function procMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => {
    const m = new RegExp(`${name}:\\s+(\\d+)\\s+kB`).exec(status);
    return m === null ? Number.NaN : Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/**
 * Microseconds some runnable task has waited for a CPU (`cpu`), or some task has waited for
 * I/O (`io`), machine-wide (Linux PSI), or NaN. Its rate is a noise indicator: on a shared
 * machine other work competes with both the broker and the generator, and every throughput
 * figure drops with it.
 */
export function pressureUs(kind: 'cpu' | 'io'): number {
  try {
    const m = /some .*total=(\d+)/.exec(readFileSync(`/proc/pressure/${kind}`, 'utf8'));
    return m === null ? Number.NaN : Number(m[1]);
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// Broker command lines

/**
 * The brokers of `wanted` that can run here: `unavailable` says why one cannot (printed as a
 * note). Exits when none can.
 */
export function runnable<T>(wanted: readonly T[], unavailable: (broker: T) => string | undefined): T[] {
  const out: T[] = [];
  for (const b of wanted) {
    const why = unavailable(b);
    if (why === undefined) out.push(b);
    else console.log(`note: ${why}`);
  }
  if (out.length === 0) {
    console.error('no broker to run');
    process.exit(2);
  }
  return out;
}

export const CICADA_MAIN = join(root, 'dist', 'src', 'cli', 'main.js');
export const AEDES_SERVER = join(root, 'dist', 'bench', 'aedes-server.js');
export const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto'].find(
  existsSync,
);

export function mosquittoVersion(): string {
  if (MOSQUITTO === undefined) return 'not installed';
  try {
    execFileSync(MOSQUITTO, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const m = /mosquitto version (\S+)/.exec(String((err as { stdout?: string }).stdout ?? ''));
    if (m !== null) return m[1]!;
  }
  return 'unknown';
}

/** The installed Aedes's version, or 'unknown'. */
export function aedesVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'node_modules', 'aedes', 'package.json'), 'utf8'));
    return String(pkg.version);
  } catch {
    return 'unknown';
  }
}

/** The brokers the benchmarks compare. */
export type BrokerName = 'cicada' | 'aedes' | 'mosquitto';
export const ALL_BROKERS: readonly BrokerName[] = ['cicada', 'aedes', 'mosquitto'];

/** Why a broker cannot run here (a note to print), or undefined when it can. */
export function brokerUnavailable(name: BrokerName): string | undefined {
  switch (name) {
    case 'cicada':
      return existsSync(CICADA_MAIN)
        ? undefined
        : 'Cicada CLI not built yet (dist/src/cli/main.js is missing): skipped';
    case 'aedes':
      if (!existsSync(AEDES_SERVER)) return 'dist/bench/aedes-server.js missing (build first): skipped';
      return existsSync(join(root, 'node_modules', 'aedes')) ? undefined : 'aedes not installed: skipped';
    case 'mosquitto':
      return MOSQUITTO === undefined
        ? 'mosquitto binary not found (apt-get install mosquitto): skipped'
        : undefined;
  }
}

/** Writes `config` to `dir`/cicada.json, for Cicada's --config; returns its path. */
export function cicadaConfig(dir: string, config: object): string {
  const conf = join(dir, 'cicada.json');
  // Every generated client comes from loopback: the per-address caps would refuse them.
  const limits = { maxConnections: 0, maxConnectionsPerAddress: 0, connectionRatePerAddress: 0 };
  writeFileSync(conf, `${JSON.stringify({ limits, ...config }, null, 2)}\n`);
  return conf;
}

/** Cicada's command line, listening on `port` (0: any free port), then `args`. */
export function cicadaCommand(port: number, args: string[]): string[] {
  return [
    process.execPath,
    // Extra Node flags for the broker process, e.g. CICADA_NODE_ARGS='--cpu-prof' to profile it.
    ...(process.env.CICADA_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    CICADA_MAIN,
    // Anonymous access is off by default; the benchmarks measure the message path.
    '--allow-anonymous',
    '--listen',
    `mqtt://${HOST}:${port}`,
    ...args,
  ];
}

/**
 * Writes `dir`/mosquitto.conf, a listener on `port` with `inflight` outbound QoS 1 and 2
 * messages in flight and `queued` queued per client, quiet logs, and `settings` (persistence
 * and the like); returns Mosquitto's command line.
 */
export function mosquittoCommand(
  dir: string,
  port: number,
  limits: { inflight: number; queued: number },
  settings: string[],
): string[] {
  const lines = [
    `listener ${port} ${HOST}`,
    'allow_anonymous true',
    'set_tcp_nodelay true',
    `max_inflight_messages ${limits.inflight}`,
    `max_queued_messages ${limits.queued}`,
    'max_queued_bytes 0',
    'max_connections -1',
    ...settings,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'connection_messages false',
  ];
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  return [MOSQUITTO!, '-c', conf];
}

// ---------------------------------------------------------------------------------------------
// Broker processes

/** The shell command that raises the open-file limit to `n`, or as far as the hard limit allows. */
export const raiseFdLimit = (n: number): string => `ulimit -n ${n} 2>/dev/null || ulimit -n "$(ulimit -Hn)"`;

/**
 * Runs a command (with the fd limit raised first, when one is given), prints its pid, and
 * kills it when our end of its stdin closes (that is, when this process dies, however it dies).
 */
const wrapper = (fdLimit: number | undefined): string => `
${fdLimit === undefined ? '' : raiseFdLimit(fdLimit)}
exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
echo "pid $pid"
( while read -r -u 3 _; do :; done; kill -KILL "$pid" 2>/dev/null ) &
watcher=$!
wait "$pid"
rc=$?
kill "$watcher" 2>/dev/null
exit $rc
`;

/**
 * A broker process, run through the wrapper so that it dies with the benchmark. Subclasses
 * decide the command line and when it is ready; `spawn` may be called again once it exited,
 * to restart it.
 */
export class BrokerProcess {
  pid = 0;
  port = 0;
  /** Set when the broker exited (or could not be spawned): how. */
  exited: string | undefined;
  /** Resolves when the broker last spawned exits. */
  protected ended: Promise<void> = Promise.resolve();
  private wrapper: ChildProcess | undefined;
  private output = '';

  /** `label` names the broker in messages. */
  constructor(readonly label: string) {}

  /** The last lines the broker printed, for error messages. */
  tail(): string {
    return this.output.trim().split('\n').slice(-8).join('\n').trim();
  }

  private collect(text: string): void {
    this.output = (this.output + text).slice(-4000);
  }

  /** Why the broker is not running, with what it printed last. */
  protected failure(): Error {
    return new Error(`${this.label} ${this.exited ?? 'not running'}: ${this.tail() || '(no output)'}`);
  }

  /**
   * Starts `argv` (with the fd limit raised to `fdLimit`, if given); resolves once its pid is
   * known. `onLine` sees every line it prints on stdout.
   */
  protected async spawn(
    argv: string[],
    options: { fdLimit?: number; onLine?: (line: string) => void } = {},
  ): Promise<void> {
    const { fdLimit, onLine } = options;
    this.exited = undefined;
    this.pid = 0;
    const w = spawn('bash', ['-c', wrapper(fdLimit), 'bench-broker', ...argv], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.wrapper = w;
    children.add(w);
    w.stderr!.on('data', (c: Buffer) => this.collect(c.toString('utf8')));
    let head = '';
    let partial = '';
    const gotPid = new Promise<void>((resolve, reject) => {
      w.stdout!.on('data', (c: Buffer) => {
        let text = c.toString('utf8');
        if (this.pid === 0) {
          head += text;
          const m = /^pid (\d+)\n/.exec(head);
          if (m === null) return;
          this.pid = Number(m[1]);
          brokerPids.add(this.pid);
          resolve();
          text = head.slice(m[0].length);
        }
        this.collect(text);
        if (onLine === undefined) return;
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) onLine(line);
      });
      w.once('exit', () => reject(new Error('wrapper exited before starting the broker')));
    });
    this.ended = new Promise<void>((r) => {
      w.once('exit', (code, signal) => {
        this.exited = `exited (${signal ?? `code ${code}`})`;
        children.delete(w);
        brokerPids.delete(this.pid);
        r();
      });
    });
    w.on('error', (err) => {
      this.exited = `spawn failed: ${err.message}`;
    });
    await withTimeout(gotPid, 5000, `${this.label}: starting`);
  }

  /** Resolves once `port` accepts a connection, polling every `pollMs`; fails if the broker exits or after `timeoutMs`. */
  protected async listening(timeoutMs: number, pollMs: number): Promise<void> {
    const t0 = performance.now();
    for (;;) {
      if (this.exited !== undefined) throw this.failure();
      if (await probe(this.port)) return;
      if (performance.now() - t0 > timeoutMs) {
        throw new Error(
          `${this.label} not listening on ${this.port} after ${(timeoutMs / 1000).toFixed(0)} s: ${this.tail() || '(no output)'}`,
        );
      }
      await sleep(pollMs);
    }
  }

  alive(): void {
    if (this.exited !== undefined || this.pid === 0) throw this.failure();
  }

  /** CPU seconds the broker has used. */
  cpu(): number {
    this.alive();
    return procCpu(this.pid);
  }

  memory(): { rss: number; peak: number } {
    this.alive();
    return procMemory(this.pid);
  }

  /**
   * Sends `signal` and waits up to `waitMs` for the broker to exit: the milliseconds that took
   * (0 when it was not running), or undefined when it had not exited by then and was killed.
   */
  async exitOn(signal: NodeJS.Signals, waitMs: number): Promise<number | undefined> {
    const w = this.wrapper;
    if (w === undefined || this.exited !== undefined) return 0;
    const t0 = performance.now();
    // Never process.kill(0): that would signal our own process group.
    const send = (sig: NodeJS.Signals): void => {
      try {
        if (this.pid > 0) process.kill(this.pid, sig);
        else w.kill(sig);
      } catch {}
    };
    send(signal);
    const ok = await Promise.race([this.ended.then(() => true), sleep(waitMs).then(() => false)]);
    if (ok) return performance.now() - t0;
    send('SIGKILL');
    w.stdin?.destroy();
    await Promise.race([this.ended, sleep(3000)]);
    w.kill('SIGKILL');
    return undefined;
  }

  /** Stops it for good: SIGTERM (so that a profiling flag can write its profile), SIGKILL after `waitMs`. */
  async shutdown(waitMs: number): Promise<void> {
    await this.exitOn('SIGTERM', waitMs);
    this.wrapper?.stdin?.destroy();
  }
}
