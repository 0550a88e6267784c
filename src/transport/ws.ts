import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { type HttpRoute, type HttpServers, refuseUpgrade, sharedHttpServers } from './http-server.js';
import { listenHost } from './tcp.js';
import { certificateInfo } from './tls-context.js';
import type {
  ConnectionHandler,
  ConnectionInfo,
  Listener,
  ListenOptions,
  Transport,
  WebSocketProtocolOptions,
} from './transport.js';
import { WebSocketDuplex } from './ws-stream.js';

/** The path MQTT clients conventionally use, and ours when the URL gives none. */
export const DEFAULT_WS_PATH = '/mqtt';

/** A maximal MQTT packet (the default 1 MiB Maximum Packet Size) plus a few small ones in the same frame. */
export const DEFAULT_WS_MAX_PAYLOAD = 1024 * 1024 + 4096;

/** Milliseconds the peer has to answer our close frame before its socket is cut. */
export const DEFAULT_WS_CLOSE_TIMEOUT = 2000;

/**
 * The WebSocket subprotocols of MQTT, preferred first: `mqtt` (MQTT 3.1.1 and 5.0, MQTT 6.0)
 * and `mqttv3.1`, which MQTT 3.1 clients offer. Either carries any protocol level: the
 * CONNECT packet decides.
 */
export const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const;

/** The WebSocket subprotocols of STOMP, newest first; the CONNECT frame still negotiates the version. */
export const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'] as const;

/** How STOMP uses WebSocket: its subprotocols, and frames in text messages as well as binary ones. */
export const STOMP_WEBSOCKET: WebSocketProtocolOptions = {
  subprotocols: STOMP_SUBPROTOCOLS,
  acceptText: true,
};

/** MQTT's way (MQTT 6.0): its subprotocols, binary messages only. */
const MQTT_WEBSOCKET: WebSocketProtocolOptions = { subprotocols: MQTT_SUBPROTOCOLS, acceptText: false };

/** Settings of the WebSocket transport. */
export interface WebSocketTransportOptions {
  /**
   * Largest WebSocket message accepted, in bytes; a larger one closes its connection with
   * 1009. Keep it at least the MQTT Maximum Packet Size. Default 1 MiB + 4 KiB.
   */
  readonly maxPayload?: number;
  /** Milliseconds to wait for the peer's close frame. Default 2000. */
  readonly closeTimeout?: number;
  /** The HTTP servers to share ports with. Default: the process-wide pool. */
  readonly httpServers?: HttpServers;
}

/** `ws` 8.23 reads `closeTimeout`; @types/ws does not know it yet. */
type ServerSettings = ConstructorParameters<typeof WebSocketServer>[0] & { closeTimeout: number };

/**
 * The subprotocol to answer, `false` to refuse, or undefined when the client offered none.
 * A client offering none is let in: several MQTT clients and embedded stacks omit the header,
 * and the first packet must still be a valid CONNECT.
 */
function chooseSubprotocol(ours: readonly string[], header: string | undefined): string | false | undefined {
  if (header === undefined) return undefined;
  return preferredSubprotocol(ours, new Set(header.split(',').map((p) => p.trim())));
}

/** Our preferred subprotocol among those offered, or `false` when none is ours. */
function preferredSubprotocol(ours: readonly string[], offered: ReadonlySet<string>): string | false {
  return ours.find((p) => offered.has(p)) ?? false;
}

/**
 * MQTT over WebSocket (MQTT 6.0): `ws://HOST:PORT/PATH` and `wss://` (TLS from
 * `ListenOptions.tls`); STOMP (`ws://HOST:PORT/stomp`) with `ListenOptions.webSocket`. The
 * port is an HTTP server that other routes (other paths) may share; the default ports are 80
 * and 443, the default path `/mqtt`. Liveness is left to the protocol (MQTT Keep Alive, STOMP
 * heart-beats): no WebSocket pings of our own (`ws` answers the client's).
 */
export class WebSocketTransport implements Transport {
  readonly schemes = ['ws:', 'wss:'] as const;
  private readonly servers: HttpServers;
  private readonly maxPayload: number;
  private readonly closeTimeout: number;

  constructor(options: WebSocketTransportOptions = {}) {
    this.servers = options.httpServers ?? sharedHttpServers;
    this.maxPayload = options.maxPayload ?? DEFAULT_WS_MAX_PAYLOAD;
    this.closeTimeout = options.closeTimeout ?? DEFAULT_WS_CLOSE_TIMEOUT;
  }

  async listen(url: URL, handler: ConnectionHandler, options: ListenOptions = {}): Promise<Listener> {
    const secure = url.protocol === 'wss:';
    if (secure && options.tls === undefined)
      throw new Error(`${url} needs TLS settings (certificate and key)`);
    if (options.proxyProtocol === true)
      throw new Error(`${url}: the PROXY protocol is not supported on WebSocket`);
    const host = listenHost(url);
    const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
    const path = url.pathname === '' || url.pathname === '/' ? DEFAULT_WS_PATH : url.pathname;
    const urlText = url.toString();
    const { subprotocols, acceptText } = options.webSocket ?? MQTT_WEBSOCKET;
    const settings: ServerSettings = {
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.maxPayload,
      closeTimeout: this.closeTimeout,
      handleProtocols: (offered) => preferredSubprotocol(subprotocols, offered),
    };
    const wsServer = new WebSocketServer(settings);
    const usernameFrom = options.tls?.usernameFrom;
    const askedForCertificate = options.tls?.requestCert === true;
    const accept = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (chooseSubprotocol(subprotocols, request.headers['sec-websocket-protocol']) === false) {
        refuseUpgrade(socket, 400, `no supported subprotocol: offer ${subprotocols.join(' or ')}`);
        return;
      }
      wsServer.handleUpgrade(request, socket, head, (webSocket) => {
        const raw = request.socket;
        const certificate =
          secure && askedForCertificate ? certificateInfo(raw as TLSSocket, usernameFrom) : undefined;
        const info: ConnectionInfo = {
          remoteAddress: raw.remoteAddress,
          remotePort: raw.remotePort,
          listener: urlText,
          secure,
          ...(certificate === undefined ? {} : { certificate }),
        };
        handler(new WebSocketDuplex(webSocket, { acceptText }), info);
      });
    };
    // Only wss: serves TLS; a ws: listener ignores TLS settings given to every listener.
    const tls = secure ? options.tls : undefined;
    const route: HttpRoute = await this.servers.routeUpgrade(
      { host, port, ...(tls === undefined ? {} : { tls }) },
      path,
      accept,
    );
    return {
      url: urlText,
      host: route.host,
      port: route.port,
      // Stops accepting on this path; open connections are closed by their protocol.
      close: async () => route.close(),
      reload: () => route.reload(),
    };
  }
}
