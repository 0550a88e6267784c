import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AccessControl } from '../auth/access-control.js';
import type { SubscribeDecision } from '../auth/types.js';
import type { ClientInfo } from '../broker/hooks.js';
import { HttpError } from './json.js';

/** The cookie `POST /api/v1/login` sets, so that a browser's EventSource is an administrator too. */
export const ADMIN_COOKIE = 'cicada_admin';

/** Who made an HTTP request: the administrator (admin token) or a client of the access control. */
export type Principal = { readonly kind: 'admin' } | { readonly kind: 'client'; readonly client: ClientInfo };

/** Where a request came in, for the ClientInfo of a non-admin caller. */
export interface RequestOrigin {
  readonly listener: string;
  readonly secure: boolean;
}

/** The challenges a 401 offers. */
const CHALLENGES = ['Basic realm="cicada", charset="UTF-8"', 'Bearer realm="cicada"'];

/**
 * Decides who an HTTP caller is: the admin token (Bearer or the login cookie) makes an
 * administrator; other credentials go through the same access control as MQTT, as a client
 * whose protocol is `http`.
 */
export class CallerAuthentication {
  private adminToken: Buffer | undefined;
  /** Clients whose credentials the access control accepted (not anonymous ones). */
  private readonly verified = new WeakSet<ClientInfo>();
  /** A key per process: cookies carry an HMAC of the token under it, never the token. */
  private readonly cookieKey = randomBytes(32);

  constructor(
    adminToken: string | undefined,
    private readonly access: AccessControl | undefined,
  ) {
    this.setAdminToken(adminToken);
  }

  /** Replaces the admin token (a reload); undefined or empty means no administrator. */
  setAdminToken(token: string | undefined): void {
    this.adminToken = token === undefined || token === '' ? undefined : Buffer.from(token, 'utf8');
  }

  /** Whether an admin token is configured. */
  get hasAdmin(): boolean {
    return this.adminToken !== undefined;
  }

  /** Whether `token` is the admin token (constant time). */
  isAdminToken(token: string): boolean {
    return this.adminToken !== undefined && sameBytes(Buffer.from(token, 'utf8'), this.adminToken);
  }

  /** The value of the login cookie for the current admin token (changes when the token does). */
  adminCookieValue(): string {
    if (this.adminToken === undefined) throw new Error('no admin token');
    return createHmac('sha256', this.cookieKey).update(this.adminToken).digest('base64url');
  }

  /** Who is calling; throws a 401 HttpError when credentials are missing or refused. */
  async identify(request: IncomingMessage, origin: RequestOrigin): Promise<Principal> {
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const space = authorization.indexOf(' ');
      const scheme = (space === -1 ? authorization : authorization.slice(0, space)).toLowerCase();
      const value = space === -1 ? '' : authorization.slice(space + 1).trim();
      if (scheme === 'bearer') {
        if (this.isAdminToken(value)) return { kind: 'admin' };
        return this.client(request, origin, undefined, Buffer.from(value, 'utf8'));
      }
      if (scheme === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon === -1) throw unauthorized('malformed Basic credentials');
        const password = Buffer.from(decoded.slice(colon + 1), 'utf8');
        return this.client(request, origin, decoded.slice(0, colon), password);
      }
      throw unauthorized(`unsupported authorization scheme '${scheme}'`);
    }
    const cookie = readCookie(request, ADMIN_COOKIE);
    if (cookie !== undefined && this.adminToken !== undefined) {
      if (sameBytes(Buffer.from(cookie, 'utf8'), Buffer.from(this.adminCookieValue(), 'utf8')))
        return { kind: 'admin' };
    }
    return this.client(request, origin, undefined, undefined);
  }

  /** Whether the caller proved who it is: the administrator, or a client with accepted credentials. */
  isAuthenticated(principal: Principal): boolean {
    return principal.kind === 'admin' || this.verified.has(principal.client);
  }

  /** Whether the caller may publish to `topic` (the administrator may publish anywhere). */
  canPublish(principal: Principal, topic: string): boolean {
    if (principal.kind === 'admin' || this.access === undefined) return true;
    return this.access.canPublish(principal.client, topic);
  }

  /** Whether the caller may subscribe to `filter`: yes, no, or a guard checking each topic. */
  canSubscribe(principal: Principal, filter: string): SubscribeDecision {
    if (principal.kind === 'admin' || this.access === undefined) return true;
    return this.access.canSubscribe(principal.client, filter);
  }

  private async client(
    request: IncomingMessage,
    origin: RequestOrigin,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Principal> {
    const client = httpClientInfo(request, origin, `http:${username ?? 'anonymous'}`, username);
    // Embedded without access control: everyone who is not the administrator is an anonymous client.
    if (this.access === undefined) return { kind: 'client', client };
    const result = await this.access.authenticate({
      clientId: client.clientId,
      client,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
    });
    if (result === true) {
      if (username !== undefined || password !== undefined) this.verified.add(client);
      return { kind: 'client', client };
    }
    throw unauthorized(
      username === undefined && password === undefined ? 'credentials required' : 'credentials refused',
    );
  }
}

/** The ClientInfo of an HTTP caller as the broker and the access control see it: protocol `http`. */
export function httpClientInfo(
  request: IncomingMessage,
  origin: RequestOrigin,
  clientId: string,
  username?: string,
): ClientInfo {
  const socket = request.socket;
  return {
    clientId,
    ...(username === undefined ? {} : { username }),
    protocol: 'http',
    protocolVersion: 0,
    ...(socket.remoteAddress === undefined ? {} : { remoteAddress: socket.remoteAddress }),
    ...(socket.remotePort === undefined ? {} : { remotePort: socket.remotePort }),
    listener: origin.listener,
    keepAlive: 0,
    connectedAt: Date.now(),
    secure: origin.secure,
  };
}

/** A 401 with the challenges the API accepts. */
export function unauthorized(message: string): HttpError {
  return new HttpError(401, 'unauthorized', message, { 'www-authenticate': CHALLENGES });
}

/** A 403: the caller is known but not allowed. */
export function forbidden(message: string): HttpError {
  return new HttpError(403, 'forbidden', message);
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  // timingSafeEqual needs equal lengths; comparing the length first reveals only the length.
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of a cookie of the request, if present. */
function readCookie(request: IncomingMessage, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
