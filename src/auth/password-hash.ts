import { pbkdf2, randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * Password hashes as a password file stores them: scrypt (what `cicada passwd` writes), and
 * Mosquitto's PBKDF2 `$7$` so existing mosquitto_passwd files keep working. Fast hashes and
 * plain text are refused: a leaked file must not be cheap to crack.
 */

const pbkdf2Async = promisify(pbkdf2);

/** scrypt's cost parameters: N = 2^ln, block size r, parallelism p (RFC 7914 section 2). */
export interface ScryptCost {
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

/** 2^15 × 8 × 128 bytes = 32 MiB and about 0.1 s per check on a current CPU. */
export const DEFAULT_SCRYPT_COST: ScryptCost = { ln: 15, r: 8, p: 1 };

/** A parsed hash, ready to verify against. */
export type PasswordHash =
  | { readonly kind: 'scrypt'; readonly cost: ScryptCost; readonly salt: Buffer; readonly hash: Buffer }
  | {
      readonly kind: 'mosquitto-pbkdf2';
      readonly iterations: number;
      readonly salt: Buffer;
      readonly hash: Buffer;
    };

/** A stored hash that cannot be used; the message says why without repeating the hash. */
export class PasswordHashError extends Error {
  override readonly name = 'PasswordHashError';
}

const SCRYPT_PREFIX = '$scrypt$';
const SALT_BYTES = 16;
const SCRYPT_KEY_BYTES = 32;
/** A hash file from elsewhere must not make each login allocate gigabytes. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;
/** Mosquitto writes 101 by default; far above this a crafted file would stall logins. */
const MAX_PBKDF2_ITERATIONS = 10_000_000;
const MOSQUITTO_HASH_BYTES = 64;
const REHASH = 're-hash the password with `cicada passwd`';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Bytes scrypt needs for `cost` (RFC 7914: 128·r·N for V, 128·r·p for B), with headroom. */
function scryptMemory(cost: ScryptCost): number {
  return 128 * cost.r * (2 ** cost.ln + cost.p) + 1024 * 1024;
}

/** Throws unless `cost` is one this broker will compute. */
export function checkScryptCost(cost: ScryptCost): void {
  const { ln, r, p } = cost;
  const whole = (n: number, min: number, max: number): boolean => Number.isInteger(n) && n >= min && n <= max;
  if (!whole(ln, 1, 30) || !whole(r, 1, 64) || !whole(p, 1, 16)) {
    throw new PasswordHashError(`scrypt cost out of range (ln 1-30, r 1-64, p 1-16)`);
  }
  if (scryptMemory(cost) > MAX_SCRYPT_MEMORY) {
    throw new PasswordHashError(`scrypt cost ln=${ln},r=${r} needs more than 256 MiB per check`);
  }
}

function scryptAsync(password: Buffer, salt: Buffer, length: number, cost: ScryptCost): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** cost.ln, r: cost.r, p: cost.p, maxmem: scryptMemory(cost) };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

function bytesOf(password: string | Buffer): Buffer {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
}

/** Hashes `password` (its UTF-8 bytes) with a fresh salt: `$scrypt$ln=15,r=8,p=1$SALT$HASH`. */
export async function hashPassword(
  password: string | Buffer,
  cost: ScryptCost = DEFAULT_SCRYPT_COST,
): Promise<string> {
  checkScryptCost(cost);
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(bytesOf(password), salt, SCRYPT_KEY_BYTES, cost);
  const params = `ln=${cost.ln},r=${cost.r},p=${cost.p}`;
  return `${SCRYPT_PREFIX}${params}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

function decodeBase64(text: string, what: string): Buffer {
  if (!BASE64.test(text)) throw new PasswordHashError(`${what} is not base64`);
  return Buffer.from(text, 'base64');
}

function parseScrypt(encoded: string): PasswordHash {
  const parts = encoded.slice(SCRYPT_PREFIX.length).split('$');
  if (parts.length !== 3)
    throw new PasswordHashError('malformed scrypt hash (expected $scrypt$PARAMS$SALT$HASH)');
  const [params, salt, hash] = parts as [string, string, string];
  const match = /^ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})$/.exec(params);
  if (match === null) throw new PasswordHashError('malformed scrypt parameters (expected ln=N,r=N,p=N)');
  const cost = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  checkScryptCost(cost);
  const decoded = {
    salt: decodeBase64(salt, 'the scrypt salt'),
    hash: decodeBase64(hash, 'the scrypt hash'),
  };
  if (decoded.salt.length < 8) throw new PasswordHashError('the scrypt salt is shorter than 8 bytes');
  if (decoded.hash.length < 16) throw new PasswordHashError('the scrypt hash is shorter than 16 bytes');
  return { kind: 'scrypt', cost, ...decoded };
}

/** Mosquitto 2's `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512, 64-byte hash. */
function parseMosquittoPbkdf2(encoded: string): PasswordHash {
  const parts = encoded.slice(3).split('$');
  if (parts.length !== 3)
    throw new PasswordHashError('malformed Mosquitto $7$ hash (expected $7$ITERATIONS$SALT$HASH)');
  const [iterationText, salt, hash] = parts as [string, string, string];
  const iterations = /^\d{1,8}$/.test(iterationText) ? Number(iterationText) : Number.NaN;
  if (!(iterations >= 1 && iterations <= MAX_PBKDF2_ITERATIONS)) {
    throw new PasswordHashError(`Mosquitto $7$ iteration count must be 1-${MAX_PBKDF2_ITERATIONS}`);
  }
  const decoded = { salt: decodeBase64(salt, 'the $7$ salt'), hash: decodeBase64(hash, 'the $7$ hash') };
  if (decoded.hash.length !== MOSQUITTO_HASH_BYTES) {
    throw new PasswordHashError(`the Mosquitto $7$ hash is not ${MOSQUITTO_HASH_BYTES} bytes`);
  }
  return { kind: 'mosquitto-pbkdf2', iterations, ...decoded };
}

/**
 * Parses a stored hash; throws `PasswordHashError` for plain text, Mosquitto's fast `$6$`
 * and anything malformed, with a message that never repeats the stored text.
 */
export function parsePasswordHash(encoded: string): PasswordHash {
  if (encoded.startsWith(SCRYPT_PREFIX)) return parseScrypt(encoded);
  if (encoded.startsWith('$7$')) return parseMosquittoPbkdf2(encoded);
  if (encoded.startsWith('$6$')) {
    throw new PasswordHashError(
      `Mosquitto $6$ (one round of salted SHA-512) is too fast to resist cracking: ${REHASH}`,
    );
  }
  if (/^\$[A-Za-z0-9-]+\$/.test(encoded)) throw new PasswordHashError(`unsupported hash scheme: ${REHASH}`);
  throw new PasswordHashError(`not a password hash (plain-text passwords are not accepted): ${REHASH}`);
}

/**
 * Whether `password` matches `encoded` (a stored string or an already parsed hash). Compares
 * in constant time; throws `PasswordHashError` if a string `encoded` cannot be parsed.
 */
export async function verifyPassword(
  password: string | Buffer,
  encoded: string | PasswordHash,
): Promise<boolean> {
  const stored = typeof encoded === 'string' ? parsePasswordHash(encoded) : encoded;
  const bytes = bytesOf(password);
  const derived =
    stored.kind === 'scrypt'
      ? await scryptAsync(bytes, stored.salt, stored.hash.length, stored.cost)
      : await pbkdf2Async(bytes, stored.salt, stored.iterations, MOSQUITTO_HASH_BYTES, 'sha512');
  return timingSafeEqual(derived, stored.hash);
}
