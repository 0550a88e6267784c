import { createServer, type Server, type Socket } from 'node:net';
import { readProxyHeader } from './proxy-protocol.js';
import type { ConnectionHandler, ConnectionInfo, Listener, ListenOptions, Transport } from './transport.js';

export const DEFAULT_MQTT_PORT = 1883;
/** The port STOMP brokers conventionally listen on. */
export const DEFAULT_STOMP_PORT = 61613;

/** How long a connection may take to send its PROXY protocol header. */
export const PROXY_HEADER_TIMEOUT_MS = 10_000;

/** Timing settings of the socket transports (tests shorten them). */
export interface SocketTransportOptions {
  /** How long a PROXY protocol header may take. Default 10 s. */
  readonly proxyHeaderTimeoutMs?: number;
}

/**
 * Hands each accepted socket to `accept` with its client's address: the socket's own, or,
 * with `proxyProtocol`, the one its PROXY header names (a bad header closes that socket only).
 */
export function acceptSockets(
  server: Server,
  proxyProtocol: boolean,
  proxyHeaderTimeoutMs: number,
  accept: (socket: Socket, remote: Pick<ConnectionInfo, 'remoteAddress' | 'remotePort'>) => void,
): void {
  server.on('connection', (socket: Socket) => {
    const own = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
    if (!proxyProtocol) {
      accept(socket, own);
      return;
    }
    readProxyHeader(socket, proxyHeaderTimeoutMs).then(
      ({ source }) =>
        accept(
          socket,
          source === undefined ? own : { remoteAddress: source.address, remotePort: source.port },
        ),
      // The socket is already destroyed; only its sender loses.
      () => {},
    );
  });
}

/** The host a listener URL names, brackets off an IPv6 literal; all interfaces when it names none. */
export function listenHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '') || '0.0.0.0';
}

/** Binds `server` to the URL's host and port and describes it as a `Listener`. */
export function bindListener(
  server: Server,
  url: URL,
  defaultPort: number,
  extra: Partial<Pick<Listener, 'reload'>> = {},
): Promise<Listener> {
  const host = listenHost(url);
  const port = url.port === '' ? defaultPort : Number(url.port);
  const urlText = url.toString();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address : { address: host, port };
      resolve({
        url: urlText,
        host: bound.address,
        port: bound.port,
        // Stop accepting at once; open connections are closed by their protocol.
        close: async () => {
          server.close();
        },
        ...extra,
      });
    });
  });
}

/**
 * Plain TCP: `mqtt://HOST:PORT` (or `tcp://`) and `stomp://HOST:PORT`, optionally behind a
 * PROXY protocol load balancer. Which protocol a listener speaks is its handler's business.
 */
export class TcpTransport implements Transport {
  readonly schemes = ['mqtt:', 'tcp:', 'stomp:'] as const;

  constructor(private readonly settings: SocketTransportOptions = {}) {}

  listen(url: URL, handler: ConnectionHandler, options: ListenOptions = {}): Promise<Listener> {
    const urlText = url.toString();
    // Nagle with delayed ACK costs tens of milliseconds per small message: disable it.
    const server = createServer({ noDelay: true, keepAlive: true });
    acceptSockets(
      server,
      options.proxyProtocol ?? false,
      this.settings.proxyHeaderTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS,
      (socket, remote) => handler(socket, { ...remote, listener: urlText, secure: false }),
    );
    return bindListener(server, url, url.protocol === 'stomp:' ? DEFAULT_STOMP_PORT : DEFAULT_MQTT_PORT);
  }
}
