import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramCredential } from '../../src/auth/scram-credential.js';

/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), written from the RFC with node:crypto
 * only, so the tests check the server against an independent implementation.
 */

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function h(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Escapes a username as a saslname: ',' is =2C and '=' is =3D (RFC 5802 section 5.1). */
export function saslEscape(name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C');
}

/** A verifier for `password` with a given salt (the RFC's, say), as the server would store it. */
export function credentialWithSalt(password: string, salt: Buffer, iterations: number): ScramCredential {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  return {
    iterations,
    salt,
    storedKey: h(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

/** What the client chooses: its nonce and gs2 header, for test vectors and misbehaviour. */
export interface ScramClientOptions {
  /** Default: 18 random bytes, base64. */
  nonce?: string;
  /** Default `n,,` (no channel binding, no authorization identity). */
  gs2Header?: string;
}

/** One SCRAM-SHA-256 exchange from the client's side: first(), then final(), then verify(). */
export class ScramClient {
  readonly nonce: string;
  readonly gs2Header: string;
  readonly bare: string;
  private expectedServerSignature: Buffer | undefined;

  constructor(
    readonly username: string,
    private readonly password: string,
    options: ScramClientOptions = {},
  ) {
    this.nonce = options.nonce ?? randomBytes(18).toString('base64');
    this.gs2Header = options.gs2Header ?? 'n,,';
    this.bare = `n=${saslEscape(username)},r=${this.nonce}`;
  }

  /** client-first-message. */
  first(): Buffer {
    return Buffer.from(this.gs2Header + this.bare);
  }

  /** client-final-message answering `serverFirst`; throws if the server's nonce does not extend ours. */
  final(serverFirst: Buffer | undefined): Buffer {
    if (serverFirst === undefined) throw new Error('no server-first-message');
    const text = serverFirst.toString();
    const fields = new Map(text.split(',').map((a) => [a[0]!, a.slice(2)] as const));
    const nonce = fields.get('r') ?? '';
    if (!nonce.startsWith(this.nonce) || nonce.length === this.nonce.length) {
      throw new Error(`server nonce does not extend the client's: ${text}`);
    }
    const salt = Buffer.from(fields.get('s') ?? '', 'base64');
    const iterations = Number(fields.get('i'));
    const salted = pbkdf2Sync(this.password, salt, iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const withoutProof = `c=${Buffer.from(this.gs2Header).toString('base64')},r=${nonce}`;
    const authMessage = `${this.bare},${text},${withoutProof}`;
    const signature = hmac(h(clientKey), authMessage);
    const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }

  /** Whether server-final-message `v=...` proves the server knows the verifier. */
  verify(serverFinal: Buffer | undefined): boolean {
    const expected = this.expectedServerSignature;
    if (expected === undefined || serverFinal === undefined) return false;
    const text = serverFinal.toString();
    if (!text.startsWith('v=')) return false;
    const signature = Buffer.from(text.slice(2), 'base64');
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  }
}
