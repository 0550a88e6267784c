import { isUtf8 } from 'node:buffer';
import { createHmac, randomBytes } from 'node:crypto';
import type { CertificateInfo } from '../broker/hooks.js';
import { parseAclGrant } from './acl.js';
import type { AuthProvider, Credentials, Identity, ProviderDecision } from './types.js';

/**
 * Authentication delegated to an HTTP service.
 *
 * Request: `POST url` with `Content-Type: application/json` and the configured extra headers;
 * the body is an `HttpAuthRequest`.
 *
 * Answer contract:
 * - `200` with a JSON object `{"result": "allow" | "deny" | "ignore", "username"?: string,
 *   "acl"?: {"publish"?: string[], "subscribe"?: string[]}, "superuser"?: boolean}`:
 *   `allow` admits the client (as `username` if given, else its CONNECT username, with the
 *   `acl` grant replacing the ACL file's rules for it), `deny` refuses it as bad credentials,
 *   `ignore` leaves the decision to the next provider.
 * - `401` or `403`: refused as bad credentials.
 * - Any other status, a malformed 200 body, a redirect, a timeout or a network error: the
 *   service is unavailable, and `failClosed` decides (true: refused as server unavailable;
 *   false: the next provider decides).
 *
 * Answers are cached by a keyed hash of client id, username and password (the secret is never
 * kept in clear), allow and deny for separate times; the cache assumes the service's answer
 * does not depend on the client's address or listener.
 */

/** The JSON body posted to the hook. */
export interface HttpAuthRequest {
  readonly clientId: string;
  readonly username: string | null;
  /** UTF-8 text when the password is valid UTF-8, else base64 (`passwordEncoding` says which). */
  readonly password: string | null;
  readonly passwordEncoding: 'utf8' | 'base64' | null;
  readonly remoteAddress: string | null;
  readonly listener: string | null;
  /** e.g. `mqtt`. */
  readonly protocol: string;
  /** MQTT protocol level: 3, 4 or 5. */
  readonly protocolVersion: number;
  /** The client certificate on mutual-TLS listeners. */
  readonly certificate: CertificateInfo | null;
}

export interface HttpAuthOptions {
  /** The hook's URL (http or https). */
  readonly url: string;
  /** How long to wait for the whole answer, in ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Refuse clients while the hook is unavailable (true) or let the next provider decide (false). Default true. */
  readonly failClosed?: boolean;
  /** Extra request headers, e.g. `{ authorization: 'Bearer …' }` proving the broker to the hook. */
  readonly headers?: Readonly<Record<string, string>>;
  /** How long an `allow` is reused, in ms; 0 switches it off. Default 60000. */
  readonly allowCacheTtlMs?: number;
  /** How long a `deny` (or 401/403) is reused, in ms; 0 switches it off. Default 5000. */
  readonly denyCacheTtlMs?: number;
  /** Most answers kept; the oldest go first. Default 10000. */
  readonly cacheMaxEntries?: number;
  /** The hook was unavailable or answered outside the contract (for the log; never contains secrets). */
  onError?(error: Error): void;
  /** Milliseconds; for tests. Default `Date.now`. */
  readonly now?: () => number;
}

/** Answers larger than this are outside the contract (and not read further). */
const MAX_ANSWER_BYTES = 64 * 1024;

interface CachedDecision {
  readonly decision: ProviderDecision;
  readonly expires: number;
}

class HookUnavailable extends Error {}

/** A 200 body as a decision, or a reason why it is outside the contract. */
function decisionOf(body: unknown, credentials: Credentials): ProviderDecision | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return 'the answer is not a JSON object';
  const { result, username, acl, superuser } = body as Record<string, unknown>;
  if (result === 'ignore') return { decision: 'abstain' };
  if (result === 'deny')
    return { decision: 'deny', refusal: 'bad-credentials', reason: 'refused by the HTTP hook' };
  if (result !== 'allow') return 'the answer has no result "allow", "deny" or "ignore"';
  if (username !== undefined && typeof username !== 'string')
    return 'the answer\'s "username" is not a string';
  if (superuser !== undefined && typeof superuser !== 'boolean')
    return 'the answer\'s "superuser" is not a boolean';
  const grant = parseAclGrant(acl);
  if (grant === 'malformed') return 'the answer\'s "acl" is not {"publish": [...], "subscribe": [...]}';
  const name = username ?? credentials.username;
  const identity: Identity = {
    provider: 'http',
    ...(name === undefined ? {} : { username: name }),
    ...(grant === undefined ? {} : { acl: grant }),
    ...(superuser === true ? { superuser: true } : {}),
  };
  return { decision: 'allow', identity };
}

async function readLimited(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw new HookUnavailable(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Builds the request body: the password as text when it is UTF-8, else as base64. */
export function httpAuthRequest(credentials: Credentials): HttpAuthRequest {
  const { clientId, username, password, client } = credentials;
  const text = password !== undefined && isUtf8(password);
  return {
    clientId,
    username: username ?? null,
    password: password === undefined ? null : password.toString(text ? 'utf8' : 'base64'),
    passwordEncoding: password === undefined ? null : text ? 'utf8' : 'base64',
    remoteAddress: client.remoteAddress ?? null,
    listener: client.listener ?? null,
    protocol: client.protocol,
    protocolVersion: client.protocolVersion,
    certificate: client.certificate ?? null,
  };
}

/** Asks an HTTP service whether a client may connect (see the contract above). */
export class HttpAuthProvider implements AuthProvider {
  readonly name = 'http';
  private readonly cache = new Map<string, CachedDecision>();
  /** Identical logins while one request is under way share its answer. */
  private readonly inflight = new Map<string, Promise<ProviderDecision>>();
  /** Keys the cache's hashes, so they cannot be tested against guessed passwords offline. */
  private readonly cacheKeySecret = randomBytes(32);

  /** Throws for a URL that is not http(s) or a timeout that is not positive: at start, not at the first login. */
  constructor(private readonly options: HttpAuthOptions) {
    const { protocol } = new URL(options.url);
    if (protocol !== 'http:' && protocol !== 'https:')
      throw new RangeError('the HTTP auth hook URL must be http or https');
    const timeout = options.timeoutMs ?? 5000;
    if (!(Number.isFinite(timeout) && timeout > 0))
      throw new RangeError('the HTTP auth hook timeout must be positive');
  }

  /** Answers cached at the moment. */
  get cacheSize(): number {
    return this.cache.size;
  }

  async check(credentials: Credentials): Promise<ProviderDecision> {
    const key = this.cacheKey(credentials);
    const now = this.now();
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.expires > now) return cached.decision;
    if (cached !== undefined) this.cache.delete(key);
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.ask(credentials, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  close(): void {
    this.cache.clear();
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private cacheKey({ clientId, username, password }: Credentials): string {
    const fields = JSON.stringify([clientId, username ?? null, password?.toString('base64') ?? null]);
    return createHmac('sha256', this.cacheKeySecret).update(fields).digest('base64');
  }

  private async ask(credentials: Credentials, key: string): Promise<ProviderDecision> {
    let decision: ProviderDecision;
    try {
      decision = await this.request(credentials);
    } catch (error) {
      const reason = error instanceof HookUnavailable ? error.message : 'the request failed';
      this.options.onError?.(new Error(`HTTP auth hook unavailable: ${reason}`));
      if (!(this.options.failClosed ?? true)) return { decision: 'abstain' };
      return { decision: 'deny', refusal: 'server-unavailable', reason: `HTTP hook unavailable: ${reason}` };
    }
    const ttl =
      decision.decision === 'allow'
        ? (this.options.allowCacheTtlMs ?? 60_000)
        : decision.decision === 'deny'
          ? (this.options.denyCacheTtlMs ?? 5_000)
          : 0;
    if (ttl > 0) this.remember(key, decision, ttl);
    return decision;
  }

  private remember(key: string, decision: ProviderDecision, ttl: number): void {
    const max = this.options.cacheMaxEntries ?? 10_000;
    this.cache.delete(key);
    while (this.cache.size >= max && this.cache.size > 0) {
      // Maps iterate in insertion order: the first key is the oldest answer.
      this.cache.delete(this.cache.keys().next().value!);
    }
    if (max > 0) this.cache.set(key, { decision, expires: this.now() + ttl });
  }

  /** One POST; throws `HookUnavailable` (or a fetch error) when the contract gives no answer. */
  private async request(credentials: Credentials): Promise<ProviderDecision> {
    const timeoutMs = this.options.timeoutMs ?? 5000;
    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers: { ...this.options.headers, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(httpAuthRequest(credentials)),
        // A redirect would send the credentials somewhere else: it counts as a failure.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof Error && error.name === 'TimeoutError';
      throw new HookUnavailable(timedOut ? `no answer within ${timeoutMs} ms` : 'the connection failed');
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      return {
        decision: 'deny',
        refusal: 'bad-credentials',
        reason: `refused by the HTTP hook (${response.status})`,
      };
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new HookUnavailable(`status ${response.status}`);
    }
    let body: unknown;
    try {
      body = JSON.parse(await readLimited(response));
    } catch (error) {
      if (error instanceof HookUnavailable) throw error;
      const timedOut = error instanceof Error && error.name === 'TimeoutError';
      throw new HookUnavailable(timedOut ? `no answer within ${timeoutMs} ms` : 'the answer is not JSON');
    }
    const decision = decisionOf(body, credentials);
    if (typeof decision === 'string') throw new HookUnavailable(decision);
    return decision;
  }
}
