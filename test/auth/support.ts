import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { AuthProvider, Credentials } from '../../src/auth/types.js';
import type { AuthenticationResult, BrokerHooks, ClientInfo } from '../../src/broker/hooks.js';

/**
 * What the auth provider tests share: temporary directories, credentials as a broker would
 * pass them, the smallest `authenticate` hook built from one provider, and running programs.
 */

/** A fresh temporary directory; `remove` deletes it. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `cicada-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Credentials as the broker hands them to a provider. */
export function credentials(
  username: string | undefined,
  password: string | Buffer | undefined,
  overrides: Partial<ClientInfo> & { clientId?: string } = {},
): Credentials {
  const clientId = overrides.clientId ?? 'client-1';
  const client: ClientInfo = {
    clientId,
    protocol: 'mqtt',
    protocolVersion: 5,
    remoteAddress: '127.0.0.1',
    listener: 'mqtt://127.0.0.1:1883',
    keepAlive: 60,
    connectedAt: 0,
    ...overrides,
    ...(username === undefined ? {} : { username }),
  };
  return {
    clientId,
    client,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined
      ? {}
      : { password: typeof password === 'string' ? Buffer.from(password) : password }),
  };
}

/** The smallest `authenticate` hook over one provider: allow admits, deny refuses, abstain refuses as bad credentials. */
export function hooksFrom(provider: AuthProvider): BrokerHooks {
  return {
    async authenticate(request): Promise<AuthenticationResult> {
      const decision = await provider.check(request);
      if (decision.decision === 'allow') return true;
      if (decision.decision === 'deny') return { refuse: decision.refusal };
      return false;
    },
  };
}

/** The path of an executable on PATH (or /usr/bin); fails naming the Debian package when missing. */
export function requireBinary(name: string, debianPackage: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin'];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  throw new Error(
    `${name} not found on PATH: install the Debian package '${debianPackage}' (apt-get install -y ${debianPackage})`,
  );
}

/** How a program ended. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end, writing `input` to its stdin; a safety-net timeout kills it. */
export function runProgram(
  command: string,
  args: readonly string[],
  input = '',
  timeoutMs = 20_000,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
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
      reject(new Error(`${command} ${args.join(' ')} did not finish\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.on('error', () => {}); // the program may exit before reading everything
    child.stdin!.end(input);
  });
}
