import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import WebSocket, { type ClientOptions, createWebSocketStream } from 'ws';
import { type Cicada, type CicadaOptions, createBroker } from '../../src/index.js';
import type { ListenOptions } from '../../src/transport/transport.js';

/** Shared by the WebSocket test files: brokers listening on TCP and WebSocket, and WebSocket byte streams. */

/** A broker on `mqtt://127.0.0.1:0` and a WebSocket URL on a free port. */
export interface WsBroker {
  readonly broker: Cicada;
  /** `mqtt://127.0.0.1:PORT` */
  readonly tcpUrl: string;
  /** `ws://127.0.0.1:PORT/mqtt` (or `wss://`) */
  readonly wsUrl: string;
  readonly wsPort: number;
  close(): Promise<void>;
}

/** Starts a broker listening on TCP and on `ws://127.0.0.1:0/mqtt` (`wss://` when `listen.tls` is given). */
export async function startWsBroker(
  options: CicadaOptions = {},
  listen: ListenOptions = {},
): Promise<WsBroker> {
  const broker = createBroker({ onError: (e) => console.error('broker error:', e), ...options });
  try {
    const tcp = await broker.listen('mqtt://127.0.0.1:0');
    const scheme = listen.tls === undefined ? 'ws' : 'wss';
    const ws = await broker.listen(`${scheme}://127.0.0.1:0/mqtt`, listen);
    return {
      broker,
      tcpUrl: `mqtt://127.0.0.1:${tcp.port}`,
      wsUrl: `${scheme}://127.0.0.1:${ws.port}/mqtt`,
      wsPort: ws.port,
      close: () => broker.close(),
    };
  } catch (error) {
    await broker.close();
    throw error;
  }
}

/**
 * A client byte stream over a WebSocket to `url` (subprotocol `mqtt`), open and ready. It is
 * `ws`'s own stream adapter, so the server's adapter is checked against an independent one;
 * that adapter does not emit 'close' when the peer closes, so the WebSocket's close destroys it.
 */
export async function wsClientStream(url: string, options: ClientOptions = {}): Promise<Duplex> {
  const socket = new WebSocket(url, ['mqtt'], options);
  await once(socket, 'open');
  const stream = createWebSocketStream(socket);
  stream.on('error', () => {});
  socket.once('close', () => stream.destroy());
  return stream;
}
