import { readFile } from 'node:fs/promises';
import {
  createSecureContext,
  type PeerCertificate,
  type SecureContextOptions,
  type TLSSocket,
} from 'node:tls';
import type { CertificateInfo } from '../broker/hooks.js';
import type { TlsListenOptions } from './transport.js';

/** What a TLS server needs from `TlsListenOptions`: the PEM contents and whom to ask for a certificate. */
export type TlsServerSettings = SecureContextOptions & {
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
};

/** Reads one PEM file; the error names the file and what it was meant to be. */
async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot read TLS ${what} file '${path}': ${reason}`);
  }
}

/**
 * Reads the certificate, key and CA files of a TLS listener and derives the server's
 * client-certificate policy: `requestCert` asks for one, `requireCert` (default true with
 * `requestCert`) refuses clients without a valid one.
 */
export async function readTlsFiles(options: TlsListenOptions): Promise<TlsServerSettings> {
  const [cert, key, ca] = await Promise.all([
    readPem(options.cert, 'certificate'),
    readPem(options.key, 'key'),
    options.ca === undefined ? undefined : readPem(options.ca, 'CA'),
  ]);
  const requestCert = options.requestCert ?? false;
  return {
    cert,
    key,
    ...(ca === undefined ? {} : { ca }),
    ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
    requestCert,
    rejectUnauthorized: requestCert && (options.requireCert ?? true),
  };
}

/** A server whose certificate can be swapped for the connections it accepts next (TLS, HTTPS). */
export interface SecureContextHolder {
  setSecureContext(options: SecureContextOptions): void;
}

/**
 * Re-reads a listener's TLS files into `server`. Unreadable files, or a key that does not match
 * its certificate, throw (naming the listener with `where`) and the server keeps its context.
 */
export async function reloadSecureContext(
  server: SecureContextHolder,
  options: TlsListenOptions,
  where: string,
): Promise<void> {
  let next: TlsServerSettings;
  try {
    next = await readTlsFiles(options);
    // Built once first: a mismatched key throws here rather than in the server.
    createSecureContext(next);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`TLS reload ${where} failed, still serving the previous certificate: ${reason}`);
  }
  server.setSecureContext(next);
}

type NameFields = PeerCertificate['subject'];

/** RFC 4514 escaping of an attribute value: specials anywhere, `#`/space first, space last. */
function escapeDnValue(value: string): string {
  return value
    .replace(/[,+"\\<>;=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}

/**
 * A distinguished name as text, most specific first (`CN=x,O=y`, RFC 4514 order: Node
 * lists the attributes in certificate order, which is the reverse).
 */
function distinguishedName(name: NameFields | undefined): string {
  if (name === undefined || name === null) return '';
  const parts: string[] = [];
  for (const [attribute, value] of Object.entries(name) as [string, string | string[] | undefined][]) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value])
      parts.push(`${attribute}=${escapeDnValue(one)}`);
  }
  return parts.reverse().join(',');
}

/**
 * Splits Node's `subjectaltname` (`DNS:a, email:b@c, URI:...`) into entries. Node quotes a
 * value holding separators as a JSON string (`DNS:"a, b"`), so split outside quotes only.
 */
function splitSubjectAltNames(text: string | undefined): string[] {
  if (text === undefined || text === '') return [];
  const entries = text.match(/[^:,]+:(?:"(?:[^"\\]|\\.)*"|[^,]*)/g) ?? [];
  return entries.map((entry) => {
    const trimmed = entry.trim();
    const colon = trimmed.indexOf(':');
    const kind = trimmed.slice(0, colon);
    const value = trimmed.slice(colon + 1);
    if (!value.startsWith('"')) return trimmed;
    try {
      return `${kind}:${JSON.parse(value) as string}`;
    } catch {
      return trimmed;
    }
  });
}

/** The first value of an attribute (certificates may repeat one). */
function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

const SAN_PREFIX = { 'san-dns': 'DNS:', 'san-email': 'email:', 'san-uri': 'URI:' } as const;

/** The username a certificate yields under `usernameFrom`, if it has that field. */
function usernameOf(
  commonName: string | undefined,
  subjectAltNames: readonly string[],
  usernameFrom: TlsListenOptions['usernameFrom'],
): string | undefined {
  if (usernameFrom === undefined) return undefined;
  if (usernameFrom === 'cn') return commonName;
  const prefix = SAN_PREFIX[usernameFrom];
  return subjectAltNames.find((san) => san.startsWith(prefix))?.slice(prefix.length);
}

/**
 * The client certificate of a TLS connection as the broker's hooks see it, or undefined
 * when the client sent none. `authorized` is whether it chains to the listener's CA; only
 * an authorized certificate yields a `username`.
 */
export function certificateInfo(
  socket: TLSSocket,
  usernameFrom?: TlsListenOptions['usernameFrom'],
): CertificateInfo | undefined {
  const peer = socket.getPeerCertificate();
  // Node answers an empty object when the client sent no certificate.
  if (peer === null || peer === undefined || Object.keys(peer).length === 0) return undefined;
  const commonName = first(peer.subject?.CN as string | string[] | undefined);
  const subjectAltNames = splitSubjectAltNames(peer.subjectaltname);
  // A certificate that does not chain to the listener's CA proves nothing: no name from it.
  const username = socket.authorized ? usernameOf(commonName, subjectAltNames, usernameFrom) : undefined;
  return {
    subject: distinguishedName(peer.subject),
    ...(commonName === undefined ? {} : { commonName }),
    subjectAltNames,
    issuer: distinguishedName(peer.issuer),
    fingerprint256: peer.fingerprint256,
    validTo: peer.valid_to,
    authorized: socket.authorized,
    ...(username === undefined ? {} : { username }),
  };
}
