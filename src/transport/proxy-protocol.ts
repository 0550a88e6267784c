import { isIPv4, isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a load balancer in
 * front of the broker sends one header with the client's real address before the client's
 * own bytes. The parser is a pure function over the bytes received so far; `readProxyHeader`
 * applies it to a socket, bounded in size and time.
 */

/** An address and port from a header. */
export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** A complete, valid header. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** `local`: the proxy's own connection (health checks); the real endpoints stand. */
  readonly command: 'proxy' | 'local';
  /** The client's endpoint, when the header carries a TCP over IPv4/IPv6 address block. */
  readonly source?: ProxyEndpoint;
  readonly destination?: ProxyEndpoint;
  /** How many bytes the header took: the client's own bytes start there. */
  readonly length: number;
}

/** What the bytes received so far amount to. */
export type ProxyHeaderParse =
  | { readonly status: 'complete'; readonly header: ProxyHeader }
  | { readonly status: 'incomplete' }
  | { readonly status: 'invalid'; readonly reason: string };

/** A v1 line is at most 107 bytes, CRLF included (proxy-protocol.txt 2.1). */
export const MAX_V1_LENGTH = 107;
/** The largest v2 address block plus TLVs we accept; the field allows 64 KiB, no proxy needs it. */
export const MAX_V2_PAYLOAD = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;

const INCOMPLETE: ProxyHeaderParse = { status: 'incomplete' };
const invalid = (reason: string): ProxyHeaderParse => ({ status: 'invalid', reason });

/** Whether `bytes` start like `prefix` as far as they go. */
function startsLike(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return bytes.subarray(0, n).equals(prefix.subarray(0, n));
}

/**
 * Parses a PROXY protocol header at the start of `bytes`: complete (with its length),
 * incomplete (wait for more), or invalid (close the connection).
 */
export function parseProxyHeader(bytes: Buffer): ProxyHeaderParse {
  if (bytes.length === 0) return INCOMPLETE;
  if (startsLike(bytes, V1_PREFIX)) return parseV1(bytes);
  if (startsLike(bytes, V2_SIGNATURE)) return parseV2(bytes);
  return invalid('no PROXY protocol header');
}

function parsePort(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65_535 ? port : undefined;
}

function parseV1(bytes: Buffer): ProxyHeaderParse {
  const window = bytes.subarray(0, MAX_V1_LENGTH);
  const end = window.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (bytes.length >= MAX_V1_LENGTH) return invalid(`v1 header longer than ${MAX_V1_LENGTH} bytes`);
    // A lone CR may yet be followed by LF; anything else outside printable ASCII is garbage.
    if (/[^\x20-\x7e]/.test(window.toString('latin1').replace(/\r$/, '')))
      return invalid('v1 header is not printable text');
    return INCOMPLETE;
  }
  const line = window.toString('latin1', 0, end);
  const length = end + 2;
  const fields = line.split(' ');
  const family = fields[1];
  if (family === 'UNKNOWN') return { status: 'complete', header: { version: 1, command: 'proxy', length } };
  if (family !== 'TCP4' && family !== 'TCP6') return invalid(`v1 unknown protocol '${family ?? ''}'`);
  if (fields.length !== 6) return invalid('v1 header needs two addresses and two ports');
  const [, , sourceAddress, destinationAddress, sourcePort, destinationPort] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const isAddress = family === 'TCP4' ? isIPv4 : isIPv6;
  if (!isAddress(sourceAddress) || !isAddress(destinationAddress))
    return invalid(`v1 addresses are not ${family === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const from = parsePort(sourcePort);
  const to = parsePort(destinationPort);
  if (from === undefined || to === undefined) return invalid('v1 ports are not 0 to 65535');
  return {
    status: 'complete',
    header: {
      version: 1,
      command: 'proxy',
      source: { address: sourceAddress, port: from },
      destination: { address: destinationAddress, port: to },
      length,
    },
  };
}

/** An IPv6 address in the form Node reports them: lower case, longest zero run as `::`. */
export function ipv6Text(bytes: Buffer): string {
  if (bytes.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])))
    return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function parseV2(bytes: Buffer): ProxyHeaderParse {
  if (bytes.length < V2_FIXED) return INCOMPLETE;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`v2 header with version ${versionCommand >> 4}`);
  const commandBits = versionCommand & 0x0f;
  if (commandBits > 1) return invalid(`v2 unknown command ${commandBits}`);
  const familyTransport = bytes[13]!;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (family > 3 || transport > 2)
    return invalid(`v2 unknown address family 0x${familyTransport.toString(16)}`);
  const payload = bytes.readUInt16BE(14);
  if (payload > MAX_V2_PAYLOAD) return invalid(`v2 header of ${payload} bytes is longer than we accept`);
  const length = V2_FIXED + payload;
  if (bytes.length < length) return INCOMPLETE;
  const command = commandBits === 0 ? 'local' : 'proxy';
  const stream = transport === 1;
  // LOCAL, UNSPEC, UNIX and datagram headers carry no TCP endpoint: the real one stands.
  if (command === 'local' || !stream || (family !== 1 && family !== 2))
    return { status: 'complete', header: { version: 2, command, length } };
  const addressBytes = family === 1 ? 4 : 16;
  if (payload < addressBytes * 2 + 4) return invalid('v2 address block shorter than its family needs');
  const at = V2_FIXED;
  const text = (b: Buffer): string => (family === 1 ? [...b].join('.') : ipv6Text(b));
  const ports = at + addressBytes * 2;
  return {
    status: 'complete',
    header: {
      version: 2,
      command,
      // TLVs after the address block are skipped: nothing in them is needed here.
      source: { address: text(bytes.subarray(at, at + addressBytes)), port: bytes.readUInt16BE(ports) },
      destination: {
        address: text(bytes.subarray(at + addressBytes, ports)),
        port: bytes.readUInt16BE(ports + 2),
      },
      length,
    },
  };
}

/**
 * Reads a PROXY protocol header from the start of `socket` (any byte stream, a TCP socket in
 * practice), puts the bytes after it back (`unshift`), and resolves with it. A malformed or oversized header, or none complete
 * within `timeoutMs`, destroys this socket and rejects; nothing else is affected.
 */
export function readProxyHeader(socket: Duplex, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const finish = (): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onFailure);
      socket.off('close', onClose);
    };
    const fail = (error: Error): void => {
      finish();
      socket.destroy();
      reject(error);
    };
    const onFailure = (error: Error): void => fail(error);
    const onClose = (): void => fail(new Error('connection closed before its PROXY protocol header'));
    const onReadable = (): void => {
      for (
        let chunk = socket.read() as Buffer | null;
        chunk !== null;
        chunk = socket.read() as Buffer | null
      ) {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        const parsed = parseProxyHeader(received);
        if (parsed.status === 'incomplete') continue;
        if (parsed.status === 'invalid') {
          fail(new Error(`bad PROXY protocol header: ${parsed.reason}`));
          return;
        }
        finish();
        const rest = received.subarray(parsed.header.length);
        if (rest.length > 0) socket.unshift(rest);
        resolve(parsed.header);
        return;
      }
    };
    const timer = setTimeout(
      () => fail(new Error(`no complete PROXY protocol header within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('readable', onReadable);
    socket.on('error', onFailure);
    socket.on('close', onClose);
  });
}
