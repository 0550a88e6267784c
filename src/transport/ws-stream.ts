import { Duplex } from 'node:stream';
import WebSocket from 'ws';

/** WebSocket close codes used here (RFC 6455 7.4.1). */
const WsCloseCode = {
  Normal: 1000,
  UnsupportedData: 1003,
  InternalError: 1011,
} as const;

/** A message as `ws` hands it over; with `binaryType` 'nodebuffer' it is a Buffer. */
function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * A WebSocket as a byte stream for a protocol such as MQTT (MQTT 6.0): binary messages in,
 * binary messages out, message boundaries ignored (one frame may hold several packets or a
 * part of one).
 *
 * - Everything written in one go (a corked tick's `writev`) leaves as ONE binary message,
 *   and the next write waits until the socket took the previous one: the writable buffer,
 *   not the socket, holds the backlog, so `write` returns false when the peer reads slowly.
 * - Reading honours backpressure: the socket is paused while the readable buffer is full
 *   or the consumer called `pause()`, and resumed by `_read`/`resume()`.
 * - A text message ends the stream and closes the WebSocket with 1003 (MQTT-6.0.0-1), unless
 *   the protocol takes text (`acceptText`: STOMP clients send frames as text or binary).
 * - Ending or destroying the stream closes the WebSocket with a close frame; the WebSocket's
 *   close ends the stream. Errors of the WebSocket (an oversized or malformed frame, which
 *   `ws` answers with 1009/1002 itself, a reset) end the stream; they are not re-emitted.
 */
export class WebSocketDuplex extends Duplex {
  private consumerPaused = false;
  private bufferFull = false;
  private inputEnded = false;
  /** The callback of the write the socket has not yet taken. */
  private pendingWrite: (() => void) | undefined;

  constructor(
    private readonly socket: WebSocket,
    /** Text messages are bytes too (STOMP); otherwise one closes the connection (MQTT). */
    private readonly options: { readonly acceptText?: boolean } = {},
  ) {
    // Once the peer's side ends, end ours too: a WebSocket is not half-open.
    super({ allowHalfOpen: false, decodeStrings: true });
    socket.binaryType = 'nodebuffer';
    socket.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    socket.on('error', () => this.endInput());
    socket.on('close', () => {
      this.endInput();
      this.writeTaken();
    });
  }

  /** Bytes handed to the WebSocket that its socket has not yet passed to the kernel. */
  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  /** Whether the socket is being read (false while backpressure or `pause()` holds it). */
  get readingSocket(): boolean {
    return !this.socket.isPaused;
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.inputEnded) return;
    if (!isBinary && this.options.acceptText !== true) {
      // MQTT-6.0.0-1: a data frame other than binary closes the connection.
      this.socket.close(WsCloseCode.UnsupportedData, 'binary frames only');
      this.endInput();
      return;
    }
    if (!this.push(toBuffer(data))) {
      this.bufferFull = true;
      this.syncFlow();
    }
  }

  /** No more input: the peer closed, misbehaved, or the connection failed. */
  private endInput(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    if (this.destroyed) return;
    this.push(null);
    // As a TCP socket does at EOF: with nothing left unread, 'end' comes even if nobody reads.
    this.read(0);
  }

  /** Pauses the socket while anyone wants it paused, resumes it once nobody does. */
  private syncFlow(): void {
    const hold = this.consumerPaused || this.bufferFull;
    if (hold === this.socket.isPaused) return;
    if (hold) this.socket.pause();
    else this.socket.resume();
  }

  override _read(): void {
    this.bufferFull = false;
    this.syncFlow();
  }

  /** Stops reading from the socket at once, not only once the readable buffer is full. */
  override pause(): this {
    this.consumerPaused = true;
    this.syncFlow();
    return super.pause();
  }

  override resume(): this {
    this.consumerPaused = false;
    this.syncFlow();
    return super.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.sendMessage(chunk, done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    this.sendMessage(
      chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)),
      done,
    );
  }

  private sendMessage(data: Buffer, done: () => void): void {
    // Bytes for a closing WebSocket cannot arrive any more: drop them, as the 'close' that
    // follows ends this stream (an error here would only race that close).
    if (this.socket.readyState !== WebSocket.OPEN) {
      done();
      return;
    }
    this.pendingWrite = done;
    this.socket.send(data, { binary: true }, () => this.writeTaken());
  }

  /** The socket took the pending write (or will never take it). */
  private writeTaken(): void {
    const done = this.pendingWrite;
    this.pendingWrite = undefined;
    done?.();
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(WsCloseCode.Normal);
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // A close frame, then `ws` waits (its closeTimeout) for the peer's before cutting the socket.
    if (this.socket.readyState === WebSocket.OPEN)
      this.socket.close(error === null ? WsCloseCode.Normal : WsCloseCode.InternalError);
    this.writeTaken();
    done(error);
  }
}
