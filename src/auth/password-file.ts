import { createHmac, randomBytes } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { type PasswordHash, PasswordHashError, parsePasswordHash, verifyPassword } from './password-hash.js';
import { parseScramCredential, type ScramCredential } from './scram-credential.js';
import type { AuthProvider, Credentials, ProviderDecision } from './types.js';

/**
 * The password file: `username:HASH[:SCRAM]` per line, `#` comments and blank lines allowed.
 * HASH is what `cicada passwd` writes (scrypt) or Mosquitto's `$7$`; SCRAM is an optional
 * SCRAM-SHA-256 verifier for MQTT 5 enhanced authentication.
 */

/** How long a verified login is remembered, and how many are. */
const VERIFIED_CACHE_MS = 10 * 60_000;
const VERIFIED_CACHE_SIZE = 10_000;

/** One user of the file. */
export interface PasswordEntry {
  readonly username: string;
  readonly hash: PasswordHash;
  readonly scram?: ScramCredential;
}

/** The file cannot be used; the message names `file:line` and never contains a hash. */
export class PasswordFileError extends Error {
  override readonly name = 'PasswordFileError';
}

/** Parses a password file's text; `file` only names it in error messages. */
export function parsePasswordFile(text: string, file: string): Map<string, PasswordEntry> {
  const users = new Map<string, PasswordEntry & { line: number }>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    const content = raw.trim();
    if (content === '' || content.startsWith('#')) continue;
    const at = `${file}:${line}`;
    const fields = content.split(':');
    if (fields.length < 2 || fields.length > 3) {
      throw new PasswordFileError(`${at}: expected username:hash or username:hash:scram-verifier`);
    }
    const [username, hashText, scramText] = fields as [string, string, string | undefined];
    if (username === '') throw new PasswordFileError(`${at}: the username is empty`);
    const earlier = users.get(username);
    if (earlier !== undefined) {
      throw new PasswordFileError(`${at}: user '${username}' is already defined on line ${earlier.line}`);
    }
    let hash: PasswordHash;
    try {
      hash = parsePasswordHash(hashText);
    } catch (error) {
      if (error instanceof PasswordHashError) {
        throw new PasswordFileError(`${at}: user '${username}': ${error.message}`);
      }
      throw error;
    }
    let scram: ScramCredential | undefined;
    if (scramText !== undefined) {
      scram = parseScramCredential(scramText);
      if (scram === undefined) {
        throw new PasswordFileError(
          `${at}: user '${username}': the third field is not a SCRAM-SHA-256 verifier ($scram-sha-256$...)`,
        );
      }
    }
    users.set(username, { username, hash, line, ...(scram === undefined ? {} : { scram }) });
  }
  return new Map([...users].map(([name, { line: _, ...entry }]) => [name, entry]));
}

/** Reads and parses `file`; errors name the file (a missing file included). */
export async function loadPasswordFile(file: string): Promise<Map<string, PasswordEntry>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PasswordFileError(`${file}: cannot read the password file (${code ?? String(error)})`);
  }
  return parsePasswordFile(text, file);
}

export interface PasswordFileOptions {
  /** The password file's path. */
  readonly file: string;
  /** Reload when the file changes. Default true. */
  readonly watch?: boolean;
  /** Quiet time after the last change event before reloading, in ms (editors write in steps). Default 100. */
  readonly debounceMs?: number;
  /** An automatic reload failed (the old contents stay in force) or the watcher broke. */
  onError?(error: Error): void;
  /** The file was reloaded successfully (automatically or by `reload()`). */
  onReload?(users: number): void;
}

/**
 * Checks CONNECT username and password against a password file. Users it does not list are
 * left to the next provider; the file is reloaded on change and a broken new version is
 * reported and ignored, so a typo never locks everyone out.
 */
export class PasswordFileProvider implements AuthProvider {
  readonly name = 'password-file';
  private users: Map<string, PasswordEntry>;
  private watcher: FSWatcher | undefined;
  /**
   * Recently verified logins, so that a reconnect storm of honest clients (a network blip)
   * does not queue hundreds of slow hashes. Keyed by an HMAC under a per-process key: the
   * passwords themselves are never kept. A reload makes new entries, which invalidates these.
   */
  private readonly verified = new Map<string, { entry: PasswordEntry; expires: number }>();
  private readonly cacheKey = randomBytes(32);
  private debounce: NodeJS.Timeout | undefined;
  /** Reloads run one after another, so an older read never replaces a newer one. */
  private reloading: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: PasswordFileOptions,
    users: Map<string, PasswordEntry>,
  ) {
    this.users = users;
  }

  /** Loads the file (a missing or broken file is an error) and starts watching it. */
  static async open(options: PasswordFileOptions): Promise<PasswordFileProvider> {
    const provider = new PasswordFileProvider(options, await loadPasswordFile(options.file));
    if (options.watch ?? true) provider.startWatching();
    return provider;
  }

  /** How many users the file defines. */
  get size(): number {
    return this.users.size;
  }

  async check(credentials: Credentials): Promise<ProviderDecision> {
    const { username, password } = credentials;
    if (username === undefined) return { decision: 'abstain' };
    const entry = this.users.get(username);
    if (entry === undefined) return { decision: 'abstain' };
    if (password === undefined) {
      return { decision: 'deny', refusal: 'bad-credentials', reason: 'no password given' };
    }
    // Only successes are remembered: every wrong guess still pays the full hash.
    const key = createHmac('sha256', this.cacheKey)
      .update(username)
      .update('\0')
      .update(password)
      .digest('base64');
    const remembered = this.verified.get(key);
    const now = Date.now();
    if (remembered === undefined || remembered.entry !== entry || remembered.expires < now) {
      if (!(await verifyPassword(password, entry.hash))) {
        return { decision: 'deny', refusal: 'bad-credentials', reason: 'wrong password' };
      }
      this.verified.delete(key);
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, { entry, expires: now + VERIFIED_CACHE_MS });
    }
    return { decision: 'allow', identity: { provider: this.name, username } };
  }

  /** The user's SCRAM-SHA-256 verifier, for MQTT 5 enhanced authentication. */
  scramCredential(username: string): ScramCredential | undefined {
    return this.users.get(username)?.scram;
  }

  /** Re-reads the file; on failure the old contents stay and the error is thrown. */
  reload(): Promise<void> {
    const next = this.reloading.then(async () => {
      this.users = await loadPasswordFile(this.options.file);
      this.options.onReload?.(this.users.size);
    });
    this.reloading = next.catch(() => {});
    return next;
  }

  close(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private startWatching(): void {
    // The directory, not the file: an atomic replace (write a temp file, rename it over the
    // old one) swaps the inode a file watch would be attached to.
    const name = basename(this.options.file);
    const watcher = watch(dirname(this.options.file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reloadQuietly(), this.options.debounceMs ?? 100);
      this.debounce.unref();
    });
    watcher.on('error', (error) => this.options.onError?.(error));
    this.watcher = watcher;
  }

  private reloadQuietly(): void {
    this.reload().catch((error: unknown) => {
      this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
    });
  }
}
