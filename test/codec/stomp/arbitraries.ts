import fc from 'fast-check';
import {
  escapesHeaders,
  STOMP_CLIENT_COMMANDS,
  STOMP_SERVER_COMMANDS,
  type StompFrame,
  type StompVersion,
} from '../../../src/codec/stomp/index.js';

export const VERSIONS: readonly StompVersion[] = ['1.0', '1.1', '1.2'];
export const COMMANDS: readonly string[] = [...STOMP_CLIENT_COMMANDS, ...STOMP_SERVER_COMMANDS];

/** Header text rich in what matters to the codec: separators, escapes, EOLs, padding, multi-byte UTF-8. */
const unit = fc.oneof(
  fc.constantFrom(':', '\\', '\r', '\n', ' ', '\0', 'c', 'n', 'r', 'é', '☕', '\u{1F600}'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const headerText = fc.string({ unit, maxLength: 12 });

export interface VersionedFrame {
  version: StompVersion;
  frame: StompFrame;
}

/**
 * A frame the encoder can write for its version: without escaping (1.0, CONNECT, CONNECTED,
 * STOMP) names and values lose CR, LF and NUL, and names lose ':'; with escaping only NUL
 * goes. A body holding a NUL always gets a content-length (it would end the frame early).
 */
export const versionedFrameArb: fc.Arbitrary<VersionedFrame> = fc
  .record({
    version: fc.constantFrom(...VERSIONS),
    command: fc.constantFrom(...COMMANDS),
    headers: fc.array(fc.tuple(headerText, headerText), { maxLength: 6 }),
    body: fc.uint8Array({ maxLength: 40 }),
    contentLength: fc.boolean(),
  })
  .map(({ version, command, headers, body, contentLength }) => {
    const escaped = escapesHeaders(command, version);
    const clean = (text: string, isName: boolean) =>
      // STOMP 1.1 escapes LF but has no escape for CR (encodeFrame refuses one).
      text.replace(
        escaped ? (version === '1.1' ? /[\r\0]/g : /\0/g) : isName ? /[\r\n\0:]/g : /[\r\n\0]/g,
        '',
      );
    const pairs: [string, string][] = headers
      .map(([name, value]): [string, string] => [clean(name, true) || 'h', clean(value, false)])
      .filter(([name]) => name !== 'content-length');
    const bytes = Buffer.from(body);
    if (contentLength || bytes.includes(0)) pairs.push(['content-length', String(bytes.length)]);
    return { version, frame: { command, headers: pairs, body: bytes } };
  });

/** Heart-beats (LF or CRLF) to put between frames. */
export const heartbeatsArb = fc
  .array(fc.constantFrom('\n', '\r\n'), { maxLength: 3 })
  .map((eols) => eols.join(''));
