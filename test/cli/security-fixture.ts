import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { runProgram, tempDir } from '../auth/support.js';
import {
  CICADA_MAIN,
  type CicadaProcess,
  killCicadas,
  type LogLine,
  startCicada,
} from '../helpers/cicada-process.js';
import { connackOf, mqttConnect } from '../helpers/mqtt-client.js';

/**
 * What the security tests of the `cicada` command share: a temporary directory per file,
 * `cicada passwd`, a broker process started until ready and stopped cleanly, its log lines by
 * message, and JSON config files.
 */

/** The listener most tests use: plain MQTT on a free loopback port. */
export const LOCAL = 'mqtt://127.0.0.1:0';

/** The start-up warning when nobody could log in. */
export const NO_WAY_IN = 'no way to log in: anonymous access is off and no credentials are configured';

/** A temporary directory for this test file (made before its tests, removed after); kills leftover brokers. */
export function fileDir(prefix: string): () => string {
  let dir = '';
  let remove = async (): Promise<void> => {};
  before(async () => {
    ({ dir, remove } = await tempDir(prefix));
  });
  after(async () => {
    killCicadas();
    await remove();
  });
  return () => dir;
}

/** `cicada passwd [flags] FILE USER` with the password on stdin; fails unless it exits 0. */
export async function passwd(
  file: string,
  user: string,
  password: string,
  flags: string[] = [],
): Promise<void> {
  const result = await runProgram(process.execPath, [CICADA_MAIN, 'passwd', ...flags, file, user], {
    input: `${password}\n`,
  });
  assert.equal(result.code, 0, `cicada passwd ${user}: ${result.stderr}`);
}

/** `cicada --memory ARGS` in `cwd`, once it has logged `ready`. */
export async function startReady(args: readonly string[], cwd: string): Promise<CicadaProcess> {
  const cicada = startCicada(['--memory', ...args], cwd);
  await cicada.waitFor((line) => line['msg'] === 'ready', 'the ready line');
  return cicada;
}

/** SIGTERM, then checks the process stopped cleanly (exit 0); its output is complete afterwards. */
export async function stop(cicada: CicadaProcess): Promise<void> {
  cicada.child.kill('SIGTERM');
  const { code } = await cicada.exited;
  assert.equal(code, 0, `cicada did not stop cleanly; stderr: ${cicada.stderr()}`);
}

/** The log lines so far whose `msg` is `msg`. */
export function logged(cicada: CicadaProcess, msg: string): LogLine[] {
  return cicada.lines.filter((line) => line['msg'] === msg);
}

/** Waits for the `authentication failed` line of `clientId`. */
export function failureOf(cicada: CicadaProcess, clientId: string): Promise<LogLine> {
  return cicada.waitFor(
    (line) => line['msg'] === 'authentication failed' && line['clientId'] === clientId,
    `the authentication failed line of ${clientId}`,
  );
}

/**
 * Sends SIGHUP and waits for the `reloaded` line that follows it; returns the lines from the
 * `reloading` line naming the signal to `reloaded` (others, e.g. a client leaving, may interleave).
 */
export async function sighup(cicada: CicadaProcess): Promise<LogLine[]> {
  const from = cicada.lines.length;
  cicada.child.kill('SIGHUP');
  await cicada.waitFor((line) => line['msg'] === 'reloaded', 'the reloaded line', from);
  const lines = cicada.lines.slice(from);
  const start = lines.findIndex((line) => line['msg'] === 'reloading' && line['signal'] === 'SIGHUP');
  const end = lines.findIndex((line) => line['msg'] === 'reloaded');
  assert.ok(start >= 0 && start < end, `reloading, then reloaded: ${JSON.stringify(lines)}`);
  return lines.slice(start, end + 1);
}

/** The `reload failed` lines among `lines`. */
export function reloadFailures(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((line) => line['msg'] === 'reload failed');
}

/** Writes `value` as a JSON config file (the loader reads YAML, of which JSON is a part). */
export async function writeConfig(path: string, value: unknown): Promise<string> {
  await writeFile(path, JSON.stringify(value, null, 2));
  return path;
}

/** The CONNACK code of a client MQTT.js could not connect (the reason code in 5.0, return code in 3.1.1). */
export async function refusal(client: MqttClient): Promise<number> {
  const error = await connackOf(client).then(
    () => assert.fail('the broker accepted the connection'),
    (e: unknown) => e as { code?: number },
  );
  assert.equal(typeof error.code, 'number', `a CONNACK refusal, not ${String(error)}`);
  return error.code!;
}

/** MQTT.js options for `username`/`password` at `version`, no reconnects (see `mqttConnect`). */
export function login(
  clientId: string,
  username: string | undefined,
  password: string | undefined,
  version: 4 | 5 = 5,
): IClientOptions {
  return {
    protocolVersion: version,
    clientId,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}

/** Resolves once `attempt` succeeds; each failure tries again (a safety net of 100 tries). */
export async function eventually(attempt: () => Promise<boolean>, what: string): Promise<void> {
  for (let tries = 0; tries < 100; tries++) if (await attempt()) return;
  assert.fail(`never: ${what}`);
}

/** Whether MQTT.js gets in with `options`; the client is closed either way. */
export async function admits(url: string, options: IClientOptions): Promise<boolean> {
  const client = mqttConnect(url, options);
  const admitted = await connackOf(client).then(
    () => true,
    () => false,
  );
  await client.endAsync(true);
  return admitted;
}
