import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** The only SCRAM mechanism offered (RFC 7677). */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
/** PBKDF2 iterations of new verifiers: RFC 7677 asks for at least 4096; we take more. */
export const DEFAULT_SCRAM_ITERATIONS = 50_000;
const PREFIX = '$scram-sha-256$';

/**
 * What a server keeps to run SCRAM-SHA-256 for one user (RFC 5802 section 3): never the
 * password, only the salt, the iteration count and two keys derived from it.
 */
export interface ScramCredential {
  readonly iterations: number;
  readonly salt: Buffer;
  /** H(HMAC(SaltedPassword, "Client Key")) */
  readonly storedKey: Buffer;
  /** HMAC(SaltedPassword, "Server Key") */
  readonly serverKey: Buffer;
}

/** SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 section 3). */
export async function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  // SASLprep is approximated by NFKC, which covers what users type in practice.
  return pbkdf2Async(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
}

/** HMAC-SHA-256. */
export function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** SHA-256. */
export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Derives a new verifier for `password` with a fresh random salt. */
export async function deriveScramCredential(
  password: string,
  iterations = DEFAULT_SCRAM_ITERATIONS,
): Promise<ScramCredential> {
  const salt = randomBytes(16);
  const salted = await saltedPassword(password, salt, iterations);
  return {
    iterations,
    salt,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

/** `$scram-sha-256$ITERATIONS$SALT$STOREDKEY$SERVERKEY`, base64: how a password file stores it. */
export function formatScramCredential(credential: ScramCredential): string {
  const { iterations, salt, storedKey, serverKey } = credential;
  return `${PREFIX}${iterations}$${salt.toString('base64')}$${storedKey.toString('base64')}$${serverKey.toString('base64')}`;
}

/** Parses `formatScramCredential`'s output; undefined if `text` is not one. */
export function parseScramCredential(text: string): ScramCredential | undefined {
  if (!text.startsWith(PREFIX)) return undefined;
  const parts = text.slice(PREFIX.length).split('$');
  if (parts.length !== 4) return undefined;
  const [iterationText, salt, storedKey, serverKey] = parts as [string, string, string, string];
  const iterations = Number(iterationText);
  const base64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!Number.isSafeInteger(iterations) || iterations < 4096) return undefined;
  if (![salt, storedKey, serverKey].every((p) => base64.test(p))) return undefined;
  const decoded = {
    iterations,
    salt: Buffer.from(salt, 'base64'),
    storedKey: Buffer.from(storedKey, 'base64'),
    serverKey: Buffer.from(serverKey, 'base64'),
  };
  if (decoded.storedKey.length !== 32 || decoded.serverKey.length !== 32) return undefined;
  return decoded;
}
