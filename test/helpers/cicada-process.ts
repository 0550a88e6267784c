import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * The `cicada` command as a child process, for the CLI tests: the built `main.js` run by this
 * Node, its JSON log lines from stdout collected as they come, and waits for lines or its end.
 */

/** dist/test/helpers/ -> dist/src/cli/main.js */
export const CICADA_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Only a safety net against a hung child: every wait is for an event, not a time. */
export const SAFETY_MS = 30_000;

/** One stdout line, parsed; a line that is not JSON is `{ notJson: text }`. */
export type LogLine = Record<string, unknown>;

/** A running (or finished) `cicada` process. */
export interface CicadaProcess {
  readonly child: ChildProcess;
  /** Every stdout line so far, parsed. */
  readonly lines: LogLine[];
  /** stdout so far, as written. */
  stdout(): string;
  stderr(): string;
  /**
   * The first line from index `from` on that matches, now or later; rejects if the process
   * exits first (or after `SAFETY_MS`), quoting its output.
   */
  waitFor(predicate: (line: LogLine) => boolean, what: string, from?: number): Promise<LogLine>;
  /** The port of the `listening` line for `url` (the `nth` of them when several share a URL). */
  port(url: string, nth?: number): Promise<number>;
  /** Resolves once the process has ended and its output is complete. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

/** Kills every cicada still running (for an `after` hook: a failed test must not leave one behind). */
export function killCicadas(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** Starts `cicada ARGS` in `cwd` (the durable store's default ./data lands there). */
export function startCicada(args: readonly string[], cwd: string): CicadaProcess {
  const child = spawn(process.execPath, [CICADA_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  running.add(child);
  const lines: LogLine[] = [];
  const texts: string[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { notJson: text };
    }
    texts.push(text);
    lines.push(line);
    for (const wake of waiters) wake();
  });
  // 'close' comes after stdout and stderr have ended, so the output is complete by then.
  let closed = false;
  const exited = once(child, 'close').then(([code, signal]) => {
    closed = true;
    running.delete(child);
    for (const wake of waiters) wake();
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  const output = (): string => `stdout: ${texts.join('\n')}\nstderr: ${stderr}`;
  const waitFor = (predicate: (line: LogLine) => boolean, what: string, from = 0): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = lines.slice(from).find(predicate);
        if (found === undefined && !closed) return;
        waiters.delete(check);
        clearTimeout(timer);
        if (found !== undefined) resolve(found);
        else reject(new Error(`cicada exited before logging ${what}\n${output()}`));
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${what} after ${SAFETY_MS} ms\n${output()}`));
      }, SAFETY_MS);
      waiters.add(check);
      check();
    });
  const port = async (url: string, nth = 0): Promise<number> => {
    const isListening = (line: LogLine): boolean => line['msg'] === 'listening' && line['url'] === url;
    await waitFor(() => lines.filter(isListening).length > nth, `listening line ${nth} for ${url}`);
    const value = lines.filter(isListening)[nth]?.['port'];
    if (typeof value !== 'number') throw new Error(`no port in the listening line for ${url}\n${output()}`);
    return value;
  };
  return {
    child,
    lines,
    stdout: () => texts.join('\n'),
    stderr: () => stderr,
    waitFor,
    port,
    exited,
  };
}

/** How a cicada run that ends by itself ended. */
export interface CicadaRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs cicada to its end (it must end by itself, e.g. a start-up failure or --help). */
export async function runCicada(args: readonly string[], cwd: string): Promise<CicadaRun> {
  const cicada = startCicada(args, cwd);
  const { code } = await cicada.exited;
  return { code, stdout: cicada.stdout(), stderr: cicada.stderr() };
}
