import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Client, type IFrame, type IMessage, type StompConfig, type StompHeaders } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import WebSocket from 'ws';
import {
  encodeFrame,
  StompDecoder,
  type StompFrame,
  type StompVersion,
} from '../../src/codec/stomp/index.js';
import { type Cicada, type CicadaOptions, createBroker } from '../../src/index.js';

/** Where a STOMP client connects: a `stomp://` port, or a WebSocket URL (`ws://.../stomp`). */
export type StompTarget = { readonly port: number } | { readonly url: string };

/**
 * A connected @stomp/stompjs client (the real third-party client), over TCP (through
 * @stomp/tcp-wrapper) or WebSocket (through `ws`). No reconnection and, unless `config` says
 * otherwise, no heart-beats: a test decides what it wants. Rejects when the broker answers
 * ERROR or closes before CONNECTED.
 */
export async function connectStomp(target: StompTarget, config: StompConfig = {}): Promise<Client> {
  const client = new Client({
    webSocketFactory: () =>
      'port' in target
        ? new TCPWrapper('127.0.0.1', target.port)
        : new WebSocket(target.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    ...config,
  });
  await new Promise<void>((resolve, reject) => {
    client.onConnect = () => resolve();
    client.onStompError = (frame) => reject(new Error(`ERROR: ${frame.headers.message}`));
    client.onWebSocketClose = () => reject(new Error('closed before CONNECTED'));
    client.activate();
  });
  client.onStompError = () => {};
  client.onWebSocketClose = () => {};
  return client;
}

/** Disconnects gracefully (DISCONNECT with a receipt, then the socket closes). */
export async function closeStomp(client: Client): Promise<void> {
  await client.deactivate();
}

/** The messages one subscription received, and a way to wait for the next ones. */
export interface Inbox {
  readonly messages: IMessage[];
  /** Resolves with the message at index `index` (the next one by default) once it arrived. */
  next(index?: number): Promise<IMessage>;
  unsubscribe(): void;
}

/** Subscribes and collects what arrives; resolves once the broker confirmed the SUBSCRIBE (a receipt). */
export async function subscribe(
  client: Client,
  destination: string,
  headers: StompHeaders = {},
): Promise<Inbox> {
  const messages: IMessage[] = [];
  const waiters: { index: number; resolve: (m: IMessage) => void }[] = [];
  let read = 0;
  const receipt = `sub-${Math.random().toString(36).slice(2)}`;
  const confirmed = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  const subscription = client.subscribe(
    destination,
    (message) => {
      messages.push(message);
      for (const waiter of waiters.splice(0)) {
        if (messages.length > waiter.index) waiter.resolve(messages[waiter.index]!);
        else waiters.push(waiter);
      }
    },
    { ...headers, receipt },
  );
  await confirmed;
  return {
    messages,
    next(index = read) {
      read = index + 1;
      if (messages.length > index) return Promise.resolve(messages[index]!);
      return new Promise((resolve) => waiters.push({ index, resolve }));
    },
    unsubscribe: () => subscription.unsubscribe(),
  };
}

/** Sends with a receipt and resolves once the broker confirmed it. */
export function sendConfirmed(
  client: Client,
  destination: string,
  body: string,
  headers: StompHeaders = {},
): Promise<IFrame> {
  const receipt = `send-${Math.random().toString(36).slice(2)}`;
  const confirmed = new Promise<IFrame>((resolve) => client.watchForReceipt(receipt, resolve));
  client.publish({ destination, body, headers: { ...headers, receipt } });
  return confirmed;
}

/**
 * A bare STOMP client over a real socket, speaking through our codec: for the edge cases a
 * well-behaved client will not produce (garbage, truncated frames, silence) and for checking
 * the exact frames the broker sends.
 */
export class RawStomp {
  readonly frames: StompFrame[] = [];
  /** Resolves once the broker closed the connection (or it failed). */
  readonly closed: Promise<void>;
  isClosed = false;
  heartbeats = 0;
  private readonly decoder = new StompDecoder({ maxFrameSize: 64 * 1024 * 1024 });
  private readonly waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(
        chunk,
        (frame) => this.frames.push(frame),
        () => this.heartbeats++,
      );
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        for (const wake of this.waiters.splice(0)) wake();
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<RawStomp> {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    await once(socket, 'connect');
    return new RawStomp(socket);
  }

  /** Opens a socket and completes CONNECT/CONNECTED (1.2 unless `headers` say otherwise). */
  static async connect(port: number, headers: [string, string][] = []): Promise<RawStomp> {
    const client = await RawStomp.open(port);
    const accept = headers.some(([name]) => name === 'accept-version') ? [] : [['accept-version', '1.2']];
    client.send('CONNECT', [...(accept as [string, string][]), ['host', 'test'], ...headers]);
    const connected = await client.nextFrame();
    if (connected.command !== 'CONNECTED') throw new Error(`refused: ${connected.headers.join(';')}`);
    const version = connected.headers.find(([name]) => name === 'version')?.[1] as StompVersion | undefined;
    client.version = version ?? '1.0';
    client.decoder.version = client.version;
    return client;
  }

  version: StompVersion = '1.0';

  /** Writes a frame (headers escaped per the negotiated version); `content-length` is not added. */
  send(command: string, headers: [string, string][], body?: Buffer | string): void {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.socket.write(encodeFrame(command, headers, bytes, this.version));
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** Resolves with the frame at `index` (the next unread one by default) once it arrived. */
  private read = 0;
  async nextFrame(index = this.read): Promise<StompFrame> {
    this.read = index + 1;
    while (this.frames.length <= index) {
      if (this.isClosed) throw new Error(`closed before frame ${index} (got ${this.describe()})`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.frames[index]!;
  }

  /** Resolves once the broker closed the connection; returns the frames it sent. */
  async untilClosed(): Promise<StompFrame[]> {
    await this.closed;
    return this.frames;
  }

  describe(): string {
    return this.frames.map((f) => f.command).join(',') || 'nothing';
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The first value of header `name` of a frame. */
export function header(frame: StompFrame, name: string): string | undefined {
  return frame.headers.find(([key]) => key === name)?.[1];
}

/** A broker on free loopback ports: MQTT over TCP, STOMP over TCP and STOMP over WebSocket. */
export interface StompTestBroker {
  readonly broker: Cicada;
  /** The `stomp://` port. */
  readonly port: number;
  /** The `ws://127.0.0.1:PORT/stomp` URL. */
  readonly wsUrl: string;
  /** The `mqtt://` URL. */
  readonly mqttUrl: string;
  close(): Promise<void>;
}

export async function startStompBroker(options: CicadaOptions = {}): Promise<StompTestBroker> {
  const broker = createBroker({ onError: (e) => console.error('broker error:', e), ...options });
  const mqtt = await broker.listen('mqtt://127.0.0.1:0');
  const stomp = await broker.listen('stomp://127.0.0.1:0');
  const ws = await broker.listen('ws://127.0.0.1:0/stomp');
  return {
    broker,
    port: stomp.port,
    wsUrl: `ws://127.0.0.1:${ws.port}/stomp`,
    mqttUrl: `mqtt://127.0.0.1:${mqtt.port}`,
    close: () => broker.close(),
  };
}
