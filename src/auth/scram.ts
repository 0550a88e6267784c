import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthConversation, AuthStep, ClientInfo } from '../broker/hooks.js';
import {
  DEFAULT_SCRAM_ITERATIONS,
  hmac,
  SCRAM_SHA_256,
  type ScramCredential,
  sha256,
} from './scram-credential.js';

/**
 * The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as an enhanced authentication
 * conversation: client-first, server-first, client-final, server-final. The server keeps only
 * the verifier (salt, iterations, StoredKey, ServerKey), never the password.
 */

/** Finds a user's verifier; undefined when there is no such user. */
export type ScramCredentialLookup = (
  username: string,
) => ScramCredential | undefined | Promise<ScramCredential | undefined>;

/** Settings of the SCRAM server side. */
export interface ScramServerOptions {
  /**
   * Secret from which unknown users' fake salts are derived, so that asking twice about an
   * unknown name gives the same answer, like a real user. Keep it stable across restarts
   * (otherwise an unknown user's salt changes and a real one's does not). Default: random per process.
   */
  readonly secret?: Buffer;
  /** Iteration count announced for unknown users: make it the one real verifiers use. Default 50 000. */
  readonly fakeIterations?: number;
  /** Server nonce source (printable ASCII without ','), for tests. Default: 18 random bytes, base64. */
  readonly nonce?: () => string;
}

/** Longest client message accepted, in bytes: SCRAM messages are a few hundred bytes at most. */
export const MAX_SCRAM_MESSAGE = 2048;

/** The failure a client sees for a wrong password and for an unknown user alike. */
const NOT_VERIFIED: AuthStep = {
  status: 'failure',
  refusal: 'not-authorized',
  reason: 'SCRAM proof did not verify',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** printable = %x21-2B / %x2D-7E (RFC 5802 section 7): ASCII without ','. */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
/** saslname: no raw ',' or '='; '=' only in the escapes =2C and =3D (RFC 5802 section 5.1). */
const SASLNAME = /^(?:[^,=]|=2C|=3D)+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** attr-val = ALPHA "=" value (RFC 5802 section 7). */
const ATTRIBUTE = /^[A-Za-z]=/;

/**
 * Makes SCRAM-SHA-256 conversations over `lookup`: one call per exchange. Unknown users get a
 * deterministic fake salt and fail at the proof, so the exchange does not reveal who exists.
 */
export function scramSha256(
  lookup: ScramCredentialLookup,
  options: ScramServerOptions = {},
): () => AuthConversation {
  const secret = options.secret ?? randomBytes(32);
  const fakeIterations = options.fakeIterations ?? DEFAULT_SCRAM_ITERATIONS;
  const nonce = options.nonce ?? (() => randomBytes(18).toString('base64'));
  const fake = (username: string): ScramCredential => ({
    iterations: fakeIterations,
    salt: hmac(secret, `salt\0${username}`).subarray(0, 16),
    storedKey: hmac(secret, `stored\0${username}`),
    serverKey: hmac(secret, `server\0${username}`),
  });
  return () => new ScramConversation(lookup, fake, nonce);
}

/** The `enhancedAuthentication` hook offering SCRAM-SHA-256 only (other methods: undefined, 0x8C). */
export function scramAuthentication(
  lookup: ScramCredentialLookup,
  options: ScramServerOptions = {},
): (method: string, client: ClientInfo) => AuthConversation | undefined {
  const start = scramSha256(lookup, options);
  return (method) => (method === SCRAM_SHA_256 ? start() : undefined);
}

/** What the server remembers between client-first and client-final. */
interface Exchange {
  readonly username: string;
  readonly known: boolean;
  readonly credential: ScramCredential;
  readonly gs2Header: string;
  readonly nonce: string;
  /** client-first-message-bare "," server-first-message */
  readonly messagesSoFar: string;
}

class ScramConversation implements AuthConversation {
  private exchange: Exchange | undefined;
  private finished = false;

  constructor(
    private readonly lookup: ScramCredentialLookup,
    private readonly fake: (username: string) => ScramCredential,
    private readonly serverNonce: () => string,
  ) {}

  async step(data: Buffer | undefined): Promise<AuthStep> {
    if (this.finished) return malformed('no message expected after the exchange ended');
    const text = decode(data);
    if (text === undefined) {
      this.finished = true;
      return malformed('message missing, too long or not UTF-8');
    }
    if (this.exchange === undefined) return this.clientFirst(text);
    this.finished = true;
    return this.clientFinal(text, this.exchange);
  }

  /** client-first-message = gs2-header client-first-message-bare (RFC 5802 section 7). */
  private async clientFirst(text: string): Promise<AuthStep> {
    const first = parseClientFirst(text);
    if (typeof first === 'string') {
      this.finished = true;
      return first === 'channel-binding'
        ? failure('channel binding requested, but none is offered (no SCRAM-SHA-256-PLUS)')
        : malformed(first);
    }
    const found = await this.lookup(first.username);
    const credential = found ?? this.fake(first.username);
    const serverNonce = this.serverNonce();
    if (!PRINTABLE.test(serverNonce))
      throw new Error('SCRAM server nonce must be printable ASCII without ","');
    const nonce = first.clientNonce + serverNonce;
    const serverFirst = `r=${nonce},s=${credential.salt.toString('base64')},i=${credential.iterations}`;
    this.exchange = {
      username: first.username,
      known: found !== undefined,
      credential,
      gs2Header: first.gs2Header,
      nonce,
      messagesSoFar: `${first.bare},${serverFirst}`,
    };
    return { status: 'continue', data: Buffer.from(serverFirst) };
  }

  /** client-final-message = channel-binding "," nonce ["," extensions] "," proof. */
  private clientFinal(text: string, exchange: Exchange): AuthStep {
    const proofAt = text.lastIndexOf(',p=');
    if (proofAt < 0) return malformed('client-final-message without proof');
    const withoutProof = text.slice(0, proofAt);
    const proof = base64(text.slice(proofAt + 3));
    const [binding, nonce, ...extensions] = withoutProof.split(',');
    if (proof === undefined || proof.length !== 32) return malformed('proof is not 32 bytes of base64');
    if (!binding?.startsWith('c=') || !nonce?.startsWith('r=') || !extensions.every(isAttribute)) {
      return malformed('client-final-message attributes');
    }
    // c= carries the gs2 header again: it must be the one of client-first (RFC 5802 section 5.1).
    const header = base64(binding.slice(2));
    if (header === undefined || !header.equals(Buffer.from(exchange.gs2Header))) {
      return malformed('channel binding data differs from the gs2 header');
    }
    if (nonce.slice(2) !== exchange.nonce) return malformed('nonce differs from the server-first-message');

    const { storedKey, serverKey } = exchange.credential;
    const authMessage = `${exchange.messagesSoFar},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    const verified = timingSafeEqual(sha256(clientKey), storedKey);
    if (!verified || !exchange.known) return NOT_VERIFIED;
    const serverSignature = hmac(serverKey, authMessage);
    return {
      status: 'success',
      data: Buffer.from(`v=${serverSignature.toString('base64')}`),
      username: exchange.username,
    };
  }
}

interface ClientFirst {
  readonly gs2Header: string;
  readonly bare: string;
  readonly username: string;
  readonly clientNonce: string;
}

/** Parses client-first-message; a string says what is wrong ('channel-binding' for `p=`). */
function parseClientFirst(text: string): ClientFirst | string {
  const flagEnd = text.indexOf(',');
  const headerEnd = text.indexOf(',', flagEnd + 1);
  if (flagEnd < 0 || headerEnd < 0) return 'gs2 header missing';
  const flag = text.slice(0, flagEnd);
  // gs2-cbind-flag: "p=" asks for channel binding, which only the -PLUS variant offers.
  if (flag.startsWith('p=')) return 'channel-binding';
  if (flag !== 'n' && flag !== 'y') return 'gs2 channel binding flag';
  const authzid = text.slice(flagEnd + 1, headerEnd);
  const bare = text.slice(headerEnd + 1);
  const [user, nonce, ...extensions] = bare.split(',');
  // reserved-mext "m=": a mandatory extension this server does not know must fail it.
  if (user?.startsWith('m=')) return 'mandatory extension not supported';
  if (!user?.startsWith('n=') || !nonce?.startsWith('r=')) return 'client-first-message attributes';
  if (!extensions.every(isAttribute)) return 'client-first-message extensions';
  const username = saslname(user.slice(2));
  const clientNonce = nonce.slice(2);
  if (username === undefined) return 'username encoding';
  if (!PRINTABLE.test(clientNonce)) return 'client nonce';
  if (authzid !== '') {
    // Acting on behalf of another identity is not offered: an authzid may only name the user itself.
    if (!authzid.startsWith('a=') || saslname(authzid.slice(2)) !== username) return 'authorization identity';
  }
  return { gs2Header: text.slice(0, headerEnd + 1), bare, username, clientNonce };
}

/** Decodes a saslname (`=2C` is ',' and `=3D` is '='); undefined if it is not one. */
function saslname(value: string): string | undefined {
  if (!SASLNAME.test(value)) return undefined;
  return value.replace(/=2C|=3D/g, (escaped) => (escaped === '=2C' ? ',' : '='));
}

function isAttribute(value: string): boolean {
  return ATTRIBUTE.test(value);
}

/** Strict base64 (no whitespace, padding where due); undefined if `value` is not. */
function base64(value: string): Buffer | undefined {
  return value.length > 0 && BASE64.test(value) ? Buffer.from(value, 'base64') : undefined;
}

/** A SCRAM message as text: present, bounded and valid UTF-8, else undefined. */
function decode(data: Buffer | undefined): string | undefined {
  if (data === undefined || data.length === 0 || data.length > MAX_SCRAM_MESSAGE) return undefined;
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

function failure(reason: string): AuthStep {
  return { status: 'failure', refusal: 'not-authorized', reason };
}

function malformed(what: string): AuthStep {
  return failure(`malformed SCRAM message: ${what}`);
}
