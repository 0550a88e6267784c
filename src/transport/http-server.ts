import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { readTlsFiles, reloadSecureContext } from './tls-context.js';
import type { TlsListenOptions } from './transport.js';

/**
 * One HTTP(S) server per host and port, shared by everything that speaks HTTP there:
 * WebSocket upgrades routed by path (`/mqtt`, later `/stomp`) and plain requests routed by
 * path prefix (later the HTTP API). The server opens with its first route and closes with
 * its last.
 */

/** Takes over an upgrade request's socket (a WebSocket handshake, say). */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Answers a plain HTTP request; a thrown error or rejection becomes a 500. */
export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

/** Bounds on the HTTP exchange that precedes an upgrade, or on a plain request. */
export interface HttpLimits {
  /** Milliseconds a client has to send complete request headers (slow-header clients). */
  readonly headersTimeout: number;
  /** Milliseconds a client has to send a whole plain request. */
  readonly requestTimeout: number;
  /** How often those two timeouts are checked, in milliseconds. */
  readonly connectionsCheckingInterval: number;
  /** Milliseconds a client has to complete the TLS handshake (HTTPS). */
  readonly handshakeTimeout: number;
  /** Largest request header block in bytes (Node's default is 16 KiB). */
  readonly maxHeaderSize?: number;
}

/** Node's defaults (60 s, 300 s, checked every 30 s; 120 s for TLS) are generous for a broker facing the internet. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  connectionsCheckingInterval: 5_000,
  handshakeTimeout: 10_000,
};

/** Where a shared server listens; `tls` makes it HTTPS. */
export interface HttpEndpoint {
  readonly host: string;
  /** 0 picks a free port (such a server is shared only once its real port is asked for). */
  readonly port: number;
  readonly tls?: TlsListenOptions;
}

/** One registered route; `close` removes it (and closes the server with its last route). */
export interface HttpRoute {
  /** The address the server is bound to. */
  readonly host: string;
  /** The real port, even when 0 was asked for. */
  readonly port: number;
  readonly secure: boolean;
  /** The TLS settings of an HTTPS server. */
  readonly tls?: TlsListenOptions;
  close(): void;
  /** Re-reads the server's certificate files (HTTPS); new connections use them. */
  reload(): Promise<void>;
}

/** Answers an upgrade request with an HTTP error and closes the socket once it is written. */
export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The path of a request target without its query (`/mqtt?x=1` is `/mqtt`). */
function pathOf(request: IncomingMessage): string {
  const target = request.url ?? '/';
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}

function plainAnswer(response: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  const body = `${STATUS_CODES[status] ?? status}\n`;
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  response.end(body);
}

type NodeServer = ReturnType<typeof createHttpServer> | ReturnType<typeof createHttpsServer>;

/** A bound HTTP(S) server and its routes. */
class SharedHttpServer {
  readonly upgrades = new Map<string, UpgradeHandler>();
  readonly requests = new Map<string, RequestHandler>();
  host = '';
  port = 0;

  constructor(
    readonly server: NodeServer,
    readonly tls: TlsListenOptions | undefined,
  ) {
    server.on('request', (request: IncomingMessage, response: ServerResponse) =>
      this.request(request, response),
    );
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(request, socket, head),
    );
    // A failed handshake or a refused client certificate costs only that socket.
    server.on('tlsClientError', (_error: Error, socket: Duplex) => socket.destroy());
  }

  /** Binds; the promise rejects with the bind error (EADDRINUSE, say). */
  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 4096 }, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        this.host = typeof address === 'object' && address !== null ? address.address : host;
        this.port = typeof address === 'object' && address !== null ? address.port : port;
        resolve();
      });
    });
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    // The HTTP server let go of the socket: its errors (a reset, say) are ours to absorb.
    socket.on('error', () => {});
    const handler = this.upgrades.get(pathOf(request));
    if (handler === undefined) refuseUpgrade(socket, 404, `nothing to upgrade to at ${pathOf(request)}`);
    else handler(request, socket, head);
  }

  private request(request: IncomingMessage, response: ServerResponse): void {
    const path = pathOf(request);
    const handler = this.requestHandler(path);
    if (handler === undefined) {
      // A plain GET on a WebSocket path: tell the client what it should have asked for.
      if (this.upgrades.has(path))
        plainAnswer(response, 426, { upgrade: 'websocket', connection: 'Upgrade' });
      else plainAnswer(response, 404);
      return;
    }
    const failed = (): void => {
      if (!response.headersSent) plainAnswer(response, 500);
      else response.destroy();
    };
    try {
      const pending = handler(request, response);
      if (pending !== undefined) pending.catch(failed);
    } catch {
      failed();
    }
  }

  /** The handler of the longest registered prefix of `path`. */
  private requestHandler(path: string): RequestHandler | undefined {
    let best: string | undefined;
    for (const prefix of this.requests.keys()) {
      if (path.startsWith(prefix) && (best === undefined || prefix.length > best.length)) best = prefix;
    }
    return best === undefined ? undefined : this.requests.get(best);
  }

  get routeCount(): number {
    return this.upgrades.size + this.requests.size;
  }

  async reload(): Promise<void> {
    if (this.tls === undefined || !('setSecureContext' in this.server)) return;
    await reloadSecureContext(this.server, this.tls, `on port ${this.port}`);
  }

  /** Stops accepting; upgraded connections are left to whoever took them over. */
  close(): void {
    this.server.close();
    this.server.closeIdleConnections();
  }
}

interface PoolEntry {
  readonly opening: Promise<SharedHttpServer>;
  /** Routes registered or being registered: the server closes when this falls to 0. */
  users: number;
  readonly tlsKey: string;
}

/**
 * The shared HTTP(S) servers of a process (or of one broker, if it makes its own pool):
 * asking for a route on a host and port that already serves HTTP adds the route there.
 */
export class HttpServers {
  private readonly entries = new Map<string, PoolEntry>();
  private readonly limits: HttpLimits;
  private unique = 0;

  constructor(limits: Partial<HttpLimits> = {}) {
    this.limits = { ...DEFAULT_HTTP_LIMITS, ...limits };
  }

  /** Routes WebSocket upgrades (or any upgrade) for exactly `path` on the endpoint's server. */
  routeUpgrade(endpoint: HttpEndpoint, path: string, handler: UpgradeHandler): Promise<HttpRoute> {
    return this.route(endpoint, (server) => this.claim(server.upgrades, path, handler, 'upgrade path'));
  }

  /** Routes plain requests whose path starts with `prefix` (the longest prefix wins). */
  routeRequests(endpoint: HttpEndpoint, prefix: string, handler: RequestHandler): Promise<HttpRoute> {
    return this.route(endpoint, (server) => this.claim(server.requests, prefix, handler, 'request prefix'));
  }

  private claim<H>(routes: Map<string, H>, key: string, handler: H, what: string): () => void {
    if (routes.has(key)) throw new Error(`${what} ${key} is already taken on this port`);
    routes.set(key, handler);
    return () => {
      routes.delete(key);
    };
  }

  private async route(
    endpoint: HttpEndpoint,
    register: (server: SharedHttpServer) => () => void,
  ): Promise<HttpRoute> {
    const entry = this.acquire(endpoint);
    let server: SharedHttpServer;
    let unregister: () => void;
    try {
      server = await entry.opening;
      unregister = register(server);
    } catch (error) {
      this.release(entry);
      throw error;
    }
    let closed = false;
    return {
      host: server.host,
      port: server.port,
      secure: server.tls !== undefined,
      ...(server.tls === undefined ? {} : { tls: server.tls }),
      close: () => {
        if (closed) return;
        closed = true;
        unregister();
        this.release(entry);
      },
      reload: () => server.reload(),
    };
  }

  /** The pool entry for the endpoint, opening a server if there is none; counts the caller as a user. */
  private acquire(endpoint: HttpEndpoint): PoolEntry {
    const tlsKey = JSON.stringify(endpoint.tls ?? null);
    const wanted = `${endpoint.host}:${endpoint.port}`;
    const existing = endpoint.port === 0 ? undefined : this.entries.get(wanted);
    if (existing !== undefined) {
      if (existing.tlsKey !== tlsKey)
        throw new Error(
          `${wanted} already serves ${existing.tlsKey === 'null' ? 'HTTP' : 'HTTPS'} with other settings`,
        );
      existing.users++;
      return existing;
    }
    // A port-0 server is known under a unique key until its real port is, then under both.
    const key = endpoint.port === 0 ? `${endpoint.host}:0#${++this.unique}` : wanted;
    const entry: PoolEntry = { opening: this.open(endpoint), users: 1, tlsKey };
    this.entries.set(key, entry);
    entry.opening.then(
      (server) => {
        if (endpoint.port === 0 && entry.users > 0)
          this.entries.set(`${endpoint.host}:${server.port}`, entry);
      },
      () => this.forget(entry),
    );
    return entry;
  }

  private release(entry: PoolEntry): void {
    entry.users--;
    if (entry.users > 0) return;
    this.forget(entry);
    entry.opening.then(
      (server) => server.close(),
      () => {},
    );
  }

  private forget(entry: PoolEntry): void {
    for (const [key, value] of this.entries) if (value === entry) this.entries.delete(key);
  }

  private async open(endpoint: HttpEndpoint): Promise<SharedHttpServer> {
    const options = {
      headersTimeout: this.limits.headersTimeout,
      requestTimeout: this.limits.requestTimeout,
      connectionsCheckingInterval: this.limits.connectionsCheckingInterval,
      ...(this.limits.maxHeaderSize === undefined ? {} : { maxHeaderSize: this.limits.maxHeaderSize }),
      // As on the TCP listener: Nagle plus delayed ACK would cost tens of milliseconds per message.
      noDelay: true,
      keepAlive: true,
    };
    const server =
      endpoint.tls === undefined
        ? createHttpServer(options)
        : createHttpsServer({
            ...options,
            handshakeTimeout: this.limits.handshakeTimeout,
            ...(await readTlsFiles(endpoint.tls)),
          });
    const shared = new SharedHttpServer(server, endpoint.tls);
    await shared.listen(endpoint.host, endpoint.port);
    return shared;
  }
}

/** The process-wide pool, used unless a transport is given its own. */
export const sharedHttpServers = new HttpServers();
