import { createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { acceptSockets, bindListener, PROXY_HEADER_TIMEOUT_MS, type SocketTransportOptions } from './tcp.js';
import { certificateInfo, readTlsFiles, reloadSecureContext } from './tls-context.js';
import type { ConnectionHandler, ConnectionInfo, Listener, ListenOptions, Transport } from './transport.js';

/** The IANA port for MQTT over TLS. */
export const DEFAULT_MQTTS_PORT = 8883;
/** The port STOMP over TLS conventionally uses. */
export const DEFAULT_STOMPS_PORT = 61614;

/** How long a client may take to complete the TLS handshake. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Timing settings of the TLS transport (tests shorten them). */
export interface TlsTransportOptions extends SocketTransportOptions {
  /** How long a TLS handshake may take. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
}

/** The four-tuple naming a connection, the same on the raw socket and the TLS socket over it. */
function connectionKey(socket: {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}

/**
 * MQTT over TLS: `mqtts://HOST:PORT` (or `ssl://`, `tls://`), and STOMP over TLS: `stomps://`,
 * with `ListenOptions.tls`.
 * A plain TCP server accepts; each socket (after its PROXY header, if configured, which comes
 * before the handshake) is handed to a TLS server that never listens itself, so handshakes,
 * client certificate checks, timeouts and `setSecureContext` work as in any Node TLS server.
 */
export class TlsTransport implements Transport {
  readonly schemes = ['mqtts:', 'ssl:', 'tls:', 'stomps:'] as const;

  constructor(private readonly settings: TlsTransportOptions = {}) {}

  async listen(url: URL, handler: ConnectionHandler, options: ListenOptions = {}): Promise<Listener> {
    const tls = options.tls;
    if (tls === undefined)
      throw new Error(
        `${url.toString()} needs TLS settings: a certificate and a key file (ListenOptions.tls)`,
      );
    const urlText = url.toString();
    const initial = await readTlsFiles(tls);

    // Client addresses from PROXY headers, until the handshake hands the connection over.
    const proxied = new Map<string, Pick<ConnectionInfo, 'remoteAddress' | 'remotePort'>>();
    const tlsServer = createTlsServer({
      ...initial,
      handshakeTimeout: this.settings.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
    });
    // Garbage, a failed handshake or a refused certificate costs only that socket.
    tlsServer.on('tlsClientError', (_error: Error, socket: TLSSocket) => socket.destroy());
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      const key = connectionKey(socket);
      const remote = proxied.get(key) ?? {
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
      };
      proxied.delete(key);
      socket.setNoDelay(true);
      const certificate = tls.requestCert ? certificateInfo(socket, tls.usernameFrom) : undefined;
      handler(socket, {
        ...remote,
        listener: urlText,
        secure: true,
        ...(certificate === undefined ? {} : { certificate }),
      });
    });

    // Nagle with delayed ACK costs tens of milliseconds per small message: disable it.
    const server = createNetServer({ noDelay: true, keepAlive: true });
    acceptSockets(
      server,
      options.proxyProtocol ?? false,
      this.settings.proxyHeaderTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS,
      (socket, remote) => {
        if (options.proxyProtocol) {
          const key = connectionKey(socket);
          proxied.set(key, remote);
          socket.once('close', () => proxied.delete(key));
        }
        // Errors before the TLS socket takes over must not go unhandled.
        socket.on('error', () => socket.destroy());
        tlsServer.emit('connection', socket);
      },
    );

    const reload = (): Promise<void> => reloadSecureContext(tlsServer, tls, `of ${urlText}`);
    const port = url.protocol === 'stomps:' ? DEFAULT_STOMPS_PORT : DEFAULT_MQTTS_PORT;
    return bindListener(server, url, port, { reload });
  }
}
