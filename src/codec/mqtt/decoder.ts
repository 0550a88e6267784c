import { MqttCodecError, malformed, protocolError } from './errors.js';
import { parsePacket } from './parse.js';
import { ReasonCode } from './reason-codes.js';
import { MAX_VARIABLE_BYTE_INTEGER, type Packet, type ProtocolVersion } from './types.js';

export interface DecoderOptions {
  /**
   * The largest packet accepted, fixed header included (MQTT 3.1.2.11.4). Checked from the
   * fixed header, before any of the body is buffered. Default: the protocol maximum.
   */
  maxPacketSize?: number;
  /** Set when the version is known up front (a client decoding a server); a server learns it from CONNECT. */
  protocolVersion?: ProtocolVersion;
}

/** The protocol maximum: a one-byte type, a four-byte Remaining Length and that many bytes. */
export const MAX_PACKET_SIZE = 1 + 4 + MAX_VARIABLE_BYTE_INTEGER;

/**
 * Required fixed-header flags per packet type (MQTT 2.1.3, MQTT-2.1.3-1): -1 means any
 * (PUBLISH, checked by its parser), -2 a reserved type.
 */
const FIXED_FLAGS = [-2, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];
const PACKET_NAMES = [
  'reserved',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'AUTH',
];

/**
 * A streaming MQTT decoder. Feed it socket chunks of any size; it calls `onPacket` for
 * each complete packet, in order. A malformed packet throws an MqttCodecError, after which
 * the decoder refuses further input: the connection is to be closed (MQTT 4.13).
 *
 * Payloads and binary properties are views of the fed chunk, not copies, when a packet
 * lies within one chunk: copy them to keep them beyond the chunk's natural lifetime.
 * A packet split across chunks is assembled once, when its last byte arrives, so memory
 * held for it never exceeds what the peer has actually sent.
 */
export class MqttDecoder {
  protocolVersion: ProtocolVersion | undefined;
  maxPacketSize: number;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Total size of the packet being assembled, or 0 while its fixed header is incomplete. */
  private pendingTotal = 0;
  private failure: MqttCodecError | undefined;

  constructor(
    private readonly onPacket: (packet: Packet) => void,
    options: DecoderOptions = {},
  ) {
    this.protocolVersion = options.protocolVersion;
    this.maxPacketSize = options.maxPacketSize ?? MAX_PACKET_SIZE;
  }

  /** Bytes held for an incomplete packet. */
  get bufferedBytes(): number {
    return this.pendingLength;
  }

  /** Decodes what `chunk` completes. Throws MqttCodecError on bad input, now and on every later call. */
  feed(chunk: Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      let pos = 0;
      if (this.pendingLength > 0) {
        pos = this.completePending(chunk);
        if (pos < 0) return;
      }
      this.scan(chunk, pos);
    } catch (error) {
      if (error instanceof MqttCodecError) this.failure = error;
      throw error;
    }
  }

  /** Decodes every whole packet in `chunk` from `pos`, keeping the tail for later. */
  private scan(chunk: Buffer, pos: number): void {
    const length = chunk.length;
    while (pos < length) {
      const total = this.frameLength(chunk, pos, length);
      if (total < 0 || pos + total > length) {
        this.hold(chunk.subarray(pos), Math.max(total, 0));
        return;
      }
      this.dispatch(chunk, pos, pos + total);
      pos += total;
    }
  }

  /**
   * Adds the start of `chunk` to the held partial packet. Returns where the rest of the
   * chunk starts, or -1 when the chunk was wholly consumed without completing it.
   */
  private completePending(chunk: Buffer): number {
    if (this.pendingTotal === 0) {
      // The fixed header itself was split: it is at most 5 bytes, so join just those.
      const head = Buffer.concat([...this.pending, chunk.subarray(0, 5)]);
      const total = this.frameLength(head, 0, head.length);
      if (total < 0) {
        this.hold(chunk, 0);
        return -1;
      }
      this.pendingTotal = total;
    }
    const need = this.pendingTotal - this.pendingLength;
    if (chunk.length < need) {
      this.hold(chunk, this.pendingTotal);
      return -1;
    }
    this.pending.push(chunk.subarray(0, need));
    const packet = Buffer.concat(this.pending, this.pendingTotal);
    this.pending = [];
    this.pendingLength = 0;
    this.pendingTotal = 0;
    this.dispatch(packet, 0, packet.length);
    return need;
  }

  private hold(part: Buffer, total: number): void {
    this.pending.push(part);
    this.pendingLength += part.length;
    this.pendingTotal = total;
  }

  /**
   * Reads and checks the fixed header at `pos`. Returns the whole packet's size, or -1 when
   * the header is not complete yet. Type, flags and size are checked here, before any of the
   * body is buffered, so a hostile peer cannot make us hold a packet we would refuse.
   */
  private frameLength(buf: Buffer, pos: number, end: number): number {
    const first = buf[pos]!;
    const type = first >> 4;
    const flags = first & 0x0f;
    const required = FIXED_FLAGS[type]!;
    if (required === -2 || (type === 15 && this.protocolVersion !== undefined && this.protocolVersion < 5)) {
      throw malformed('RESERVED_PACKET_TYPE', `reserved packet type ${type}`);
    }
    if (required >= 0 && flags !== required && !(this.protocolVersion === 3 && flags === (required | 8))) {
      // MQTT-2.1.3-1; MQTT 3.1 let PUBREL, SUBSCRIBE and UNSUBSCRIBE carry DUP as well.
      throw malformed(
        'BAD_FIXED_HEADER_FLAGS',
        `${PACKET_NAMES[type]} with fixed header flags ${flags} (MQTT-2.1.3-1)`,
      );
    }
    if (this.protocolVersion === undefined && type !== 1) {
      // MQTT-3.1.0-1: the first packet from a client is CONNECT.
      throw protocolError('VERSION_UNKNOWN', `${PACKET_NAMES[type]} before CONNECT (MQTT-3.1.0-1)`);
    }
    let remaining = 0;
    let multiplier = 1;
    let i = pos + 1;
    for (;;) {
      if (i >= end) return -1;
      const byte = buf[i++]!;
      // MQTT-1.5.5-1: the minimum number of bytes, so no zero byte after a continuation.
      if (byte === 0 && i - pos > 2)
        throw malformed('MALFORMED_VARIABLE_INT', 'Remaining Length is not minimally encoded');
      remaining += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) break;
      if (i - pos > 4)
        throw malformed('MALFORMED_VARIABLE_INT', 'Remaining Length longer than four bytes (MQTT 1.5.5)');
      multiplier *= 128;
      // Unfinished, the length already exceeds the limit: refuse without waiting for the rest.
      const atLeast = i - pos + 1 + remaining + multiplier;
      if (atLeast > this.maxPacketSize) throw this.tooLarge(type, `at least ${atLeast}`);
    }
    const total = i - pos + remaining;
    if (total > this.maxPacketSize) throw this.tooLarge(type, String(total));
    return total;
  }

  private tooLarge(type: number, size: string): MqttCodecError {
    return new MqttCodecError(
      'PACKET_TOO_LARGE',
      ReasonCode.PacketTooLarge,
      `${PACKET_NAMES[type]} of ${size} bytes exceeds the maximum packet size of ${this.maxPacketSize}`,
    );
  }

  private dispatch(buf: Buffer, start: number, end: number): void {
    const first = buf[start]!;
    let pos = start + 1;
    while (buf[pos]! & 0x80) pos++;
    pos++;
    const type = first >> 4;
    let version = this.protocolVersion;
    const packet = parsePacket(type, first & 0x0f, buf, pos, end, version ?? 5);
    if (packet.type === 'connect' && version === undefined) {
      version = packet.protocolVersion;
      this.protocolVersion = version;
    }
    this.onPacket(packet);
  }
}

/** Decodes a buffer holding whole packets; a convenience for tests and tools. */
export function decodeAll(bytes: Buffer, options: DecoderOptions = {}): Packet[] {
  const packets: Packet[] = [];
  const decoder = new MqttDecoder((p) => packets.push(p), options);
  decoder.feed(bytes);
  if (decoder.bufferedBytes > 0)
    throw malformed('TRUNCATED', `${decoder.bufferedBytes} bytes of an incomplete packet`);
  return packets;
}
