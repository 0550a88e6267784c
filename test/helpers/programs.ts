import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Running the third-party programs the tests drive (mosquitto_pub, openssl, the CLI...). */

/** The path of an executable on PATH (or /usr/bin), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin'];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  return undefined;
}

/** The path of an executable; fails (never skips) naming the Debian package when it is missing. */
export function requireBinary(name: string, debianPackage: string): string {
  const path = findBinary(name);
  if (path !== undefined) return path;
  throw new Error(
    `${name} not found on PATH: install the Debian package '${debianPackage}' (apt-get install -y ${debianPackage})`,
  );
}

/** How a program ended. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. Default: nothing. */
  input?: string;
  /** A safety net, not a threshold: past it the program is killed and the run rejects. Default 20 s. */
  timeoutMs?: number;
  /** Holds the child while it runs, so an `after` hook can kill what is left. */
  track?: Set<ChildProcess>;
}

/** Runs a program to its end and resolves with what it printed. */
export function runProgram(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const { input = '', timeoutMs = 20_000, track } = options;
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track?.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${command} ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      track?.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      track?.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin!.on('error', () => {}); // the program may exit before reading everything
    child.stdin!.end(input);
  });
}
