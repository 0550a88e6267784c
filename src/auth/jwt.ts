import { createHmac, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import type { ConnectRefusal } from '../broker/hooks.js';
import { parseAclGrant } from './acl.js';
import { type JwtAlgorithm, type JwtKeySource, type JwtKeys, loadJwtKeys, selectJwtKey } from './jwt-keys.js';
import type { AuthProvider, Credentials, Identity, ProviderDecision } from './types.js';

/**
 * JSON Web Tokens (RFC 7519) as the CONNECT password: a signed token names the user, may bind
 * the client id and carries the client's topic permissions. Only compact JWS (RFC 7515
 * section 7.1) with the one configured algorithm is accepted.
 */

export interface JwtProviderOptions extends JwtKeySource {
  /** Accepted `iss` values; absent: not checked. */
  readonly issuer?: string | readonly string[];
  /** Accepted `aud` values (one must be in the token's `aud`); absent: not checked. */
  readonly audience?: string | readonly string[];
  /** A claim that must equal the CONNECT client id (e.g. `client_id`); absent: not bound. */
  readonly clientIdClaim?: string;
  /** The claim naming the user. Default `sub`. */
  readonly usernameClaim?: string;
  /** The claim holding `{ "publish": [filters], "subscribe": [filters] }`. Default `acl`. */
  readonly aclClaim?: string;
  /** A claim that makes the client a superuser when it is `true`; absent: tokens never do. */
  readonly superuserClaim?: string;
  /** Clock skew tolerated on `exp` and `nbf`, in seconds. Default 30. */
  readonly leewaySeconds?: number;
  /** Refuse tokens without `exp` (they would never expire). Default true. */
  readonly requireExpiration?: boolean;
  /** Milliseconds since the epoch; for tests. Default `Date.now`. */
  readonly now?: () => number;
}

type Claims = Record<string, unknown>;

/** A token part that is base64url (RFC 7515 section 2: no padding). */
const SEGMENT = /^[A-Za-z0-9_-]+$/;

function deny(reason: string, refusal: ConnectRefusal = 'bad-credentials'): ProviderDecision {
  return { decision: 'deny', refusal, reason };
}

function jsonObject(segment: string): Claims | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Claims)
      : undefined;
  } catch {
    return undefined;
  }
}

function list(value: string | readonly string[] | undefined): readonly string[] | undefined {
  return typeof value === 'string' ? [value] : value;
}

function stringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** A header's `alg` fit to be quoted in a refusal (it is attacker-chosen text). */
function printable(alg: unknown): string {
  return typeof alg === 'string' && /^[A-Za-z0-9+-]{1,16}$/.test(alg) ? alg : '(unreadable)';
}

function signatureValid(algorithm: JwtAlgorithm, key: KeyObject, input: Buffer, signature: Buffer): boolean {
  if (algorithm === 'HS256') {
    const expected = createHmac('sha256', key).update(input).digest();
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }
  // RFC 7518 section 3.4: an ES256 signature is R || S, 32 bytes each, not DER.
  if (algorithm === 'ES256' && signature.length !== 64) return false;
  const keyInput = algorithm === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' as const } : key;
  try {
    return verify('sha256', input, keyInput, signature);
  } catch {
    return false; // a signature OpenSSL cannot even parse is simply not valid
  }
}

/**
 * Accepts a CONNECT whose password is a valid JWT: signature, then `exp`/`nbf` (with leeway),
 * `iss`, `aud` and the client-id binding. Passwords that are not JWT-shaped are left to the
 * next provider. Refusal reasons say what failed and never contain the token.
 */
export class JwtProvider implements AuthProvider {
  readonly name = 'jwt';
  private keys: JwtKeys;

  private constructor(
    private readonly options: JwtProviderOptions,
    keys: JwtKeys,
  ) {
    this.keys = keys;
  }

  /** Loads the key file(s); throws `JwtKeyError` if they are missing or do not suit the algorithm. */
  static async open(options: JwtProviderOptions): Promise<JwtProvider> {
    const leeway = options.leewaySeconds ?? 30;
    if (!(Number.isFinite(leeway) && leeway >= 0)) throw new RangeError('leewaySeconds must be 0 or more');
    return new JwtProvider(options, await loadJwtKeys(options));
  }

  /** Re-reads the key file(s); on failure the old keys stay and the error is thrown. */
  async reload(): Promise<void> {
    this.keys = await loadJwtKeys(this.options);
  }

  async check(credentials: Credentials): Promise<ProviderDecision> {
    const { password } = credentials;
    if (password === undefined) return { decision: 'abstain' };
    const parts = password.toString('latin1').split('.');
    // Three base64url parts (the last empty for alg none) whose first is a JSON object.
    if (parts.length !== 3 || !SEGMENT.test(parts[0]!) || !SEGMENT.test(parts[1]!))
      return { decision: 'abstain' };
    if (parts[2] !== '' && !SEGMENT.test(parts[2]!)) return { decision: 'abstain' };
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = jsonObject(headerPart);
    if (header === undefined) return { decision: 'abstain' };
    return this.verifyToken(header, headerPart, payloadPart, signaturePart, credentials);
  }

  private verifyToken(
    header: Claims,
    headerPart: string,
    payloadPart: string,
    signaturePart: string,
    credentials: Credentials,
  ): ProviderDecision {
    const { algorithm } = this.options;
    const alg = header.alg;
    // RFC 8725 section 3.1/3.2: never accept unsigned tokens; use only the configured algorithm.
    if (typeof alg === 'string' && alg.toLowerCase() === 'none') return deny('unsigned token (alg none)');
    if (alg !== algorithm)
      return deny(`token algorithm ${printable(alg)} is not the configured ${algorithm}`);
    // RFC 7515 section 4.1.11: critical extensions we do not understand make the token invalid.
    if (header.crit !== undefined) return deny('token has critical header extensions');
    if (header.kid !== undefined && typeof header.kid !== 'string')
      return deny('malformed token: kid is not a string');
    const key = selectJwtKey(this.keys, header.kid);
    if (key === undefined) {
      return deny(
        header.kid === undefined ? 'token names no key id (kid)' : 'token names an unknown key id (kid)',
      );
    }
    const input = Buffer.from(`${headerPart}.${payloadPart}`, 'ascii');
    if (!signatureValid(algorithm, key, input, Buffer.from(signaturePart, 'base64url'))) {
      return deny('bad signature');
    }
    const claims = jsonObject(payloadPart);
    if (claims === undefined) return deny('malformed token: the payload is not a JSON object');
    return this.checkClaims(claims, credentials);
  }

  private checkClaims(claims: Claims, credentials: Credentials): ProviderDecision {
    const o = this.options;
    const now = (o.now ?? Date.now)() / 1000;
    const leeway = o.leewaySeconds ?? 30;
    const { exp, nbf, iss, aud } = claims;
    // RFC 7519 section 4.1.4: the current time MUST be before the expiration time.
    if (exp !== undefined && typeof exp !== 'number') return deny('malformed token: exp is not a number');
    if (exp === undefined && (o.requireExpiration ?? true)) return deny('token has no expiration (exp)');
    if (exp !== undefined && now >= exp + leeway) return deny('token expired');
    // RFC 7519 section 4.1.5: it MUST NOT be accepted before its not-before time.
    if (nbf !== undefined && typeof nbf !== 'number') return deny('malformed token: nbf is not a number');
    if (nbf !== undefined && now + leeway < nbf) return deny('token not yet valid');
    const issuers = list(o.issuer);
    if (issuers !== undefined && (typeof iss !== 'string' || !issuers.includes(iss)))
      return deny('wrong issuer');
    const audiences = list(o.audience);
    if (audiences !== undefined) {
      // RFC 7519 section 4.1.3: `aud` is one string or an array of them.
      const tokenAudiences = typeof aud === 'string' ? [aud] : stringArray(aud) ? aud : [];
      if (!tokenAudiences.some((a) => audiences.includes(a))) return deny('wrong audience');
    }
    if (o.clientIdClaim !== undefined && claims[o.clientIdClaim] !== credentials.clientId) {
      return deny('wrong client id: the token is bound to another client', 'not-authorized');
    }
    const usernameClaim = o.usernameClaim ?? 'sub';
    const username = claims[usernameClaim];
    // Without it the ACL would go by the CONNECT username, which the client chooses freely.
    if (typeof username !== 'string' || username === '') return deny(`token has no '${usernameClaim}' claim`);
    const acl = parseAclGrant(claims[o.aclClaim ?? 'acl']);
    if (acl === 'malformed') return deny('malformed ACL claim');
    const identity: Identity = {
      provider: this.name,
      username,
      ...(acl === undefined ? {} : { acl }),
      ...(o.superuserClaim !== undefined && claims[o.superuserClaim] === true ? { superuser: true } : {}),
    };
    return { decision: 'allow', identity };
  }
}
