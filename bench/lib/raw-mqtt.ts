/**
 * The MQTT 3.1.1 client connection of the load generators (bench/loadgen.ts, bench/persist.ts):
 * a raw `net` socket with Nagle off (or, for bench/transports.ts, a TLS socket or a WebSocket
 * seen as a byte stream), packets built with Cicada's codec. The hot receive path is a minimal
 * frame scanner that reads PUBLISH and acknowledgement frames in place, without decoding or
 * allocating, and hands them to the subclass; acknowledgements queued while handling a chunk
 * go out in one write. Anything else goes through `decodeAll` to `onControl`.
 */
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { createWebSocketStream, WebSocket } from 'ws';
import { decodeAll, encode, type Packet } from '../../src/codec/mqtt/index.js';

/** Every broker under test speaks MQTT 3.1.1. */
export const V = 4 as const;

/** Total size of the frame starting at `pos`, or -1 while its fixed header is incomplete. */
export function frameLength(buf: Buffer, pos: number, end: number): number {
  let remaining = 0;
  let mult = 1;
  for (let i = pos + 1; i < end && i - pos <= 4; i++) {
    const byte = buf[i]!;
    remaining += (byte & 0x7f) * mult;
    if ((byte & 0x80) === 0) return i + 1 - pos + remaining;
    mult *= 128;
  }
  return -1;
}

/** First bytes of the acknowledgements a client sends (MQTT 3.1.1, 2.2.1). */
export const PUBACK = 0x40;
export const PUBREC = 0x50;
export const PUBREL = 0x62;
export const PUBCOMP = 0x70;

/** Where connections register themselves and report errors. */
export interface ConnectionOwner {
  readonly conns: Set<RawConnection>;
  error(message: string): void;
}

/**
 * How a connection reaches the broker when not over plain TCP: TLS (`tls`), MQTT over
 * WebSocket (`ws`, subprotocol `mqtt`) or both (`wss`).
 */
export interface ClientTransport {
  scheme: 'tcp' | 'tls' | 'ws' | 'wss';
  /** TLS: the CA certificate (PEM) that signed the broker's; undefined: not verified. */
  ca?: string;
  /** WebSocket: the URL path (default `/mqtt`). */
  path?: string;
}

/** A byte stream to `host:port` over `transport` (plain TCP when undefined). */
export function openStream(host: string, port: number, transport?: ClientTransport): Duplex {
  const scheme = transport?.scheme ?? 'tcp';
  const tlsOptions = { ca: transport?.ca, rejectUnauthorized: transport?.ca !== undefined };
  if (scheme === 'tcp') return connect({ host, port, noDelay: true });
  if (scheme === 'tls') return tlsConnect({ host, port, ...tlsOptions }).setNoDelay(true);
  const url = `${scheme}://${host}:${port}${transport?.path ?? '/mqtt'}`;
  // ws turns Nagle off on its socket; compression would measure zlib rather than the broker.
  const ws = new WebSocket(url, 'mqtt', { perMessageDeflate: false, ...tlsOptions });
  const stream = createWebSocketStream(ws);
  // The stream only closes once both sides ended; a close by the broker must show at once.
  ws.once('close', () => stream.destroy());
  return stream;
}

/** A user name and password for CONNECT. */
export interface Credentials {
  username: string;
  password: string;
}

export abstract class RawConnection {
  readonly socket: Duplex;
  /** CONNACK received: from then on an error or a close is reported. */
  established = false;
  /** Closed on purpose: an error or a close is not reported. */
  closing = false;
  onControl: (p: Packet) => void = () => {};
  private leftover: Buffer | undefined;
  private ackBuf: Buffer | undefined;
  private ackLen = 0;

  constructor(host: string, port: number, owner: ConnectionOwner, transport?: ClientTransport) {
    this.socket = openStream(host, port, transport);
    owner.conns.add(this);
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.receive(chunk);
      } catch (err) {
        owner.error(`decode: ${(err as Error).message}`);
        this.socket.destroy();
        return;
      }
      this.flushAcks();
      this.afterChunk();
    });
    this.socket.on('error', (err) => {
      if (this.established && !this.closing) owner.error(err.message);
    });
    this.socket.on('close', () => {
      owner.conns.delete(this);
      if (this.established && !this.closing) owner.error('connection closed by broker');
    });
  }

  /** Scanner path: a PUBLISH, its packet identifier 0 at QoS 0; its payload is buf[start, end). */
  protected abstract publishFrame(
    qos: number,
    id: number,
    dup: boolean,
    buf: Buffer,
    start: number,
    end: number,
  ): void;

  /** Scanner path: a PUBACK, PUBREC, PUBREL or PUBCOMP (packet `type` 4 to 7) for packet `id`. */
  protected abstract ackFrame(type: number, id: number): void;

  /** Handles a chunk received: the scanner, unless overridden. */
  protected receive(chunk: Buffer): void {
    this.scan(chunk);
  }

  /** After each chunk received, once the acknowledgements it called for are written. */
  protected afterChunk(): void {}

  /** Queues a 4-byte acknowledgement (`first`: PUBACK, PUBREC, PUBREL or PUBCOMP) for packet `id`. */
  protected queueAck(first: number, id: number): void {
    if (this.ackBuf === undefined || this.ackLen + 4 > this.ackBuf.length) {
      const next = Buffer.allocUnsafe(Math.max(256, (this.ackBuf?.length ?? 0) * 2));
      if (this.ackBuf !== undefined) this.ackBuf.copy(next, 0, 0, this.ackLen);
      this.ackBuf = next;
    }
    const b = this.ackBuf;
    b[this.ackLen] = first;
    b[this.ackLen + 1] = 2;
    b[this.ackLen + 2] = id >> 8;
    b[this.ackLen + 3] = id & 0xff;
    this.ackLen += 4;
  }

  /** Sends the acknowledgements queued while handling one chunk in a single write. */
  private flushAcks(): void {
    if (this.ackLen === 0) return;
    // A copy: the socket may still hold the bytes when the buffer is reused.
    this.socket.write(Buffer.from(this.ackBuf!.subarray(0, this.ackLen)));
    this.ackLen = 0;
  }

  /** Scanner path. A frame split across chunks is joined once, when its last byte arrives. */
  private scan(chunk: Buffer): void {
    let start = 0;
    const held = this.leftover;
    if (held !== undefined) {
      const head = held.length >= 5 ? held : Buffer.concat([held, chunk.subarray(0, 5)]);
      const total = frameLength(head, 0, head.length);
      const need = total - held.length;
      if (total < 0 || need > chunk.length) {
        this.leftover = Buffer.concat([held, chunk]);
        return;
      }
      this.leftover = undefined;
      const frame = Buffer.concat([held, chunk.subarray(0, need)]);
      this.frames(frame, 0, frame.length);
      start = need;
    }
    const pos = this.frames(chunk, start, chunk.length);
    if (pos < chunk.length) this.leftover = Buffer.from(chunk.subarray(pos));
  }

  /** Handles every whole frame in buf[pos, end); returns where the first incomplete one starts. */
  private frames(buf: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const total = frameLength(buf, pos, end);
      if (total < 0 || pos + total > end) return pos;
      const first = buf[pos]!;
      const type = first >> 4;
      const frameEnd = pos + total;
      // Past the fixed header.
      let p = pos + 1;
      while (buf[p]! & 0x80) p++;
      p++;
      if (type === 3) {
        const qos = (first >> 1) & 3;
        p += 2 + ((buf[p]! << 8) | buf[p + 1]!);
        let id = 0;
        if (qos > 0) {
          id = (buf[p]! << 8) | buf[p + 1]!;
          p += 2;
        }
        this.publishFrame(qos, id, (first & 8) !== 0, buf, p, frameEnd);
      } else if (type >= 4 && type <= 7 && frameEnd - p >= 2) {
        this.ackFrame(type, (buf[p]! << 8) | buf[p + 1]!);
      } else {
        for (const packet of decodeAll(buf.subarray(pos, frameEnd), { protocolVersion: V })) {
          this.onControl(packet);
        }
      }
      pos = frameEnd;
    }
    return pos;
  }

  /** Connects and completes CONNECT/CONNACK; resolves with CONNACK's session present flag. */
  handshake(
    clientId: string,
    clean: boolean,
    keepAlive: number,
    credentials?: Credentials,
  ): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => reject(new Error(`${clientId}: ${err.message}`));
      const login =
        credentials === undefined
          ? {}
          : { username: credentials.username, password: Buffer.from(credentials.password) };
      // Written at once: every stream here holds writes until it is connected (and secured).
      this.socket.write(
        encode({ type: 'connect', protocolVersion: V, clean, keepAlive, clientId, ...login }, V),
      );
      this.socket.once('error', fail);
      this.socket.once('close', () => fail(new Error('closed during handshake')));
      this.onControl = (p) => {
        if (p.type !== 'connack') return;
        this.established = true;
        if (p.reasonCode !== 0) reject(new Error(`${clientId}: CONNACK return code ${p.reasonCode}`));
        else resolve(p.sessionPresent);
      };
    });
  }

  /** SUBSCRIBE to `filter` at `qos`; fails unless exactly that QoS is granted. */
  subscribe(filter: string, qos: 0 | 1 | 2): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onControl = (p) => {
        if (p.type !== 'suback') return;
        const code = p.reasonCodes[0];
        if (code === undefined || code >= 0x80) reject(new Error(`SUBSCRIBE ${filter} refused (${code})`));
        else if (code !== qos) reject(new Error(`SUBSCRIBE ${filter}: granted QoS ${code}, asked ${qos}`));
        else resolve();
      };
      this.socket.write(
        encode({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: filter, qos }] }, V),
      );
    });
  }
}
