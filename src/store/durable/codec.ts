/**
 * On-disk layout of the durable store, format 1: how keys are built and how values are laid
 * out. Values are MessagePack arrays (tuples, field order fixed by the format version, `null`
 * for an absent optional field) encoded by lmdb's msgpackr with records off, so every value is
 * plain MessagePack. Decoders validate shape and ranges and throw `CorruptValue` rather than
 * hand back something that is not what was written.
 *
 * Tables (LMDB named databases), all keys binary:
 *   meta        'format' → 1, 'nextSid' → next session number        (string keys)
 *   sessions    name(clientId) → sid                                  client id → session number
 *   records     sid(6) → SessionRecord tuple
 *   deliveries  sid(6) seq(8) → delivery tuple (message by id)       a session's queue, in seq order
 *   inbound     sid(6) packetId(2) → true                             inbound QoS 2 awaiting PUBREL
 *   retained    name(topic) → [topic, message id]
 *   messages    name(message id) → Message tuple                      each message body once
 *   refs        name(message id) → count                              deliveries + retained holding it
 *
 * A session number (sid) is allocated when a client id is first saved and never reused, so a
 * session's rows are one contiguous key range, `sid(6)` up to `sid + 1`, deleted as one.
 */
import { createHash } from 'node:crypto';
import type { Message, MessageProperties, QoS, SubscriptionOptions } from '../../broker/message.js';
import type { SessionRecord, StoredDelivery, StoredWill } from '../store.js';

export const FORMAT_VERSION = 1;

/** Names may be stored inline up to this many UTF-8 bytes; longer ones are hashed (LMDB keys are small). */
const MAX_INLINE_NAME = 400;
const INLINE = 0x00;
const HASHED = 0x01;

/** Thrown by decoders when a stored value is not what format 1 allows. */
export class CorruptValue extends Error {}

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * The key for a client id, topic or message id: a tag byte, then the UTF-8 bytes, or for long
 * names their SHA-256 (the full name is kept in the value or checked at open).
 */
export function nameKey(name: string): Buffer {
  const utf8 = Buffer.from(name, 'utf8');
  if (utf8.length <= MAX_INLINE_NAME) {
    const key = Buffer.allocUnsafe(utf8.length + 1);
    key[0] = INLINE;
    utf8.copy(key, 1);
    return key;
  }
  const key = Buffer.allocUnsafe(33);
  key[0] = HASHED;
  createHash('sha256').update(utf8).digest().copy(key, 1);
  return key;
}

export const SID_BYTES = 6;
export const MAX_SID = 2 ** 48 - 1;

export function sidKey(sid: number): Buffer {
  const key = Buffer.allocUnsafe(SID_BYTES);
  key.writeUIntBE(sid, 0, SID_BYTES);
  return key;
}

/** Writes `value` as 8 bytes whose unsigned byte order is the numeric order (IEEE 754 trick). */
function writeOrderedNumber(buffer: Buffer, value: number, offset: number): void {
  buffer.writeDoubleBE(value === 0 ? 0 : value, offset); // -0 and 0 are one seq
  if (buffer[offset]! & 0x80) {
    for (let i = offset; i < offset + 8; i++) buffer[i] = ~buffer[i]! & 0xff;
  } else {
    buffer[offset] = buffer[offset]! | 0x80;
  }
}

/** Scratch space of readOrderedNumber (no allocation per key read). */
const ordered = Buffer.alloc(8);

function readOrderedNumber(buffer: Uint8Array, offset: number): number {
  if (buffer[offset]! & 0x80) {
    for (let i = 0; i < 8; i++) ordered[i] = buffer[offset + i]!;
    ordered[0] = ordered[0]! & 0x7f;
  } else {
    for (let i = 0; i < 8; i++) ordered[i] = ~buffer[offset + i]! & 0xff;
  }
  return ordered.readDoubleBE(0);
}

export function deliveryKey(sid: number, seq: number): Buffer {
  return deliveryKeyInto(Buffer.allocUnsafe(SID_BYTES + 8), sid, seq);
}

/** Writes the deliveries key of (sid, seq) into `key` (SID_BYTES + 8 bytes) and returns it. */
export function deliveryKeyInto(key: Buffer, sid: number, seq: number): Buffer {
  key.writeUIntBE(sid, 0, SID_BYTES);
  writeOrderedNumber(key, seq, SID_BYTES);
  return key;
}

export function inboundKey(sid: number, packetId: number): Buffer {
  const key = Buffer.allocUnsafe(SID_BYTES + 2);
  key.writeUIntBE(sid, 0, SID_BYTES);
  key.writeUInt16BE(packetId, SID_BYTES);
  return key;
}

/** The session number at the start of a records, deliveries or inbound key. */
export function readSid(key: Uint8Array): number {
  // 6 bytes big-endian: 2 high bytes, then 4 low ones (exact below 2^53).
  return (
    (key[0]! * 256 + key[1]!) * 0x1_0000_0000 +
    ((key[2]! << 24) >>> 0) +
    (key[3]! << 16) +
    (key[4]! << 8) +
    key[5]!
  );
}

/** The seq of a deliveries key (after checking its length). */
export function readDeliverySeq(key: Uint8Array): number {
  if (key.byteLength !== SID_BYTES + 8) throw new CorruptValue(`delivery key of ${key.byteLength} bytes`);
  return readOrderedNumber(key, SID_BYTES);
}

/** Splits a deliveries or inbound key into session number and seq / packet id. */
export function parseSessionKey(key: Uint8Array, kind: 'delivery' | 'inbound'): [sid: number, n: number] {
  if (kind === 'delivery') return [readSid(key), readDeliverySeq(key)];
  if (key.byteLength !== SID_BYTES + 2) throw new CorruptValue(`inbound key of ${key.byteLength} bytes`);
  return [readSid(key), key[SID_BYTES]! * 256 + key[SID_BYTES + 1]!];
}

export function parseSidKey(key: Uint8Array): number {
  if (key.byteLength !== SID_BYTES) throw new CorruptValue(`session key of ${key.byteLength} bytes`);
  return readSid(key);
}

/** Whether `key` is the key of `name` (without building it, for inline names). */
export function isNameKey(key: Uint8Array, name: string): boolean {
  const length = name.length;
  if (key.byteLength === length + 1 && key[0] === INLINE) {
    // As many bytes as UTF-16 units: equal only for the same ASCII name, compared char by char.
    for (let i = 0; i < length; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80 || key[i + 1] !== c) return false;
    }
    return true;
  }
  return nameKey(name).equals(key);
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

function fail(what: string): never {
  throw new CorruptValue(what);
}

function tuple(value: unknown, min: number, what: string): unknown[] {
  if (!Array.isArray(value) || value.length < min) fail(`${what} is not a tuple of ${min}`);
  return value;
}

function str(value: unknown, what: string): string {
  return typeof value === 'string' ? value : fail(`${what} is not a string`);
}

function num(value: unknown, what: string): number {
  return typeof value === 'number' && !Number.isNaN(value) ? value : fail(`${what} is not a number`);
}

function uint(value: unknown, max: number, what: string): number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= max
    ? (value as number)
    : fail(`${what} is not an integer in 0..${max}`);
}

function bool(value: unknown, what: string): boolean {
  return typeof value === 'boolean' ? value : fail(`${what} is not a boolean`);
}

/**
 * A copy of binary data: values are decoded with msgpackr's `copyBuffers` off (tables.ts), so
 * what it gives is a view of LMDB's read buffer, valid until the next read. Small copies come
 * from Node's buffer pool, not one ArrayBuffer each.
 */
function buf(value: unknown, what: string): Buffer {
  if (value instanceof Uint8Array) return Buffer.from(value);
  return fail(`${what} is not binary`);
}

function qos(value: unknown, what: string): QoS {
  return uint(value, 2, what) as QoS;
}

/** `null` (absent) or the decoded value. */
function opt<T>(value: unknown, decode: (v: unknown) => T): T | undefined {
  return value === null || value === undefined ? undefined : decode(value);
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Payload and correlation data go in as the bytes viewed (a sliced Buffer stores only its slice). */
export function encodeMessage(m: Message): unknown[] {
  return [
    m.id,
    m.topic,
    m.payload,
    m.qos,
    m.retain,
    m.createdAt,
    m.expiresAt ?? null,
    m.origin ?? null,
    m.properties === undefined ? null : encodeProperties(m.properties),
  ];
}

function encodeProperties(p: MessageProperties): unknown[] {
  return [
    p.payloadFormatIndicator ?? null,
    p.contentType ?? null,
    p.responseTopic ?? null,
    p.correlationData ?? null,
    p.userProperties === undefined ? null : p.userProperties.flat(),
  ];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function decodeMessage(value: unknown): Message {
  const t = tuple(value, 9, 'message');
  const m: Mutable<Message> = {
    id: str(t[0], 'message id'),
    topic: str(t[1], 'message topic'),
    payload: buf(t[2], 'message payload'),
    qos: qos(t[3], 'message qos'),
    retain: bool(t[4], 'message retain'),
    createdAt: num(t[5], 'message createdAt'),
  };
  // Optional fields tested inline: this runs once per stored message at open.
  if (t[6] !== null && t[6] !== undefined) m.expiresAt = num(t[6], 'message expiresAt');
  if (t[7] !== null && t[7] !== undefined) m.origin = str(t[7], 'message origin');
  if (t[8] !== null && t[8] !== undefined) m.properties = decodeProperties(t[8]);
  return m;
}

function decodeProperties(value: unknown): MessageProperties {
  const t = tuple(value, 5, 'message properties');
  const p: MessageProperties = {};
  const pfi = opt(t[0], (v) => bool(v, 'payloadFormatIndicator'));
  if (pfi !== undefined) p.payloadFormatIndicator = pfi;
  const contentType = opt(t[1], (v) => str(v, 'contentType'));
  if (contentType !== undefined) p.contentType = contentType;
  const responseTopic = opt(t[2], (v) => str(v, 'responseTopic'));
  if (responseTopic !== undefined) p.responseTopic = responseTopic;
  const correlationData = opt(t[3], (v) => buf(v, 'correlationData'));
  if (correlationData !== undefined) p.correlationData = correlationData;
  const flat = opt(t[4], (v) => tuple(v, 0, 'userProperties'));
  if (flat !== undefined) {
    if (flat.length % 2 !== 0) fail('userProperties has an odd length');
    const pairs: [string, string][] = [];
    for (let i = 0; i < flat.length; i += 2) {
      pairs.push([str(flat[i], 'user property name'), str(flat[i + 1], 'user property value')]);
    }
    p.userProperties = pairs;
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Session records

/** Subscription options packed like the MQTT 5 options byte: qos, noLocal, retainAsPublished, handling. */
function packOptions(o: SubscriptionOptions): number {
  return o.qos | (o.noLocal ? 4 : 0) | (o.retainAsPublished ? 8 : 0) | (o.retainHandling << 4);
}

export function encodeRecord(r: SessionRecord): unknown[] {
  const subscriptions: unknown[] = [];
  for (const [filter, o] of r.subscriptions) {
    subscriptions.push(filter, packOptions(o), o.subscriptionId ?? null);
  }
  return [
    r.clientId,
    r.expiryInterval,
    subscriptions,
    r.disconnectedAt ?? null,
    r.will === undefined ? null : [r.will.publishAt, encodeMessage(r.will.message)],
    r.liveWill === undefined ? null : [r.liveWill.delay, encodeMessage(r.liveWill.message)],
  ];
}

export function decodeRecord(value: unknown): SessionRecord {
  const t = tuple(value, 6, 'session record');
  const flat = tuple(t[2], 0, 'subscriptions');
  if (flat.length % 3 !== 0) fail('subscriptions have a length not a multiple of 3');
  const subscriptions: [string, SubscriptionOptions][] = [];
  for (let i = 0; i < flat.length; i += 3) {
    const packed = uint(flat[i + 1], 0x2f, 'subscription options');
    const handling = packed >> 4;
    if ((packed & 3) === 3 || handling > 2) fail('subscription options out of range');
    const options: SubscriptionOptions = {
      qos: (packed & 3) as QoS,
      noLocal: (packed & 4) !== 0,
      retainAsPublished: (packed & 8) !== 0,
      retainHandling: handling as 0 | 1 | 2,
    };
    const id = opt(flat[i + 2], (v) => uint(v, 268_435_455, 'subscription identifier'));
    if (id !== undefined) options.subscriptionId = id;
    subscriptions.push([str(flat[i], 'subscription filter'), options]);
  }
  const record: SessionRecord = {
    clientId: str(t[0], 'client id'),
    expiryInterval: uint(t[1], 0xffffffff, 'session expiry interval'),
    subscriptions,
  };
  const disconnectedAt = opt(t[3], (v) => num(v, 'disconnectedAt'));
  if (disconnectedAt !== undefined) record.disconnectedAt = disconnectedAt;
  const will = opt(t[4], decodeWill);
  if (will !== undefined) record.will = will;
  const liveWill = opt(t[5], decodeLiveWill);
  if (liveWill !== undefined) record.liveWill = liveWill;
  return record;
}

function decodeLiveWill(value: unknown): { message: Message; delay: number } {
  const t = tuple(value, 2, 'live will');
  return { delay: uint(t[0], 0xffffffff, 'will delay'), message: decodeMessage(t[1]) };
}

function decodeWill(value: unknown): StoredWill {
  const t = tuple(value, 2, 'will');
  return { publishAt: num(t[0], 'will publishAt'), message: decodeMessage(t[1]) };
}

// ---------------------------------------------------------------------------------------------
// Deliveries

/** A delivery without its message: the message is stored once, under its id. */
export interface DeliveryRow {
  messageId: string;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
  packetId?: number;
  released?: boolean;
}

export function deliveryRow(d: StoredDelivery): DeliveryRow {
  const row: DeliveryRow = { messageId: d.message.id, qos: d.qos, retain: d.retain };
  if (d.subscriptionIds !== undefined) row.subscriptionIds = [...d.subscriptionIds];
  if (d.packetId !== undefined) row.packetId = d.packetId;
  if (d.released !== undefined) row.released = d.released;
  return row;
}

export function encodeDelivery(row: DeliveryRow): unknown[] {
  return [
    row.messageId,
    row.qos,
    row.retain,
    row.subscriptionIds ?? null,
    row.packetId ?? null,
    row.released ?? null,
  ];
}

export function decodeDelivery(value: unknown): DeliveryRow {
  const t = tuple(value, 6, 'delivery');
  const row: DeliveryRow = {
    messageId: str(t[0], 'delivery message id'),
    qos: qos(t[1], 'delivery qos'),
    retain: bool(t[2], 'delivery retain'),
  };
  const ids = opt(t[3], (v) => tuple(v, 0, 'subscription identifiers'));
  if (ids !== undefined)
    row.subscriptionIds = ids.map((id) => uint(id, 268_435_455, 'subscription identifier'));
  const packetId = opt(t[4], (v) => uint(v, 65535, 'packet identifier'));
  if (packetId !== undefined) row.packetId = packetId;
  const released = opt(t[5], (v) => bool(v, 'released'));
  if (released !== undefined) row.released = released;
  return row;
}

/** The message id of a stored delivery row, without decoding the rest. */
export function deliveryMessageId(value: unknown): string {
  if (!Array.isArray(value) || value.length < 6) fail('delivery is not a tuple of 6');
  return str(value[0], 'delivery message id');
}

/**
 * A stored delivery straight from its row (as `toStoredDelivery(seq, decodeDelivery(value), …)`
 * without the intermediate row), its message looked up by id.
 */
export function decodeStoredDelivery(
  seq: number,
  value: unknown,
  messageOf: (id: string) => Message,
): StoredDelivery {
  const t = tuple(value, 6, 'delivery');
  const id = str(t[0], 'delivery message id');
  const q = qos(t[1], 'delivery qos');
  const retain = bool(t[2], 'delivery retain');
  let ids: number[] | undefined;
  if (t[3] !== null && t[3] !== undefined) {
    ids = tuple(t[3], 0, 'subscription identifiers') as number[];
    for (const n of ids) uint(n, 268_435_455, 'subscription identifier');
  }
  const packetId = t[4] === null || t[4] === undefined ? undefined : uint(t[4], 65535, 'packet identifier');
  const released = t[5] === null || t[5] === undefined ? undefined : bool(t[5], 'released');
  const d: Mutable<StoredDelivery> = { message: messageOf(id), qos: q, retain, seq };
  if (ids !== undefined) d.subscriptionIds = ids;
  if (packetId !== undefined) d.packetId = packetId;
  if (released !== undefined) d.released = released;
  return d;
}

export function toStoredDelivery(seq: number, row: DeliveryRow, message: Message): StoredDelivery {
  const d: Mutable<StoredDelivery> = { message, qos: row.qos, retain: row.retain, seq };
  if (row.subscriptionIds !== undefined) d.subscriptionIds = row.subscriptionIds;
  if (row.packetId !== undefined) d.packetId = row.packetId;
  if (row.released !== undefined) d.released = row.released;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Retained entries, counters

export function decodeRetained(value: unknown): [topic: string, messageId: string] {
  const t = tuple(value, 2, 'retained entry');
  return [str(t[0], 'retained topic'), str(t[1], 'retained message id')];
}

export function decodeCount(value: unknown, what: string): number {
  return uint(value, Number.MAX_SAFE_INTEGER, what);
}
