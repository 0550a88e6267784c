/** Why the STOMP codec refused some bytes. Match on these, never on messages. */
export type StompErrorCode =
  | 'frame-too-large'
  | 'too-many-headers'
  | 'header-too-long'
  | 'malformed-header'
  | 'bad-escape'
  | 'unknown-command'
  | 'missing-null'
  | 'bad-content-length'
  | 'bad-encoding';

/**
 * A typed STOMP codec failure. The message is one line of printable text that quotes no raw
 * peer bytes, so a server can put it verbatim into an ERROR frame's `message` header.
 */
export class StompCodecError extends Error {
  override readonly name = 'StompCodecError';
  constructor(
    readonly code: StompErrorCode,
    detail: string,
  ) {
    super(detail);
  }
}

/** A short, printable rendering of peer text for error messages. */
export function quote(text: string, max = 40): string {
  const shown = text.length > max ? `${text.slice(0, max)}...` : text;
  // JSON escapes control characters; the replace keeps the result ASCII.
  return JSON.stringify(shown).replace(/[^\x20-\x7e]/g, '?');
}
