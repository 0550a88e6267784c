import type { Duplex } from 'node:stream';

/** What a transport knows about a connection it hands to a protocol. */
export interface ConnectionInfo {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  /** The listener URL, e.g. `mqtt://0.0.0.0:1883`. */
  readonly listener: string;
  readonly secure: boolean;
}

/** A protocol's entry point: take over a connected byte stream. */
export type ConnectionHandler = (stream: Duplex, info: ConnectionInfo) => void;

/** A bound listener. */
export interface Listener {
  /** The URL it was asked to listen on. */
  readonly url: string;
  /** Where it actually listens (the port is real even when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Stops accepting; open connections are left to their protocol to close. */
  close(): Promise<void>;
}

/**
 * A way in: binds a URL and hands each accepted connection, as a Duplex stream, to the
 * protocol handler. TCP now; TLS and WebSocket plug in the same way.
 */
export interface Transport {
  /** URL schemes this transport serves, e.g. `['mqtt:', 'tcp:']`. */
  readonly schemes: readonly string[];
  listen(url: URL, handler: ConnectionHandler): Promise<Listener>;
}
