/**
 * The runs of bench/transports.ts: which broker, scheme and password file each one uses,
 * which of them can run here, and running one with a fresh broker and load generator.
 */
import type { RunOptions } from './args.js';
import { type BrokerName, HOST } from './brokers.js';
import {
  clientPrefix,
  type FlowResult,
  type IdleResult,
  Loadgen,
  measureConnections,
  measureFlow,
} from './generator.js';
import {
  assertRefusesWrongPassword,
  clientTransport,
  type PasswordKind,
  SCHEMES,
  type Scheme,
  SecureBroker,
  type Security,
  startsOver,
} from './secure-brokers.js';

/** Open files the brokers and the generator may have. */
export const FD_LIMIT = 20000;

/** The options of bench/transports.ts. */
export interface TransportOptions extends RunOptions {
  brokers: BrokerName[];
  pairs: number;
  payload: number;
  window0: number;
  connections: number;
  passwordConnections: number;
  concurrency: number;
  drainMs: number;
}

/** The two measurements: QoS 0 pairs, and connection set-up. */
export type Scenario = 'pairs' | 'connect';

/** One run: a broker over a scheme, with or without a password file, in one scenario. */
export interface Case {
  scenario: Scenario;
  broker: BrokerName;
  scheme: Scheme;
  passwords: PasswordKind;
  /** `pairs/cicada/tls`, `connect/mosquitto/tcp+pbkdf2`. */
  name: string;
  /** The row label: the scheme, and the password hash if any. */
  variant: string;
}

/** The case of `broker` over `scheme` checking `passwords`, in `scenario`. */
export function makeCase(
  scenario: Scenario,
  broker: BrokerName,
  scheme: Scheme,
  passwords: PasswordKind,
): Case {
  const variant = passwords === 'none' ? scheme : `${scheme}+${passwords}`;
  return { scenario, broker, scheme, passwords, name: `${scenario}/${broker}/${variant}`, variant };
}

/** Every run the options ask for, before checking what can run here. */
export function allCases(o: TransportOptions): Case[] {
  const out: Case[] = [];
  for (const b of o.brokers) for (const s of SCHEMES) out.push(makeCase('pairs', b, s, 'none'));
  for (const b of o.brokers) {
    out.push(makeCase('connect', b, 'tcp', 'none'), makeCase('connect', b, 'tls', 'none'));
    if (b === 'cicada') {
      out.push(makeCase('connect', b, 'tcp', 'scrypt'), makeCase('connect', b, 'tls', 'scrypt'));
      out.push(makeCase('connect', b, 'tcp', 'pbkdf2'));
    }
    if (b === 'mosquitto')
      out.push(makeCase('connect', b, 'tcp', 'pbkdf2'), makeCase('connect', b, 'tls', 'pbkdf2'));
  }
  if (o.only.length === 0) return out;
  const picked = out.filter((c) => o.only.some((f) => c.name.includes(f)));
  // Each picked run's ratios need its broker's anonymous tcp run in the same scenario.
  const bases = new Set(picked.map((c) => makeCase(c.scenario, c.broker, 'tcp', 'none').name));
  return out.filter((c) => picked.includes(c) || bases.has(c.name));
}

/**
 * The cases that can run here: a broker that does not start over a scheme (Mosquitto built
 * without WebSockets, a Cicada transport not built yet) or lacks its password file is
 * dropped with a note.
 */
export async function runnableCases(cases: Case[], security: Security, notes: string[]): Promise<Case[]> {
  const works = new Map<string, string | undefined>();
  for (const c of cases) {
    const key = `${c.broker} ${c.scheme}`;
    if (c.scheme !== 'tcp' && !works.has(key))
      works.set(key, await startsOver(c.broker, c.scheme, security, FD_LIMIT));
  }
  for (const [key, why] of works)
    if (why !== undefined) notes.push(`${key} does not start (${why}): skipped`);
  const missing = (p: PasswordKind): boolean =>
    (p === 'scrypt' && security.cicadaPasswords === undefined) ||
    (p === 'pbkdf2' && security.mosquittoPasswords === undefined);
  return cases.filter((c) => works.get(`${c.broker} ${c.scheme}`) === undefined && !missing(c.passwords));
}

/** What a run gave: its measurement, or why it failed. */
export type Entry = FlowResult | IdleResult | { kind: 'error'; round: number; message: string };

/** Runs `c` once, with a fresh broker and a fresh load generator. */
export async function runCase(
  c: Case,
  o: TransportOptions,
  security: Security,
  round: number,
): Promise<FlowResult | IdleResult> {
  const b = new SecureBroker(c.broker, c.scheme, c.passwords, security);
  let g: Loadgen | undefined;
  try {
    g = new Loadgen(FD_LIMIT);
    await Promise.all([b.start(FD_LIMIT), g.started()]);
    const transport = clientTransport(c.scheme, security);
    const where = { host: HOST, port: b.port, transport };
    if (c.scenario === 'pairs') {
      const spec = {
        ...where,
        pattern: 'pairs' as const,
        publishers: o.pairs,
        subscribers: o.pairs,
        qos: 0 as const,
        payload: o.payload,
        rate: 0,
        window: 50,
        window0: o.window0,
        fullDecode: false,
        clientPrefix: clientPrefix(),
        drainMs: o.drainMs,
      };
      return await measureFlow(g, b, spec, o, round);
    }
    const secured = c.passwords !== 'none';
    const result = await measureConnections(
      g,
      b,
      {
        ...where,
        connections: secured ? o.passwordConnections : o.connections,
        concurrency: o.concurrency,
        clientPrefix: clientPrefix('c'),
        keepAlive: 600,
        credentials: secured ? security.credentials : undefined,
      },
      round,
    );
    // Afterwards: a refused login must not throttle the logins measured.
    if (secured) await assertRefusesWrongPassword(b, security);
    return result;
  } finally {
    await g?.close();
    await b.stop();
  }
}
