import type { Message } from '../../broker/message.js';
import { encodeFrame, StompCodecError, type StompVersion } from '../../codec/stomp/index.js';
import { destinationOf, messageHeaders } from './headers.js';

/**
 * The frames the broker sends most, built for speed: RECEIPT (at the end) and MESSAGE
 * (STOMP 1.2 "MESSAGE"). A MESSAGE frame is a head, its
 * own to each delivery, and a tail shared by every subscriber of that version:
 *
 *   head:  MESSAGE\nsubscription:<id>\nmessage-id:   (the subscription's prefix, made once)
 *          <message id>\n[ack:<message id>\n][retained:true\n | redelivered...\n]
 *   tail:  destination:<d>\n[content-type...]content-length:<n>\n...\n<body>\0   (once per message)
 *
 * Every header goes through the codec's encoder once (prefix, destination line, tail), so the
 * bytes follow its escaping rules per version; the per-delivery part is ASCII written in place.
 */

const LF = 0x0a;
const COMMAND_LINE_LENGTH = 'MESSAGE\n'.length;
const CONTENT_LENGTH = Buffer.from('content-length:');
export const ACK_LINE = Buffer.from('ack:');

/** Writes ASCII text (digits, base-36 ids) at `at`; for such short strings a loop beats Buffer#write. */
export function putAscii(out: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/**
 * `MESSAGE\nsubscription:<id>\nmessage-id:` for a subscription of `version`. Throws
 * StompCodecError when the id cannot be written (1.0 has no escaping for a CR in it).
 */
export function messagePrefix(subscriptionId: string, version: StompVersion): Buffer {
  const frame = encodeFrame(
    'MESSAGE',
    [
      ['subscription', subscriptionId],
      ['message-id', ''],
    ],
    undefined,
    version,
  );
  // Without the LF ending the message-id line, the blank line and the NUL.
  return Buffer.from(frame.subarray(0, frame.length - 3));
}

/** `destination:<d>\n` by MQTT topic, per version; null when the version cannot write it. */
const destinationLines: Record<StompVersion, Map<string, Buffer | null>> = {
  '1.0': new Map(),
  '1.1': new Map(),
  '1.2': new Map(),
};
/** Topics remembered per version: a few live topics carry most traffic; the rest are made again. */
const MAX_DESTINATION_LINES = 4096;

function destinationLine(topic: string, version: StompVersion): Buffer | null {
  const cache = destinationLines[version];
  let line = cache.get(topic);
  if (line !== undefined) return line;
  try {
    const frame = encodeFrame('MESSAGE', [['destination', destinationOf(topic)]], undefined, version);
    line = Buffer.from(frame.subarray(COMMAND_LINE_LENGTH, frame.length - 2));
  } catch (error) {
    // STOMP 1.0 escapes nothing: a topic with a line break (MQTT allows one) has no destination header.
    if (!(error instanceof StompCodecError)) throw error;
    line = null;
  }
  if (cache.size >= MAX_DESTINATION_LINES) cache.clear();
  cache.set(topic, line);
  return line;
}

/** The tail of a message's MESSAGE frames for one version. */
function encodeTail(message: Message, version: StompVersion): Buffer | null {
  const destination = destinationLine(message.topic, version);
  if (destination === null) return null;
  const { payload } = message;
  if (message.properties === undefined && message.expiresAt === undefined) {
    // The common case, written in place: destination, content-length, blank line, body, NUL.
    const length = String(payload.length);
    const out = Buffer.allocUnsafe(
      destination.length + CONTENT_LENGTH.length + length.length + 2 + payload.length + 1,
    );
    out.set(destination, 0);
    out.set(CONTENT_LENGTH, destination.length);
    let at = putAscii(out, destination.length + CONTENT_LENGTH.length, length);
    out[at++] = LF;
    out[at++] = LF;
    out.set(payload, at);
    out[at + payload.length] = 0;
    return out;
  }
  const frame = encodeFrame('MESSAGE', messageHeaders(message, version), payload, version);
  return frame.subarray(COMMAND_LINE_LENGTH);
}

/** A message's tails, per version; null: that version cannot carry the message. */
class StompTails {
  v10: Buffer | null | undefined;
  v11: Buffer | null | undefined;
  v12: Buffer | null | undefined;
}

/** Tails of messages whose `encoded` slot another protocol holds (an MQTT subscriber's template). */
const sideTails = new WeakMap<Message, StompTails>();

function tailsOf(message: Message): StompTails {
  const slot = message.encoded;
  if (slot instanceof StompTails) return slot;
  if (slot === undefined) {
    const tails = new StompTails();
    message.encoded = tails;
    return tails;
  }
  let tails = sideTails.get(message);
  if (tails === undefined) {
    tails = new StompTails();
    sideTails.set(message, tails);
  }
  return tails;
}

/**
 * The part of a message's MESSAGE frames every subscriber of `version` gets alike, encoded
 * once and kept on the message (`Message.encoded`, the protocols' scratch slot: no map lookup
 * on the delivery path). Null when the version cannot write the message's destination.
 */
export function messageTail(message: Message, version: StompVersion): Buffer | null {
  const tails = tailsOf(message);
  switch (version) {
    case '1.2':
      if (tails.v12 === undefined) tails.v12 = encodeTail(message, version);
      return tails.v12;
    case '1.1':
      if (tails.v11 === undefined) tails.v11 = encodeTail(message, version);
      return tails.v11;
    default:
      if (tails.v10 === undefined) tails.v10 = encodeTail(message, version);
      return tails.v10;
  }
}

const RECEIPT_HEAD = Buffer.from('RECEIPT\nreceipt-id:');

/**
 * A RECEIPT frame (STOMP 1.2 "RECEIPT"). A receipt id of printable ASCII with nothing to
 * escape, what clients send nearly always, is written in place; any other goes through the
 * codec's encoder, which escapes it per version or refuses it.
 */
export function receiptFrame(receiptId: string, version: StompVersion): Buffer {
  for (let i = 0; i < receiptId.length; i++) {
    const c = receiptId.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x3a || c === 0x5c)
      return encodeFrame('RECEIPT', [['receipt-id', receiptId]], undefined, version);
  }
  const out = Buffer.allocUnsafe(RECEIPT_HEAD.length + receiptId.length + 3);
  out.set(RECEIPT_HEAD, 0);
  const at = putAscii(out, RECEIPT_HEAD.length, receiptId);
  out[at] = LF;
  out[at + 1] = LF;
  out[at + 2] = 0;
  return out;
}
