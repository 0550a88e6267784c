import { quote, StompCodecError } from './errors.js';

const BACKSLASH = 0x5c;

/**
 * Undoes STOMP 1.2 "Value Encoding": `\r` `\n` `\c` `\\`. Any other escape, or a trailing
 * backslash, is a fatal protocol error there. STOMP 1.1 defines no `\r`; it is accepted
 * in 1.1 too, since no 1.1 peer sends a backslash-r meaning anything else.
 */
export function unescapeHeaderText(text: string): string {
  let at = text.indexOf('\\');
  if (at < 0) return text;
  let out = '';
  let from = 0;
  while (at >= 0) {
    out += text.slice(from, at);
    switch (text.charCodeAt(at + 1)) {
      case 0x72: // r
        out += '\r';
        break;
      case 0x6e: // n
        out += '\n';
        break;
      case 0x63: // c
        out += ':';
        break;
      case BACKSLASH:
        out += '\\';
        break;
      default:
        throw new StompCodecError(
          'bad-escape',
          `undefined escape sequence in header ${quote(text)} (STOMP 1.2 "Value Encoding")`,
        );
    }
    from = at + 2;
    at = text.indexOf('\\', from);
  }
  return out + text.slice(from);
}

const NEEDS_ESCAPE = /[\r\n:\\]/;
const ESCAPES: Record<string, string> = { '\r': '\\r', '\n': '\\n', ':': '\\c', '\\': '\\\\' };

/** STOMP 1.2 "Value Encoding"; returns `text` itself when nothing needs escaping. */
export function escapeHeaderText(text: string): string {
  return NEEDS_ESCAPE.test(text) ? text.replace(/[\r\n:\\]/g, (c) => ESCAPES[c]!) : text;
}

/** Whether `text` needs escaping at all; cheap, for the encoder's fast path. */
export function needsEscape(text: string): boolean {
  return NEEDS_ESCAPE.test(text);
}
