import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * The keys JWTs are verified with: an HMAC secret file, a PEM public key, or a JWKS file.
 * Each key is checked against the one configured algorithm when it is loaded, so a token can
 * never pick a key of another kind (e.g. HS256 keyed with an RSA public key).
 */

/** Signature algorithms accepted (RFC 7518 section 3.1). */
export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256';

/** All of `JwtAlgorithm`, for validating configuration. */
export const JWT_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'RS256', 'ES256'];

/** Where the keys come from: exactly one file, of a kind that suits the algorithm. */
export interface JwtKeySource {
  readonly algorithm: JwtAlgorithm;
  /** HS256: the shared secret, the file's bytes without one trailing newline. */
  readonly secretFile?: string;
  /** RS256/ES256: a PEM public key (or certificate). */
  readonly publicKeyFile?: string;
  /** A JSON Web Key Set (RFC 7517 section 5): `oct` keys for HS256, `RSA` for RS256, `EC` P-256 for ES256. */
  readonly jwksFile?: string;
}

/** The loaded keys: by key id, and those without one. */
export interface JwtKeys {
  readonly byId: ReadonlyMap<string, KeyObject>;
  readonly unnamed: readonly KeyObject[];
}

/** The key configuration cannot be used; the message names the file, never key material. */
export class JwtKeyError extends Error {
  override readonly name = 'JwtKeyError';
}

const JWK_TYPE: Record<JwtAlgorithm, string> = { HS256: 'oct', RS256: 'RSA', ES256: 'EC' };

/** Throws unless `key` is strong enough for `algorithm` and of its kind. */
function checkKey(key: KeyObject, algorithm: JwtAlgorithm, where: string): void {
  if (algorithm === 'HS256') {
    // RFC 7518 section 3.2: a key at least as long as the hash output (256 bits) MUST be used.
    if (key.type !== 'secret') throw new JwtKeyError(`${where}: HS256 needs a shared secret`);
    if (key.symmetricKeySize! < 32)
      throw new JwtKeyError(`${where}: the HS256 secret is shorter than 32 bytes`);
    return;
  }
  if (key.type !== 'public') throw new JwtKeyError(`${where}: ${algorithm} needs a public key`);
  if (algorithm === 'RS256') {
    if (key.asymmetricKeyType !== 'rsa') throw new JwtKeyError(`${where}: RS256 needs an RSA key`);
    // RFC 7518 section 3.3: a key of size 2048 bits or larger MUST be used.
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      throw new JwtKeyError(`${where}: the RSA key is shorter than 2048 bits`);
    }
    return;
  }
  // RFC 7518 section 3.4: ES256 is ECDSA on P-256 (OpenSSL's prime256v1).
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new JwtKeyError(`${where}: ES256 needs an EC key on curve P-256`);
  }
}

async function readKeyFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new JwtKeyError(`${file}: cannot read the key file (${code ?? String(error)})`);
  }
}

async function loadSecret(file: string, algorithm: JwtAlgorithm): Promise<KeyObject> {
  let bytes = await readKeyFile(file);
  // `echo secret > file` adds a newline that is not part of the secret.
  if (bytes.at(-1) === 0x0a) bytes = bytes.subarray(0, bytes.at(-2) === 0x0d ? -2 : -1);
  const key = createSecretKey(bytes);
  checkKey(key, algorithm, file);
  return key;
}

async function loadPem(file: string, algorithm: JwtAlgorithm): Promise<KeyObject> {
  const pem = await readKeyFile(file);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new JwtKeyError(`${file}: not a PEM public key or certificate`);
  }
  checkKey(key, algorithm, file);
  return key;
}

/** Only the public members of a JWK: a private key published by mistake is not used as one. */
function publicJwk(jwk: Record<string, unknown>): JsonWebKey {
  const { kty, n, e, crv, x, y } = jwk;
  return (kty === 'RSA' ? { kty, n, e } : { kty, crv, x, y }) as JsonWebKey;
}

function importJwk(jwk: Record<string, unknown>, algorithm: JwtAlgorithm, where: string): KeyObject {
  let key: KeyObject;
  try {
    if (algorithm === 'HS256') {
      if (typeof jwk.k !== 'string' || !/^[A-Za-z0-9_-]+$/.test(jwk.k)) throw new Error('no k');
      key = createSecretKey(Buffer.from(jwk.k, 'base64url'));
    } else {
      key = createPublicKey({ key: publicJwk(jwk), format: 'jwk' });
    }
  } catch {
    throw new JwtKeyError(`${where}: not a valid ${JWK_TYPE[algorithm]} key`);
  }
  checkKey(key, algorithm, where);
  return key;
}

async function loadJwks(file: string, algorithm: JwtAlgorithm): Promise<JwtKeys> {
  let set: unknown;
  try {
    set = JSON.parse((await readKeyFile(file)).toString('utf8'));
  } catch (error) {
    if (error instanceof JwtKeyError) throw error;
    throw new JwtKeyError(`${file}: not JSON`);
  }
  const keys = (set as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys))
    throw new JwtKeyError(`${file}: a key set needs a "keys" array (RFC 7517 section 5)`);
  const byId = new Map<string, KeyObject>();
  const unnamed: KeyObject[] = [];
  for (const [index, jwk] of keys.entries()) {
    const where = `${file}: keys[${index}]`;
    if (typeof jwk !== 'object' || jwk === null) throw new JwtKeyError(`${where}: not an object`);
    const { kty, use, alg, kid, crv } = jwk as Record<string, unknown>;
    // Keys for other purposes or algorithms may share the set; they are not candidates.
    if (kty !== JWK_TYPE[algorithm] || (use !== undefined && use !== 'sig')) continue;
    if (alg !== undefined && alg !== algorithm) continue;
    if (algorithm === 'ES256' && crv !== 'P-256') continue;
    const key = importJwk(jwk as Record<string, unknown>, algorithm, where);
    if (kid === undefined) unnamed.push(key);
    else if (typeof kid !== 'string') throw new JwtKeyError(`${where}: "kid" is not a string`);
    else if (byId.has(kid)) throw new JwtKeyError(`${where}: key id "${kid}" appears twice`);
    else byId.set(kid, key);
  }
  if (byId.size + unnamed.length === 0)
    throw new JwtKeyError(`${file}: no ${algorithm} signing key in the set`);
  return { byId, unnamed };
}

/** Loads the configured keys; throws `JwtKeyError` for missing, unreadable or unsuitable ones. */
export async function loadJwtKeys(source: JwtKeySource): Promise<JwtKeys> {
  const { algorithm, secretFile, publicKeyFile, jwksFile } = source;
  if (!JWT_ALGORITHMS.includes(algorithm))
    throw new JwtKeyError(`unsupported JWT algorithm '${String(algorithm)}'`);
  const given = [secretFile, publicKeyFile, jwksFile].filter((f) => f !== undefined).length;
  if (given !== 1) throw new JwtKeyError('configure exactly one of secretFile, publicKeyFile and jwksFile');
  if (jwksFile !== undefined) return loadJwks(jwksFile, algorithm);
  if (algorithm === 'HS256') {
    if (secretFile === undefined) throw new JwtKeyError('HS256 takes a secretFile or a jwksFile');
    return { byId: new Map(), unnamed: [await loadSecret(secretFile, algorithm)] };
  }
  if (publicKeyFile === undefined) throw new JwtKeyError(`${algorithm} takes a publicKeyFile or a jwksFile`);
  return { byId: new Map(), unnamed: [await loadPem(publicKeyFile, algorithm)] };
}

/**
 * The key for a token naming `kid` (or none): the key with that id; a single configured key
 * when the token names none or the keys have no ids; otherwise none.
 */
export function selectJwtKey(keys: JwtKeys, kid: string | undefined): KeyObject | undefined {
  if (kid !== undefined && keys.byId.size > 0) return keys.byId.get(kid);
  const all = [...keys.byId.values(), ...keys.unnamed];
  return all.length === 1 ? all[0] : undefined;
}
