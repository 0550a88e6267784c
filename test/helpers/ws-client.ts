import { once } from 'node:events';
import WebSocket, { type ClientOptions } from 'ws';
import { encode, MqttDecoder, type Packet, type ProtocolVersion } from '../../src/codec/mqtt/index.js';

/**
 * A bare MQTT-over-WebSocket client: the `ws` package as the client, our codec for the
 * packets. It sends exactly the frames a test asks for (split packets, several packets in
 * one frame, text frames, garbage) and records the frames and packets it gets back.
 */
export class WsRawClient {
  /** Every binary message received, as it arrived. */
  readonly frames: Buffer[] = [];
  readonly packets: Packet[] = [];
  /** The close code and reason, once the WebSocket closed. */
  closedWith: { code: number; reason: string } | undefined;
  private readonly waiters: { type: Packet['type']; resolve: (p: Packet) => void }[] = [];
  private readonly decoder: MqttDecoder;

  private constructor(
    readonly socket: WebSocket,
    version: ProtocolVersion,
  ) {
    this.decoder = new MqttDecoder((p) => this.onPacket(p), { protocolVersion: version });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) throw new Error('the broker sent a text frame');
      this.frames.push(data);
      this.decoder.feed(data);
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.closedWith = { code, reason: reason.toString() };
    });
    socket.on('error', () => {});
  }

  /** Opens a WebSocket to `url` offering `protocols` (none if empty); resolves once it is open. */
  static async open(
    url: string,
    protocols: string[] = ['mqtt'],
    version: ProtocolVersion = 4,
    options: ClientOptions = {},
  ): Promise<WsRawClient> {
    const socket = new WebSocket(url, protocols, options);
    const client = new WsRawClient(socket, version);
    await once(socket, 'open');
    return client;
  }

  /** The subprotocol the server chose ('' for none). */
  get protocol(): string {
    return this.socket.protocol;
  }

  /** Sends one packet as one binary frame. */
  send(packet: Packet, version: ProtocolVersion = 4): void {
    this.socket.send(encode(packet, version), { binary: true });
  }

  /** Sends bytes as one binary frame; `fin: false` starts or continues a fragmented message. */
  sendBytes(bytes: Buffer, fin = true): void {
    this.socket.send(bytes, { binary: true, fin });
  }

  sendText(text: string): void {
    this.socket.send(text, { binary: false });
  }

  private onPacket(packet: Packet): void {
    const index = this.waiters.findIndex((w) => w.type === packet.type);
    if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(packet);
    else this.packets.push(packet);
  }

  /** The next packet of a type, already received or yet to come; rejects after `ms`. */
  next<T extends Packet['type']>(type: T, ms = 5000): Promise<Extract<Packet, { type: T }>> {
    const index = this.packets.findIndex((p) => p.type === type);
    if (index >= 0) return Promise.resolve(this.packets.splice(index, 1)[0] as Extract<Packet, { type: T }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} within ${ms} ms`)), ms);
      this.waiters.push({
        type,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p as Extract<Packet, { type: T }>);
        },
      });
    });
  }

  /** Resolves with the close code and reason once the WebSocket is closed; rejects after `ms`. */
  closed(ms = 10_000): Promise<{ code: number; reason: string }> {
    if (this.closedWith !== undefined) return Promise.resolve(this.closedWith);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the WebSocket was not closed within ${ms} ms`)), ms);
      this.socket.once('close', (code: number, reason: Buffer) => {
        clearTimeout(timer);
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  end(): void {
    this.socket.terminate();
  }
}

/**
 * The HTTP status a WebSocket handshake to `url` offering `protocols` is refused with, or
 * 101 if it is accepted.
 */
export async function handshakeStatus(url: string, protocols: string[] = ['mqtt']): Promise<number> {
  const socket = new WebSocket(url, protocols);
  return new Promise((resolve, reject) => {
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('open', () => {
      resolve(101);
      socket.terminate();
    });
    socket.once('error', (error) => reject(error));
  });
}
