import type { Duplex } from 'node:stream';
import type { CertificateInfo } from '../broker/hooks.js';

/** What a transport knows about a connection it hands to a protocol. */
export interface ConnectionInfo {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  /** The listener URL, e.g. `mqtt://0.0.0.0:1883`. */
  readonly listener: string;
  readonly secure: boolean;
  /** The client certificate, on TLS listeners that ask for one and got one. */
  readonly certificate?: CertificateInfo;
}

/** A protocol's entry point: take over a connected byte stream. */
export type ConnectionHandler = (stream: Duplex, info: ConnectionInfo) => void;

/** TLS settings of an `mqtts:`/`wss:` listener: PEM files, read at listen and on `reload`. */
export interface TlsListenOptions {
  readonly cert: string;
  readonly key: string;
  /** CA bundle that client certificates must chain to (mutual TLS). */
  readonly ca?: string;
  readonly passphrase?: string;
  /** Ask clients for a certificate. */
  readonly requestCert?: boolean;
  /** Refuse clients without a valid certificate (only with `requestCert`). Default true. */
  readonly requireCert?: boolean;
  /** Take the username from the client certificate: its subject CN or a SAN. */
  readonly usernameFrom?: 'cn' | 'san-dns' | 'san-email' | 'san-uri';
}

/** How a WebSocket listener's protocol uses WebSocket (the transport defaults to MQTT's way). */
export interface WebSocketProtocolOptions {
  /** Subprotocols accepted, preferred first. */
  readonly subprotocols: readonly string[];
  /** Take text messages as bytes too (STOMP clients send frames as text); MQTT allows only binary. */
  readonly acceptText: boolean;
}

/** Per-listener transport settings. */
export interface ListenOptions {
  readonly tls?: TlsListenOptions;
  /** WebSocket listeners of a protocol other than MQTT (STOMP): its subprotocols and message types. */
  readonly webSocket?: WebSocketProtocolOptions;
  /** Expect a PROXY protocol v1/v2 header first (a load balancer in front keeps the client's address). */
  readonly proxyProtocol?: boolean;
}

/** A bound listener. */
export interface Listener {
  /** The URL it was asked to listen on. */
  readonly url: string;
  /** Where it actually listens (the port is real even when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Stops accepting; open connections are left to their protocol to close. */
  close(): Promise<void>;
  /** Re-reads what the listener loaded from files (TLS certificates); new connections use it. */
  reload?(): Promise<void>;
}

/**
 * A way in: binds a URL and hands each accepted connection, as a Duplex stream, to the
 * protocol handler. TCP now; TLS and WebSocket plug in the same way.
 */
export interface Transport {
  /** URL schemes this transport serves, e.g. `['mqtt:', 'tcp:']`. */
  readonly schemes: readonly string[];
  listen(url: URL, handler: ConnectionHandler, options?: ListenOptions): Promise<Listener>;
}
