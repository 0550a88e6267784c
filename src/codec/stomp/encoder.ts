import { quote, StompCodecError } from './errors.js';
import { escapeHeaderText, needsEscape } from './escape.js';
import { escapesHeaders, type StompVersion } from './frame.js';

const LF = 0x0a;
const NO_BODY = Buffer.alloc(0);
const LINE_BREAK_OR_NUL = /[\r\n\0]/;

/**
 * Why a header cannot be written into a `command` frame of `version`, or undefined when it
 * can. Without escaping (1.0, CONNECT, CONNECTED, STOMP) a CR or LF would end the line early
 * and a `:` in the name would move the split: writing them would let header text inject
 * headers. STOMP 1.1 escapes LF but not CR. A NUL is refused everywhere (the decoder refuses
 * it in header lines), and so is an empty name (STOMP 1.2 "Augmented BNF": a name has at least one octet).
 */
export function headerEncodingFault(
  command: string,
  name: string,
  value: string,
  version: StompVersion,
): string | undefined {
  if (name.length === 0) return 'empty header name';
  if (escapesHeaders(command, version)) {
    if (name.includes('\0') || value.includes('\0')) return `NUL in header ${quote(name)}`;
    // STOMP 1.1 "Value Encoding" defines no `\r` escape; its receivers treat one as fatal.
    if (version === '1.1' && (name.includes('\r') || value.includes('\r')))
      return `CR in header ${quote(name)} (STOMP 1.1 has no escape for it)`;
    return undefined;
  }
  if (LINE_BREAK_OR_NUL.test(name) || LINE_BREAK_OR_NUL.test(value))
    return `CR, LF or NUL in header ${quote(name)} of an unescaped ${command} frame (STOMP ${version})`;
  if (name.includes(':')) return `':' in header name ${quote(name)} of an unescaped ${command} frame`;
  return undefined;
}

/**
 * One frame's bytes: command, headers (escaped per version, never for CONNECT, CONNECTED and
 * STOMP), blank line, body, NUL. Adds no header: a body that may hold NUL bytes needs the
 * caller's `content-length`. The size is computed first and the frame written once into one
 * Buffer. Throws StompCodecError 'malformed-header' for a header that cannot be represented
 * (see headerEncodingFault) rather than write a frame that reads back differently.
 */
export function encodeFrame(
  command: string,
  headers: readonly (readonly [string, string])[],
  body: Buffer | undefined,
  version: StompVersion,
): Buffer {
  const payload = body ?? NO_BODY;
  const escaping = escapesHeaders(command, version);
  // command LF, blank line LF, body, NUL
  let size = Buffer.byteLength(command) + 2 + payload.length + 1;
  // Escaped texts, allocated only when some header needs escaping: [name0, value0, name1, ...].
  let texts: string[] | undefined;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    const fault = headerEncodingFault(command, name, value, version);
    if (fault !== undefined) throw new StompCodecError('malformed-header', fault);
    if (escaping && texts === undefined && (needsEscape(name) || needsEscape(value))) {
      texts = [];
      for (let j = 0; j < i; j++) texts.push(headers[j]![0], headers[j]![1]);
    }
    if (texts !== undefined) {
      const escapedName = escapeHeaderText(name);
      const escapedValue = escapeHeaderText(value);
      texts.push(escapedName, escapedValue);
      size += Buffer.byteLength(escapedName) + Buffer.byteLength(escapedValue) + 2;
    } else {
      size += Buffer.byteLength(name) + Buffer.byteLength(value) + 2;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.write(command, 0, 'utf8');
  out[at++] = LF;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    at += out.write(texts === undefined ? header[0] : texts[2 * i]!, at, 'utf8');
    out[at++] = 0x3a; // ':'
    at += out.write(texts === undefined ? header[1] : texts[2 * i + 1]!, at, 'utf8');
    out[at++] = LF;
  }
  out[at++] = LF;
  at += payload.copy(out, at);
  out[at] = 0;
  return out;
}
