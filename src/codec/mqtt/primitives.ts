import { isUtf8 } from 'node:buffer';
import { MqttCodecError, malformed } from './errors.js';
import { ReasonCode } from './reason-codes.js';

/**
 * Byte-level readers shared by the packet and property decoders. Each reads from
 * `buf` at `pos`, never past `end`, and reports the new position through `cursor`.
 * A single module-level cursor keeps the hot path free of tuple allocations; the
 * decoder is synchronous, so nothing interleaves.
 */
export const cursor = { pos: 0 };

const CHAR_HASH = 0x23;
const CHAR_PLUS = 0x2b;
const CHAR_SLASH = 0x2f;
/** Up to this many bytes, strings are built and written byte by byte. */
const SHORT_STRING = 12;

export function readUint16(buf: Buffer, pos: number, end: number): number {
  if (pos + 2 > end) throw malformed('TRUNCATED', 'two-byte integer runs past the packet');
  cursor.pos = pos + 2;
  return (buf[pos]! << 8) | buf[pos + 1]!;
}

export function readUint32(buf: Buffer, pos: number, end: number): number {
  if (pos + 4 > end) throw malformed('TRUNCATED', 'four-byte integer runs past the packet');
  cursor.pos = pos + 4;
  return buf.readUInt32BE(pos);
}

/** MQTT 1.5.5: at most four bytes, 7 bits each; a fifth continuation byte is malformed. */
export function readVariableInt(buf: Buffer, pos: number, end: number): number {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (pos >= end) throw malformed('TRUNCATED', 'variable byte integer runs past the packet');
    const byte = buf[pos++]!;
    // MQTT-1.5.5-1: the minimum number of bytes, so no zero byte after a continuation.
    if (byte === 0 && i > 0)
      throw malformed('MALFORMED_VARIABLE_INT', 'variable byte integer is not minimally encoded');
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) {
      cursor.pos = pos;
      return value;
    }
    multiplier *= 128;
  }
  throw malformed('MALFORMED_VARIABLE_INT', 'variable byte integer longer than four bytes');
}

export function readBinary(buf: Buffer, pos: number, end: number): Buffer {
  const len = readUint16(buf, pos, end);
  const start = cursor.pos;
  if (start + len > end) throw malformed('TRUNCATED', 'binary data runs past the packet');
  cursor.pos = start + len;
  return buf.subarray(start, start + len);
}

/**
 * Reads a length-prefixed UTF-8 string and checks it is well formed with no U+0000
 * (MQTT-1.5.4-1, MQTT-1.5.4-2). Pure ASCII, the common case, skips the full validator.
 */
export function readUtf8(buf: Buffer, pos: number, end: number): string {
  const len = readUint16(buf, pos, end);
  const start = cursor.pos;
  const stop = start + len;
  if (stop > end) throw malformed('TRUNCATED', 'string runs past the packet');
  cursor.pos = stop;
  return decodeUtf8(buf, start, stop);
}

export function decodeUtf8(buf: Buffer, start: number, stop: number): string {
  // Short ASCII strings are cheaper to build in the checking loop than through Buffer#toString.
  if (stop - start <= SHORT_STRING) {
    let out = '';
    for (let i = start; i < stop; i++) {
      const c = buf[i]!;
      if (c === 0) throw nullCharacter();
      if (c > 0x7f) return decodeNonAscii(buf, i, start, stop);
      out += String.fromCharCode(c);
    }
    return out;
  }
  for (let i = start; i < stop; i++) {
    const c = buf[i]!;
    if (c === 0) throw nullCharacter();
    if (c > 0x7f) return decodeNonAscii(buf, i, start, stop);
  }
  return buf.toString('latin1', start, stop);
}

function decodeNonAscii(buf: Buffer, from: number, start: number, stop: number): string {
  const bytes = buf.subarray(start, stop);
  if (bytes.indexOf(0, from - start) !== -1) throw nullCharacter();
  // isUtf8 rejects overlong forms, encoded surrogates (U+D800..U+DFFF) and code points past U+10FFFF.
  if (!isUtf8(bytes)) {
    throw malformed('INVALID_UTF8', 'string is not well-formed UTF-8 (MQTT-1.5.4-1)');
  }
  return buf.toString('utf8', start, stop);
}

function nullCharacter(): MqttCodecError {
  return malformed('NULL_CHARACTER', 'string contains U+0000 (MQTT-1.5.4-2)');
}

/** Reads a PUBLISH or Will topic name: a string without wildcards (MQTT-3.3.2-2). */
export function readTopicName(buf: Buffer, pos: number, end: number): string {
  const len = readUint16(buf, pos, end);
  const start = cursor.pos;
  const stop = start + len;
  if (stop > end) throw malformed('TRUNCATED', 'topic name runs past the packet');
  cursor.pos = stop;
  // One pass checks for wildcards, U+0000 and non-ASCII bytes together.
  let ascii = true;
  for (let i = start; i < stop; i++) {
    const c = buf[i]!;
    if (c === CHAR_PLUS || c === CHAR_HASH) {
      throw new MqttCodecError(
        'TOPIC_NAME_INVALID',
        ReasonCode.TopicNameInvalid,
        'topic name contains a wildcard (MQTT-3.3.2-2)',
      );
    }
    if (c === 0) throw nullCharacter();
    if (c > 0x7f) ascii = false;
  }
  return ascii ? buf.toString('latin1', start, stop) : decodeNonAscii(buf, start, start, stop);
}

/**
 * Checks a topic filter's wildcards: `#` only as the whole last level and `+` only as a
 * whole level (MQTT-4.7.1-1, MQTT-4.7.1-2), and at least one character (MQTT-4.7.3-1).
 * Returns a description of the fault, or undefined when the filter is valid.
 */
export function topicFilterFault(filter: string): string | undefined {
  const len = filter.length;
  if (len === 0) return 'topic filter is empty (MQTT-4.7.3-1)';
  for (let i = 0; i < len; i++) {
    const c = filter.charCodeAt(i);
    if (c === CHAR_HASH) {
      if (i !== len - 1 || (i > 0 && filter.charCodeAt(i - 1) !== CHAR_SLASH)) {
        return `'#' must be the whole last level in '${filter}' (MQTT-4.7.1-1)`;
      }
    } else if (c === CHAR_PLUS) {
      const before = i === 0 || filter.charCodeAt(i - 1) === CHAR_SLASH;
      const after = i === len - 1 || filter.charCodeAt(i + 1) === CHAR_SLASH;
      if (!before || !after) return `'+' must be a whole level in '${filter}' (MQTT-4.7.1-2)`;
    }
  }
  return undefined;
}

/**
 * Checks a `$share/{ShareName}/{filter}` subscription (MQTT 4.8.2): the share name is at
 * least one character with no `/`, `+` or `#` (MQTT-4.8.2-1, MQTT-4.8.2-2), and a filter follows.
 */
export function sharedFilterFault(filter: string): string | undefined {
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return `shared subscription '${filter}' needs a share name and a filter (MQTT-4.8.2-1)`;
  const shareName = rest.slice(0, slash);
  if (shareName.includes('+') || shareName.includes('#')) {
    return `share name '${shareName}' contains a wildcard (MQTT-4.8.2-2)`;
  }
  return topicFilterFault(rest.slice(slash + 1));
}

/** The number of bytes a Variable Byte Integer takes. */
export function variableIntLength(value: number): number {
  if (value < 128) return 1;
  if (value < 16_384) return 2;
  if (value < 2_097_152) return 3;
  return 4;
}

/** Writes a Variable Byte Integer and returns the position after it. */
export function writeVariableInt(buf: Buffer, pos: number, value: number): number {
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    buf[pos++] = byte;
  } while (value > 0);
  return pos;
}

/** Byte length of a string as UTF-8; short strings are measured in JS, longer ones natively. */
export function utf8Length(str: string): number {
  const len = str.length;
  if (len > 8) return Buffer.byteLength(str, 'utf8');
  for (let i = 0; i < len; i++) {
    if (str.charCodeAt(i) > 0x7f) return Buffer.byteLength(str, 'utf8');
  }
  return len;
}

/** Writes a length-prefixed string whose UTF-8 length the caller computed. */
export function writeUtf8(buf: Buffer, pos: number, str: string, byteLength: number): number {
  buf[pos] = byteLength >> 8;
  buf[pos + 1] = byteLength & 0xff;
  pos += 2;
  if (byteLength === str.length) {
    // Equal lengths mean pure ASCII: short ones are quickest copied by hand.
    if (byteLength <= 16) {
      for (let i = 0; i < byteLength; i++) buf[pos + i] = str.charCodeAt(i);
    } else {
      buf.write(str, pos, byteLength, 'latin1');
    }
  } else {
    buf.write(str, pos, byteLength, 'utf8');
  }
  return pos + byteLength;
}

export function writeBinary(buf: Buffer, pos: number, data: Buffer): number {
  const len = data.length;
  buf[pos] = len >> 8;
  buf[pos + 1] = len & 0xff;
  data.copy(buf, pos + 2);
  return pos + 2 + len;
}
