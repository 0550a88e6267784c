import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import {
  type ConnectPacket,
  encode,
  MqttDecoder,
  type Packet,
  type ProtocolVersion,
  type PublishPacket,
} from '../../src/codec/mqtt/index.js';

/** A PUBLISH of payload 'x', QoS 0, RETAIN and DUP 0, unless `fields` say otherwise (QoS 1 and 2 want a packetId). */
export function publishPacket(
  topic: string,
  fields: Partial<Omit<PublishPacket, 'type' | 'topic'>> = {},
): PublishPacket {
  return { type: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false, ...fields };
}

/**
 * A bare MQTT client over a real socket, speaking through our codec: for the edge cases a
 * well-behaved library will not produce (duplicate packet ids, wrong flags, garbage) and for
 * checking exact packets the broker sends.
 */
export class RawClient {
  readonly packets: Packet[] = [];
  closed = false;
  private readonly waiters: { match: (p: Packet) => boolean; resolve: (p: Packet) => void }[] = [];
  private readonly decoder: MqttDecoder;

  private constructor(
    readonly socket: Socket,
    readonly version: ProtocolVersion,
  ) {
    this.decoder = new MqttDecoder((p) => this.onPacket(p), { protocolVersion: version });
    socket.on('data', (chunk: Buffer) => this.decoder.feed(chunk));
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static async open(port: number, version: ProtocolVersion = 4): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    await once(socket, 'connect');
    return new RawClient(socket, version);
  }

  /** Opens a socket and completes CONNECT/CONNACK; fails unless the broker accepts. */
  static async connect(
    port: number,
    connect: Partial<ConnectPacket> & { protocolVersion?: ProtocolVersion } = {},
  ): Promise<RawClient> {
    const client = await RawClient.open(port, connect.protocolVersion ?? 4);
    const connack = await client.handshake(connect);
    if (connack.type !== 'connack' || connack.reasonCode !== 0)
      throw new Error(`refused: ${JSON.stringify(connack)}`);
    return client;
  }

  /**
   * Sends CONNECT (at this client's version, clean, keep alive 60 and an empty client
   * identifier unless `connect` says otherwise) and resolves with the CONNACK, whatever it says.
   */
  handshake(connect: Partial<ConnectPacket> = {}): Promise<Extract<Packet, { type: 'connack' }>> {
    this.send({
      type: 'connect',
      protocolVersion: this.version,
      clean: true,
      keepAlive: 60,
      clientId: '',
      ...connect,
    });
    return this.next('connack');
  }

  send(packet: Packet): void {
    this.socket.write(encode(packet, this.version));
  }

  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  private onPacket(packet: Packet): void {
    const index = this.waiters.findIndex((w) => w.match(packet));
    if (index >= 0) {
      this.waiters.splice(index, 1)[0]!.resolve(packet);
      return;
    }
    this.packets.push(packet);
  }

  /** The next packet of a type (already received or yet to come). */
  next<T extends Packet['type']>(type: T, ms = 5000): Promise<Extract<Packet, { type: T }>> {
    const index = this.packets.findIndex((p) => p.type === type);
    if (index >= 0) return Promise.resolve(this.packets.splice(index, 1)[0] as Extract<Packet, { type: T }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${type} within ${ms} ms; got ${this.packets.map((p) => p.type)}`)),
        ms,
      );
      this.waiters.push({
        match: (p) => p.type === type,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p as Extract<Packet, { type: T }>);
        },
      });
    });
  }

  /** Resolves when the broker closes the connection. */
  closedByBroker(ms = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(new Error(`broker did not close the connection within ${ms} ms`));
      }, ms);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  end(): void {
    this.socket.destroy();
  }
}
