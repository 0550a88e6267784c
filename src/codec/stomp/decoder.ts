import { isUtf8 } from 'node:buffer';
import { quote, StompCodecError } from './errors.js';
import { unescapeHeaderText } from './escape.js';
import {
  DEFAULT_STOMP_LIMITS,
  escapesHeaders,
  STOMP_CLIENT_COMMANDS,
  STOMP_SERVER_COMMANDS,
  type StompFrame,
  type StompLimits,
  type StompVersion,
} from './frame.js';

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const BACKSLASH = 0x5c;
const NO_BODY = Buffer.alloc(0);

/** Where the decoder is in the byte stream. */
enum Phase {
  /** Between frames: EOLs are heart-beats. */
  Idle,
  /** Between frames, after a CR that must be the start of a CRLF heart-beat. */
  IdleCr,
  Command,
  Headers,
  /** Reading a body of a known content-length. */
  CountedBody,
  /** The counted body is complete; its NUL must follow. */
  CountedNul,
  /** Reading a body up to the first NUL (no content-length). */
  ScannedBody,
}

/** Every beginning of a known command line, its CR included: what a partial command line may hold. */
const COMMAND_PREFIXES: ReadonlySet<string> = new Set(
  [...STOMP_CLIENT_COMMANDS, ...STOMP_SERVER_COMMANDS].flatMap((command) =>
    Array.from({ length: command.length + 1 }, (_, n) =>
      n < command.length ? command.slice(0, n + 1) : `${command}\r`,
    ),
  ),
);

function isKnownCommand(command: string): boolean {
  return STOMP_CLIENT_COMMANDS.has(command) || STOMP_SERVER_COMMANDS.has(command);
}

/** Groups `names` by length: index n lists the names n characters long. */
function byLength(names: Iterable<string>): (readonly string[] | undefined)[] {
  const table: string[][] = [];
  for (const name of names) {
    const same = table[name.length];
    if (same === undefined) table[name.length] = [name];
    else same.push(name);
  }
  return table;
}

/** Known commands by length, for the fast path of `readCommand`. */
const COMMANDS_BY_LENGTH = byLength([...STOMP_CLIENT_COMMANDS, ...STOMP_SERVER_COMMANDS]);
/** The longest command line: UNSUBSCRIBE, a CR and the LF. */
const LONGEST_COMMAND_LINE =
  Math.max(...[...STOMP_CLIENT_COMMANDS, ...STOMP_SERVER_COMMANDS].map((c) => c.length)) + 2;

/**
 * Header names that come up all the time: matched on the bytes they are read from and handed
 * out as these very strings, so a frame costs fewer string allocations and the handlers'
 * comparisons with them are quick.
 */
const KNOWN_HEADER_NAMES = byLength([
  'accept-version',
  'ack',
  'content-length',
  'content-type',
  'correlation-id',
  'delivery-count',
  'destination',
  'expires',
  'heart-beat',
  'host',
  'id',
  'login',
  'message',
  'message-id',
  'passcode',
  'persistent',
  'prefetch-count',
  'receipt',
  'receipt-id',
  'redelivered',
  'reply-to',
  'retain',
  'retained',
  'server',
  'session',
  'subscription',
  'transaction',
  'version',
]);

/** Whether `bytes[start, start + text.length)` spell `text` (ASCII). */
function spells(bytes: Buffer, start: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (bytes[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** The string among `table` (by length) that bytes[start, end) spell, or undefined. */
function lookUp(
  table: (readonly string[] | undefined)[],
  bytes: Buffer,
  start: number,
  end: number,
): string | undefined {
  const candidates = table[end - start];
  if (candidates === undefined) return undefined;
  for (let i = 0; i < candidates.length; i++) if (spells(bytes, start, candidates[i]!)) return candidates[i];
  return undefined;
}

const ORDINARY = 0;
/** Per byte of a header line: ORDINARY, or 1 for what `acceptHeader` looks at (`:`, `\\`, NUL, non-ASCII). */
const HEADER_BYTE_KIND = new Uint8Array(256);
for (const byte of [COLON, BACKSLASH, 0]) HEADER_BYTE_KIND[byte] = 1;
HEADER_BYTE_KIND.fill(1, 0x80);

/** Decimal strings of small numbers, shared: most content-length values are among them. */
const SMALL_DECIMALS = Array.from({ length: 4096 }, (_, n) => String(n));

/** The value of 1 to 16 decimal digits at bytes[start, end), or -1 when that is not what they are. */
function decimalAt(bytes: Buffer, start: number, end: number): number {
  if (end <= start || end - start > 16) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = bytes[i]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * A streaming STOMP decoder for frames of STOMP 1.0, 1.1 and 1.2. Feed it chunks of any size;
 * it calls `onFrame` per complete frame and `onHeartbeat` per EOL between frames (STOMP 1.2
 * "Heart-beating"). Each line is parsed once, when its EOL arrives, so partial state carries
 * across chunks without rescanning and only the current line (at most maxHeaderLength) and
 * the body so far (at most maxFrameSize) are ever held.
 *
 * Leniency: CRLF ends lines in every version (1.2 made it standard), a `:` in a header value
 * is kept as text, and `\r` is unescaped in 1.1 too. Nothing is trimmed: padding around a
 * header name or value is part of it (STOMP 1.2 "Value Encoding"). NUL is refused in header
 * lines, so a frame missing its blank line fails instead of swallowing the next frame.
 *
 * A bad frame throws a StompCodecError, after which the decoder refuses all further input:
 * answer with an ERROR frame and close the connection.
 */
export class StompDecoder {
  /**
   * Header escaping applies from 1.1 on (never to CONNECT/CONNECTED); 1.0 until negotiated.
   * Read when each frame's command line completes, so setting it from `onFrame` (after
   * CONNECT or CONNECTED) applies to the very next frame, even one in the same chunk.
   */
  version: StompVersion = '1.0';
  readonly limits: StompLimits;

  private phase = Phase.Idle;
  private failure: StompCodecError | undefined;
  /** The command line read so far. */
  private commandLine = '';
  /** Parts of the header line being read, and their total length. */
  private lineParts: Buffer[] = [];
  private lineLength = 0;
  /** Bytes of the current frame's command and header lines so far, EOLs included. */
  private headerBytes = 0;
  private command = '';
  private escape = false;
  private headers: [string, string][] = [];
  /** The last `destination` value read, handed out again while the bytes are the same. */
  private lastDestination = '';
  /** The first content-length header's value, or -1 without one. */
  private contentLength = -1;
  /** Parts of the body held from earlier chunks, and their total length. */
  private bodyParts: Buffer[] = [];
  private bodyLength = 0;
  /** Size of the memory the first body part is a view of. */
  private bodyChunkLength = 0;

  constructor(limits: Partial<StompLimits> = {}) {
    this.limits = { ...DEFAULT_STOMP_LIMITS, ...limits };
  }

  /** Bytes held for the incomplete frame (its current line and its body so far). */
  get bufferedBytes(): number {
    return this.lineLength + this.bodyLength;
  }

  /** Whether a frame has begun and not ended: at end of stream, that frame was truncated. */
  get midFrame(): boolean {
    return this.phase !== Phase.Idle && this.phase !== Phase.IdleCr;
  }

  /** Parses what the chunk completes; calls onFrame per frame, onHeartbeat per EOL between frames. Throws StompCodecError. */
  push(chunk: Buffer, onFrame: (frame: StompFrame) => void, onHeartbeat?: () => void): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.run(chunk, onFrame, onHeartbeat);
    } catch (error) {
      if (error instanceof StompCodecError) {
        this.failure = error;
        this.lineParts = [];
        this.lineLength = 0;
        this.bodyParts = [];
        this.bodyLength = 0;
        this.headers = [];
      }
      throw error;
    }
  }

  private run(chunk: Buffer, onFrame: (frame: StompFrame) => void, onHeartbeat?: () => void): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      switch (this.phase) {
        case Phase.Idle: {
          const byte = chunk[pos]!;
          if (byte === LF) {
            pos++;
            onHeartbeat?.();
          } else if (byte === CR) {
            pos++;
            this.phase = Phase.IdleCr;
          } else {
            this.phase = Phase.Command;
            this.command = '';
            this.headerBytes = 0;
          }
          break;
        }
        case Phase.IdleCr:
          if (chunk[pos] !== LF)
            throw new StompCodecError('unknown-command', 'a CR between frames not followed by LF');
          pos++;
          this.phase = Phase.Idle;
          onHeartbeat?.();
          break;
        case Phase.Command:
          pos = this.readCommand(chunk, pos);
          break;
        case Phase.Headers:
          pos = this.readLine(chunk, pos);
          break;
        case Phase.CountedBody: {
          const need = this.contentLength - this.bodyLength;
          if (this.bodyLength === 0 && end - pos > need && chunk[pos + need] === 0) {
            // The whole body and its NUL in this chunk: one buffer, no parts.
            let body: Buffer;
            if (need * 2 >= chunk.buffer.byteLength) {
              body = chunk.subarray(pos, pos + need);
            } else {
              // A copy, not a view pinning the whole chunk (see `emit`).
              body = Buffer.allocUnsafe(need);
              chunk.copy(body, 0, pos, pos + need);
            }
            pos += need + 1;
            this.emitFrame(body, onFrame);
          } else if (end - pos < need) {
            this.holdBody(chunk.subarray(pos));
            pos = end;
          } else {
            this.holdBody(chunk.subarray(pos, pos + need));
            pos += need;
            this.phase = Phase.CountedNul;
          }
          break;
        }
        case Phase.CountedNul:
          if (chunk[pos] !== 0)
            throw new StompCodecError(
              'missing-null',
              `no NUL after the ${this.contentLength}-byte body of a ${this.command} frame (STOMP 1.2 "Header content-length")`,
            );
          pos++;
          this.emit(onFrame);
          break;
        case Phase.ScannedBody: {
          const nul = chunk.indexOf(0, pos);
          const stop = nul < 0 ? end : nul;
          if (this.headerBytes + this.bodyLength + (stop - pos) > this.limits.maxFrameSize)
            throw this.tooLarge(nul < 0 ? 'its body so far' : 'its body');
          this.holdBody(chunk.subarray(pos, stop));
          if (nul < 0) {
            pos = end;
          } else {
            pos = nul + 1;
            this.emit(onFrame);
          }
          break;
        }
      }
    }
  }

  /**
   * Reads the command line byte by byte (it is at most 12 bytes long), refusing it as soon
   * as no known command starts that way: a peer sending garbage learns it at once, not after
   * we wait for an EOL that may never come. Returns where the rest of the chunk starts.
   */
  private readCommand(chunk: Buffer, pos: number): number {
    if (this.commandLine === '') {
      const after = this.wholeCommandLine(chunk, pos);
      if (after >= 0) return after;
    }
    let text = this.commandLine;
    while (pos < chunk.length) {
      const byte = chunk[pos++]!;
      if (++this.headerBytes > this.limits.maxFrameSize) throw this.tooLarge('its command line');
      if (byte === LF) {
        this.commandLine = '';
        this.acceptCommand(text.endsWith('\r') ? text.slice(0, -1) : text);
        return pos;
      }
      text += String.fromCharCode(byte);
      if (!COMMAND_PREFIXES.has(text))
        throw new StompCodecError('unknown-command', `unknown command ${quote(text, 16)}`);
    }
    this.commandLine = text;
    return pos;
  }

  /**
   * The fast path of `readCommand`: a whole known command line in the chunk is taken at once.
   * Returns where the rest of the chunk starts, or -1 for the byte-by-byte path (a partial or
   * unknown line, or one over the frame size: that path throws the error a byte-by-byte feed would).
   */
  private wholeCommandLine(chunk: Buffer, pos: number): number {
    const limit = Math.min(chunk.length, pos + LONGEST_COMMAND_LINE);
    let lf = pos;
    while (lf < limit && chunk[lf] !== LF) lf++;
    if (lf === limit) return -1;
    const end = lf > pos && chunk[lf - 1] === CR ? lf - 1 : lf;
    const command = lookUp(COMMANDS_BY_LENGTH, chunk, pos, end);
    const taken = lf + 1 - pos;
    if (command === undefined || this.headerBytes + taken > this.limits.maxFrameSize) return -1;
    this.headerBytes += taken;
    this.startHeaders(command);
    return lf + 1;
  }

  /**
   * Reads the header line at `pos`, parsing it if the chunk completes it. Returns where the
   * rest of the chunk starts. Limits are checked on the partial line, so a peer never makes
   * us hold more than one line's worth of header bytes.
   */
  private readLine(chunk: Buffer, pos: number): number {
    const lf = chunk.indexOf(LF, pos);
    const stop = lf < 0 ? chunk.length : lf;
    const taken = stop - pos + (lf < 0 ? 0 : 1);
    const lineLength = this.lineLength + (stop - pos);
    // The limit a byte-by-byte feed would hit first decides the error, so that the outcome
    // never depends on how the stream was chunked. A trailing CR may still belong to a
    // CRLF, hence the + 1.
    const frameRoom = this.limits.maxFrameSize - this.headerBytes;
    const lineRoom = this.limits.maxHeaderLength + 1 - this.lineLength;
    const lineOver = stop - pos > lineRoom;
    if (taken > frameRoom && (!lineOver || frameRoom <= lineRoom)) throw this.tooLarge('its headers');
    if (lineOver) throw this.headerTooLong(lineLength);
    this.headerBytes += taken;
    if (lf < 0) {
      this.lineParts.push(chunk.subarray(pos));
      this.lineLength = lineLength;
      return chunk.length;
    }
    let line = chunk;
    let start = pos;
    let lineEnd = lf;
    if (this.lineParts.length > 0) {
      this.lineParts.push(chunk.subarray(pos, lf));
      line = Buffer.concat(this.lineParts, lineLength);
      start = 0;
      lineEnd = lineLength;
      this.lineParts = [];
    }
    this.lineLength = 0;
    if (lineEnd > start && line[lineEnd - 1] === CR) lineEnd--;
    if (lineEnd === start) this.endHeaders();
    else this.acceptHeader(line, start, lineEnd);
    return lf + 1;
  }

  private acceptCommand(command: string): void {
    if (!isKnownCommand(command))
      throw new StompCodecError('unknown-command', `unknown command ${quote(command)}`);
    this.startHeaders(command);
  }

  private startHeaders(command: string): void {
    this.command = command;
    this.escape = escapesHeaders(command, this.version);
    this.headers = [];
    this.contentLength = -1;
    this.phase = Phase.Headers;
  }

  private acceptHeader(line: Buffer, start: number, end: number): void {
    if (this.headers.length >= this.limits.maxHeaders)
      throw new StompCodecError(
        'too-many-headers',
        `${this.command} frame with more than ${this.limits.maxHeaders} headers`,
      );
    if (end - start > this.limits.maxHeaderLength) throw this.headerTooLong(end - start);
    // One pass finds the separator and tells whether decoding, validation or unescaping is needed.
    let colon = -1;
    let escaped = false;
    let ascii = true;
    for (let i = start; i < end; i++) {
      const byte = line[i]!;
      // One table load tells the ordinary bytes, nearly all of them, from the rest.
      if (HEADER_BYTE_KIND[byte] === ORDINARY) continue;
      if (byte === COLON) {
        if (colon < 0) colon = i;
      } else if (byte === BACKSLASH) {
        escaped = true;
      } else if (byte >= 0x80) {
        ascii = false;
      } else {
        throw new StompCodecError('malformed-header', `NUL in a header line of a ${this.command} frame`);
      }
    }
    if (colon < 0)
      throw new StompCodecError('malformed-header', `header line without ':' in a ${this.command} frame`);
    if (colon === start)
      throw new StompCodecError(
        'malformed-header',
        `header line with an empty name in a ${this.command} frame`,
      );
    if (!ascii && !isUtf8(line.subarray(start, end)))
      throw new StompCodecError('bad-encoding', `header line of a ${this.command} frame is not UTF-8`);
    const encoding = ascii ? 'latin1' : 'utf8';
    let name = lookUp(KNOWN_HEADER_NAMES, line, start, colon);
    if (name === undefined) {
      name = line.toString(encoding, start, colon);
      if (escaped && this.escape) name = unescapeHeaderText(name);
    }
    // STOMP 1.2 "Repeated Header Entries": only the first content-length counts.
    if (name === 'content-length' && this.contentLength < 0) {
      const length = decimalAt(line, colon + 1, end);
      if (length >= 0) {
        // Plain digits: no escapes, no text to check; the shared string when it is the usual one.
        const text = length < SMALL_DECIMALS.length ? SMALL_DECIMALS[length]! : '';
        const value = text.length === end - colon - 1 ? text : line.toString('latin1', colon + 1, end);
        this.headers.push([name, value]);
        this.acceptLength(length);
        return;
      }
    }
    let value: string;
    if (
      name === 'destination' &&
      ascii &&
      !escaped &&
      end - colon - 1 === this.lastDestination.length &&
      spells(line, colon + 1, this.lastDestination)
    ) {
      // A client sends to a few destinations over and over: the same string again, no allocation.
      value = this.lastDestination;
    } else {
      value = line.toString(encoding, colon + 1, end);
      if (escaped && this.escape) value = unescapeHeaderText(value);
      if (name === 'destination') this.lastDestination = value;
    }
    this.headers.push([name, value]);
    if (name === 'content-length' && this.contentLength < 0) this.acceptContentLength(value);
  }

  private acceptContentLength(value: string): void {
    if (!/^[0-9]{1,16}$/.test(value))
      throw new StompCodecError(
        'bad-content-length',
        `content-length ${quote(value)} of a ${this.command} frame is not a decimal byte count`,
      );
    this.acceptLength(Number(value));
  }

  private acceptLength(length: number): void {
    // Refuse now: the body need not be waited for to know it will not fit.
    if (this.headerBytes + length > this.limits.maxFrameSize) throw this.tooLarge(`content-length ${length}`);
    this.contentLength = length;
  }

  private endHeaders(): void {
    if (this.contentLength >= 0) {
      if (this.headerBytes + this.contentLength > this.limits.maxFrameSize)
        throw this.tooLarge(`content-length ${this.contentLength}`);
      this.phase = this.contentLength === 0 ? Phase.CountedNul : Phase.CountedBody;
    } else {
      this.phase = Phase.ScannedBody;
    }
  }

  private holdBody(part: Buffer): void {
    if (part.length === 0) return;
    if (this.bodyParts.length === 0) this.bodyChunkLength = part.buffer.byteLength;
    this.bodyParts.push(part);
    this.bodyLength += part.length;
  }

  /**
   * Ends the frame and hands it over. A body lying in one chunk is a view of it when it fills
   * at least half the chunk and a copy otherwise, so a body kept for long (a queued message)
   * never pins much more memory than its own size.
   */
  private emit(onFrame: (frame: StompFrame) => void): void {
    let body: Buffer = NO_BODY;
    const parts = this.bodyParts;
    if (parts.length === 1) {
      const only = parts[0]!;
      body = only.length * 2 >= this.bodyChunkLength ? only : Buffer.from(only);
    } else if (parts.length > 1) {
      body = Buffer.concat(parts, this.bodyLength);
    }
    this.bodyParts = [];
    this.bodyLength = 0;
    this.emitFrame(body, onFrame);
  }

  private emitFrame(body: Buffer, onFrame: (frame: StompFrame) => void): void {
    const frame: StompFrame = { command: this.command, headers: this.headers, body };
    this.headers = [];
    this.phase = Phase.Idle;
    onFrame(frame);
  }

  private tooLarge(what: string): StompCodecError {
    return new StompCodecError(
      'frame-too-large',
      `${this.command || 'a'} frame exceeds the maximum frame size of ${this.limits.maxFrameSize} bytes (${what})`,
    );
  }

  private headerTooLong(length: number): StompCodecError {
    return new StompCodecError(
      'header-too-long',
      `${this.command} frame with a header line of ${length}+ bytes (at most ${this.limits.maxHeaderLength})`,
    );
  }
}

/**
 * Decodes a buffer holding whole frames; a convenience for tests and tools. Trailing bytes
 * of an unfinished frame are a 'missing-null' error.
 */
export function decodeFrames(
  bytes: Buffer,
  version: StompVersion = '1.2',
  limits: Partial<StompLimits> = {},
): StompFrame[] {
  const frames: StompFrame[] = [];
  const decoder = new StompDecoder(limits);
  decoder.version = version;
  decoder.push(bytes, (frame) => frames.push(frame));
  if (decoder.midFrame) throw new StompCodecError('missing-null', 'the last frame is not terminated by NUL');
  return frames;
}
