import type { CicadaConfig } from './schema.js';

/**
 * What changed between two configurations, and which changes a running broker can take
 * without a restart (on SIGHUP).
 */

/** One setting whose value differs. */
export interface ConfigChange {
  /** Dotted key path: `mqtt.maxTopicLength`, `listeners[0].url`. */
  readonly key: string;
  readonly before: unknown;
  readonly after: unknown;
}

/**
 * Settings applied live. They are read when they are used (the log level at each line, the
 * shutdown timeout at shutdown, connection caps at each admission) or when a connection is
 * set up: `mqtt.*` changes apply to connections made after the reload, while connections
 * already open keep the values their CONNACK announced. `mqtt.maxPacketSize` also sizes the
 * WebSocket transport's frame limit, fixed at start: it needs a restart. The memory watch and
 * per-address rate buckets are set up once, so the other `limits.*` need one too.
 */
const LIVE_KEYS: readonly string[] = [
  'logLevel',
  'shutdownTimeout',
  'limits.maxConnections',
  'limits.maxConnectionsPerAddress',
];
const LIVE_SECTIONS: readonly string[] = ['mqtt.'];
const RESTART_KEYS: readonly string[] = ['mqtt.maxPacketSize'];

/** Whether a change of `key` is applied without a restart. */
export function isLiveSetting(key: string): boolean {
  if (RESTART_KEYS.includes(key)) return false;
  return LIVE_KEYS.includes(key) || LIVE_SECTIONS.some((prefix) => key.startsWith(prefix));
}

/** Every leaf setting that differs, in key order of `before` (keys only one side has included). */
export function diffConfig(before: Readonly<CicadaConfig>, after: Readonly<CicadaConfig>): ConfigChange[] {
  const changes: ConfigChange[] = [];
  diffValues(before, after, '', changes);
  return changes;
}

function diffValues(before: unknown, after: unknown, key: string, out: ConfigChange[]): void {
  // A section on one side only (a listener added or removed) is compared with an empty one,
  // so that each of its settings is named, and a secret among them hidden.
  if ((isRecord(before) || before === undefined) && (isRecord(after) || after === undefined)) {
    const old = before ?? {};
    const now = after ?? {};
    const names = new Set([...Object.keys(old), ...Object.keys(now)]);
    for (const name of names) diffValues(old[name], now[name], key === '' ? name : `${key}.${name}`, out);
    return;
  }
  // Lists of sections are compared item by item, so a changed listener is named precisely.
  if (Array.isArray(before) && Array.isArray(after) && [...before, ...after].some(isRecord)) {
    const length = Math.max(before.length, after.length);
    for (let index = 0; index < length; index++)
      diffValues(before[index], after[index], `${key}[${index}]`, out);
    return;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push({ key, before, after });
}

/**
 * Settings whose values are never shown, only that they changed: passphrases, passwords,
 * secrets and tokens themselves (a setting naming the file that holds one is a path, and shown).
 */
export function isSecretKey(key: string): boolean {
  const name = key.slice(key.lastIndexOf('.') + 1);
  // Case-blind: environment variable names (`CICADA_HTTP_ADMIN_TOKEN`) are keys too.
  return /pass(word|phrase)|secret|token/i.test(name) && !/file$/i.test(name);
}

/** A change for the log: `mqtt.maxTopicLength: 4096 → 20`, or `tls.passphrase: (changed)`. */
export function describeChange(change: ConfigChange): string {
  if (isSecretKey(change.key)) return `${change.key}: (changed)`;
  return `${change.key}: ${showValue(change.before)} → ${showValue(change.after)}`;
}

function showValue(value: unknown): string {
  if (value === undefined) return '(unset)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
