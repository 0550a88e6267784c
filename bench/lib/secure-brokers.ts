/**
 * Brokers over TLS and WebSocket, and with password checks, for bench/transports.ts:
 * certificates (the test helper's CA and server certificate, made with openssl), password
 * files (`cicada passwd` and `mosquitto_passwd`), each broker's command line for a scheme,
 * and a check that a broker really verifies passwords.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCerts } from '../../test/helpers/certs.js';
import { withTimeout } from './async.js';
import {
  AEDES_SERVER,
  type BrokerName,
  BrokerProcess,
  CICADA_MAIN,
  cicadaCommand,
  cicadaConfig,
  freePort,
  HOST,
  makeTempDir,
  mosquittoCommand,
  removeTempDir,
} from './brokers.js';
import { type ClientTransport, type Credentials, RawConnection } from './raw-mqtt.js';

/** How clients reach a broker. */
export type Scheme = 'tcp' | 'tls' | 'ws' | 'wss';
export const SCHEMES: readonly Scheme[] = ['tcp', 'tls', 'ws', 'wss'];

/** What the brokers are given: certificate files, and password files in each format. */
export interface Security {
  cert: string;
  key: string;
  /** The CA certificate (PEM) clients verify the server's with. */
  caPem: string;
  credentials: Credentials;
  /** Made by `cicada passwd` (scrypt), or undefined when that failed. */
  cicadaPasswords: string | undefined;
  /** Made by `mosquitto_passwd` (PBKDF2-SHA512), or undefined without it. */
  mosquittoPasswords: string | undefined;
}

/** Which password file a broker checks CONNECT against, if any. */
export type PasswordKind = 'none' | 'scrypt' | 'pbkdf2';

const MOSQUITTO_PASSWD = ['/usr/bin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd'].find(existsSync);

/**
 * Certificates and password files in a temporary directory; `notes` collects why a password
 * file could not be made (its runs are then skipped).
 */
export async function makeSecurity(notes: string[]): Promise<Security> {
  const certs = await testCerts();
  // Mosquitto started as root reads its files as user `mosquitto`: copies it may read.
  const dir = makeTempDir(tmpdir(), 'cicada-bench-secrets-');
  chmodSync(dir, 0o755);
  const readable = (file: string): string => {
    chmodSync(file, 0o644);
    return file;
  };
  const copy = (from: string, name: string): string => {
    copyFileSync(from, join(dir, name));
    return readable(join(dir, name));
  };
  const credentials = { username: 'bench', password: 'bench-password-1' };
  const { username, password } = credentials;
  let cicadaPasswords: string | undefined = join(dir, 'cicada.passwd');
  try {
    execFileSync(process.execPath, [CICADA_MAIN, 'passwd', '-c', cicadaPasswords, username], {
      input: `${password}\n`,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
  } catch (err) {
    const why = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim();
    notes.push(`\`cicada passwd\` failed (${why.split('\n')[0]}): Cicada password runs skipped`);
    cicadaPasswords = undefined;
  }
  let mosquittoPasswords: string | undefined;
  if (MOSQUITTO_PASSWD === undefined) {
    notes.push('mosquitto_passwd not found (apt-get install mosquitto): PBKDF2 password runs skipped');
  } else {
    mosquittoPasswords = join(dir, 'mosquitto.passwd');
    execFileSync(MOSQUITTO_PASSWD, ['-c', '-b', mosquittoPasswords, username, password]);
    readable(mosquittoPasswords);
  }
  return {
    cert: copy(certs.server.cert, 'server.pem'),
    key: copy(certs.server.key, 'server.key'),
    caPem: certs.ca.certPem,
    credentials,
    cicadaPasswords,
    mosquittoPasswords,
  };
}

/** What clients of a broker over `scheme` need: the CA to verify it by, the WebSocket path. */
export function clientTransport(scheme: Scheme, security: Security): ClientTransport {
  return { scheme, ca: scheme === 'tls' || scheme === 'wss' ? security.caPem : undefined, path: '/mqtt' };
}

const secure = (scheme: Scheme): boolean => scheme === 'tls' || scheme === 'wss';

/** One broker for one measurement, listening over one scheme on a fresh port. */
export class SecureBroker extends BrokerProcess {
  private dir = '';

  constructor(
    readonly name: BrokerName,
    readonly scheme: Scheme,
    readonly passwords: PasswordKind,
    private readonly security: Security,
  ) {
    super(`${name} ${scheme}${passwords === 'none' ? '' : `+${passwords}`}`);
  }

  /** Starts it with at most `fdLimit` open files; resolves once its port accepts connections. */
  async start(fdLimit: number): Promise<void> {
    this.port = await freePort();
    this.dir = makeTempDir(tmpdir(), `cicada-bench-${this.name}-`);
    await this.spawn(await this.command(), { fdLimit });
    await this.listening(15_000, 50);
  }

  async stop(): Promise<void> {
    await this.shutdown(2000);
    removeTempDir(this.dir);
  }

  private passwordFile(): string | undefined {
    const { passwords, security } = this;
    if (passwords === 'none') return undefined;
    const file = passwords === 'scrypt' ? security.cicadaPasswords : security.mosquittoPasswords;
    if (file === undefined) throw new Error(`no ${passwords} password file`);
    return file;
  }

  private async command(): Promise<string[]> {
    const { cert, key } = this.security;
    const file = this.passwordFile();
    const { scheme, port } = this;
    switch (this.name) {
      case 'cicada': {
        // The limits bench/load.ts gives Cicada and Mosquitto, so that the figures compare;
        // and 60 s for CONNECT to CONNACK, as 64 logins queued behind scrypt on a small
        // machine outlast the default 10 s (Mosquitto has no such timeout).
        const config = cicadaConfig(this.dir, {
          broker: { maxQueuedMessages: 100_000 },
          mqtt: { maxInflightMessages: 1024, connectTimeout: 60_000 },
        });
        const args = ['--memory', '--log-level', 'warn', '--config', config];
        if (secure(scheme)) args.push('--tls-cert', cert, '--tls-key', key);
        if (file !== undefined) args.push('--password-file', file);
        if (scheme === 'tcp') return cicadaCommand(port, args);
        // cicadaCommand always adds a plain listener: on another port, left idle.
        const url = `${scheme === 'tls' ? 'mqtts' : scheme}://${HOST}:${port}${scheme === 'tls' ? '' : '/mqtt'}`;
        return cicadaCommand(await freePort(), ['--listen', url, ...args]);
      }
      case 'aedes': {
        if (file !== undefined) throw new Error('aedes: no password file support in bench/aedes-server.ts');
        const tls = secure(scheme) ? ['--cert', cert, '--key', key] : [];
        return [
          process.execPath,
          AEDES_SERVER,
          '--port',
          String(port),
          '--host',
          HOST,
          '--transport',
          scheme,
          ...tls,
        ];
      }
      case 'mosquitto': {
        const settings = ['persistence false'];
        if (secure(scheme)) settings.push(`certfile ${cert}`, `keyfile ${key}`);
        if (scheme === 'ws' || scheme === 'wss') settings.push('protocol websockets');
        if (file !== undefined) settings.push(`password_file ${file}`);
        return mosquittoCommand(this.dir, port, { inflight: 1024, queued: 100_000 }, settings);
      }
    }
  }
}

/** Whether `name` starts and accepts connections over `scheme`; the error when it does not. */
export async function startsOver(
  name: BrokerName,
  scheme: Scheme,
  security: Security,
  fdLimit: number,
): Promise<string | undefined> {
  const b = new SecureBroker(name, scheme, 'none', security);
  try {
    await b.start(fdLimit);
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n').join(' | ');
  } finally {
    await b.stop();
  }
}

/** A connection for one handshake: it expects no PUBLISH and no acknowledgement. */
class Probe extends RawConnection {
  protected publishFrame(): void {}
  protected ackFrame(): void {}
}

/**
 * Throws unless `b` refuses a CONNECT with a wrong password for the benchmark's user: the
 * evidence that its password runs measured a password check.
 */
export async function assertRefusesWrongPassword(b: SecureBroker, security: Security): Promise<void> {
  const owner = { conns: new Set<RawConnection>(), error: () => {} };
  const probe = new Probe(HOST, b.port, owner, clientTransport(b.scheme, security));
  const wrong = { username: security.credentials.username, password: 'not-the-password' };
  try {
    await withTimeout(probe.handshake(`bench-wrong-${b.port}`, true, 60, wrong), 15_000, 'wrong password');
  } catch (err) {
    // MQTT 3.1.1 CONNACK 4 (bad user name or password) or 5 (not authorized), or a close.
    if (/return code [45]|closed/.test((err as Error).message)) return;
    throw err;
  } finally {
    probe.closing = true;
    probe.socket.destroy();
  }
  throw new Error(`${b.label} accepted a wrong password: its password file is not in use`);
}
