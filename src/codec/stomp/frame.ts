/** The three STOMP versions; they differ on the wire only in header escaping. */
export type StompVersion = '1.0' | '1.1' | '1.2';

/** One STOMP frame. Header names and values are unescaped; repeated headers are all kept, in order. */
export interface StompFrame {
  command: string;
  headers: [name: string, value: string][];
  body: Buffer;
}

/** First occurrence wins (STOMP 1.2 "Repeated Header Entries"). */
export function getHeader(frame: StompFrame, name: string): string | undefined {
  const { headers } = frame;
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    if (header[0] === name) return header[1];
  }
  return undefined;
}

export interface StompLimits {
  /** Largest frame, from the command's first byte to the end of the body (the NUL not counted). */
  maxFrameSize: number;
  /** Most header lines in one frame. */
  maxHeaders: number;
  /** Longest header line, its end of line not counted. */
  maxHeaderLength: number;
}

export const DEFAULT_STOMP_LIMITS: StompLimits = Object.freeze({
  maxFrameSize: 1024 * 1024,
  maxHeaders: 64,
  maxHeaderLength: 8 * 1024,
});

/** STOMP 1.2 "Client Frames" (STOMP is the 1.1+ name for CONNECT). */
export const STOMP_CLIENT_COMMANDS: ReadonlySet<string> = new Set([
  'CONNECT',
  'STOMP',
  'SEND',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'NACK',
  'BEGIN',
  'COMMIT',
  'ABORT',
  'DISCONNECT',
]);

/** STOMP 1.2 "Server Frames" and CONNECTED. */
export const STOMP_SERVER_COMMANDS: ReadonlySet<string> = new Set([
  'CONNECTED',
  'MESSAGE',
  'RECEIPT',
  'ERROR',
]);

/**
 * Frames whose headers are never escaped, whatever the version: CONNECT and CONNECTED stay
 * readable by 1.0 peers (STOMP 1.2 "Value Encoding"), and STOMP is the same frame as CONNECT.
 */
export function escapesHeaders(command: string, version: StompVersion): boolean {
  return version !== '1.0' && command !== 'CONNECT' && command !== 'CONNECTED' && command !== 'STOMP';
}
