/**
 * A frame the server refuses: the connection answers ERROR with `message` (one short line)
 * and `detail` as the body, then closes (STOMP 1.2 "ERROR": the server closes after sending it).
 */
export class StompViolation extends Error {
  override readonly name = 'StompViolation';
  constructor(
    message: string,
    /** A longer explanation for the ERROR body; the message when absent. */
    readonly detail?: string,
    /** Extra ERROR headers, such as `version` when no version is shared. */
    readonly headers: readonly [string, string][] = [],
  ) {
    super(message);
  }
}

/** A required header that is absent (or empty). */
export function missingHeader(command: string, name: string): StompViolation {
  return new StompViolation(`${command} needs a '${name}' header`);
}
