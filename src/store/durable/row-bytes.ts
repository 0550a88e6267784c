/**
 * Delivery rows as raw MessagePack bytes, for the hot write path: encoding a row (what
 * codec.encodeDelivery + msgpackr give, read back by the same decoder) into one reused buffer,
 * and reading a stored row's message id without decoding the row. Format as in codec.ts.
 */
import { CorruptValue } from './codec.js';

function corrupt(what: string): never {
  throw new CorruptValue(what);
}

/** What lmdb takes as a value already encoded: `{ [BINARY]: bytes }` is written as `bytes`. */
const BINARY = '\x10binary-data\x02';

/**
 * Encodes delivery rows as MessagePack (what `encodeDelivery` + msgpackr give, read back by
 * the same decoder) into one reused buffer, for `put` inside a write transaction, which copies
 * the bytes at once: no allocation per row. The value returned is valid until the next call.
 */
export class DeliveryRowEncoder {
  /** Its own ArrayBuffer from offset 0: lmdb locates the bytes by `start`/`end` in it. */
  #buffer = Buffer.allocUnsafeSlow(256);
  #value: Record<string, unknown> = { [BINARY]: this.#buffer };
  /** The message id, qos and retain flag of the row in the buffer, if it has no other field. */
  #last: string | undefined;
  #lastQos = 0;
  #lastRetain = false;

  encode(
    messageId: string,
    qos: number,
    retain: boolean,
    subscriptionIds: readonly number[] | undefined,
    packetId: number | undefined,
    released: boolean | undefined,
  ): unknown {
    // A message queued for several sessions gives the same row several times in a row.
    const plain = subscriptionIds === undefined && packetId === undefined && released === undefined;
    if (plain && this.#last === messageId && this.#lastQos === qos && this.#lastRetain === retain) {
      return this.#value;
    }
    this.#last = plain ? messageId : undefined;
    this.#lastQos = qos;
    this.#lastRetain = retain;
    const most = messageId.length * 3;
    const needed = 32 + most + (subscriptionIds === undefined ? 0 : 5 * subscriptionIds.length);
    if (needed > this.#buffer.length) {
      this.#buffer = Buffer.allocUnsafeSlow(needed * 2);
      this.#value = { [BINARY]: this.#buffer };
    }
    const b = this.#buffer;
    let p = 0;
    b[p++] = 0x96; // fixarray of 6
    const header = most < 32 ? 1 : most < 0x100 ? 2 : most < 0x10000 ? 3 : 5;
    const n = writeUtf8(b, messageId, p + header);
    if (header === 1) b[p] = 0xa0 | n;
    else if (header === 2) {
      b[p] = 0xd9;
      b[p + 1] = n;
    } else if (header === 3) {
      b[p] = 0xda;
      b.writeUInt16BE(n, p + 1);
    } else {
      b[p] = 0xdb;
      b.writeUInt32BE(n, p + 1);
    }
    p += header + n;
    p = writeUint(b, p, qos);
    b[p++] = retain ? 0xc3 : 0xc2;
    if (subscriptionIds === undefined) b[p++] = 0xc0;
    else {
      const length = subscriptionIds.length;
      if (length < 16) b[p++] = 0x90 | length;
      else if (length < 0x10000) {
        b[p++] = 0xdc;
        b.writeUInt16BE(length, p);
        p += 2;
      } else {
        b[p++] = 0xdd;
        b.writeUInt32BE(length, p);
        p += 4;
      }
      for (const id of subscriptionIds) p = writeUint(b, p, id);
    }
    if (packetId === undefined) b[p++] = 0xc0;
    else p = writeUint(b, p, packetId);
    b[p++] = released === undefined ? 0xc0 : released ? 0xc3 : 0xc2;
    const view = b as Buffer & { start?: number; end?: number };
    view.start = 0;
    view.end = p;
    return this.#value;
  }
}

/** Writes `text` as UTF-8 at `offset` (room checked by the caller); returns the byte count. */
function writeUtf8(b: Buffer, text: string, offset: number): number {
  // Short ASCII strings (message ids) are quicker copied here than through Buffer#write.
  const length = text.length;
  if (length <= 64) {
    let i = 0;
    for (; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      b[offset + i] = c;
    }
    if (i === length) return length;
  }
  return b.write(text, offset, 'utf8');
}

/** A non-negative integer below 2^32, as MessagePack. */
function writeUint(b: Buffer, p: number, n: number): number {
  if (n < 0x80) {
    b[p] = n;
    return p + 1;
  }
  if (n < 0x100) {
    b[p] = 0xcc;
    b[p + 1] = n;
    return p + 2;
  }
  if (n < 0x10000) {
    b[p] = 0xcd;
    b[p + 1] = n >>> 8;
    b[p + 2] = n & 0xff;
    return p + 3;
  }
  b[p] = 0xce;
  b.writeUInt32BE(n, p + 1);
  return p + 5;
}

/**
 * The message id of a stored delivery row from its raw MessagePack bytes (lmdb's
 * `getBinaryFast`), without decoding the rest.
 */
export function rawDeliveryMessageId(bytes: Uint8Array): string {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = b.length;
  let p = 0;
  const head = b[p++];
  let count: number;
  if (head === undefined) return corrupt('delivery is empty');
  if ((head & 0xf0) === 0x90) count = head & 0x0f;
  else if (head === 0xdc && end >= 3) {
    count = b.readUInt16BE(1);
    p = 3;
  } else if (head === 0xdd && end >= 5) {
    count = b.readUInt32BE(1);
    p = 5;
  } else return corrupt('delivery is not a tuple of 6');
  if (count < 6) corrupt('delivery is not a tuple of 6');
  const s = b[p++];
  let length: number;
  if (s === undefined) return corrupt('delivery message id is not a string');
  if ((s & 0xe0) === 0xa0) length = s & 0x1f;
  else if (s === 0xd9 && p + 1 <= end) {
    length = b[p]!;
    p += 1;
  } else if (s === 0xda && p + 2 <= end) {
    length = b.readUInt16BE(p);
    p += 2;
  } else if (s === 0xdb && p + 4 <= end) {
    length = b.readUInt32BE(p);
    p += 4;
  } else return corrupt('delivery message id is not a string');
  if (p + length > end) corrupt('delivery message id is cut short');
  return b.toString('utf8', p, p + length);
}
