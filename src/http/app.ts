import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessControl } from '../auth/access-control.js';
import type { SubscribeDecision } from '../auth/types.js';
import {
  CallerAuthentication,
  forbidden,
  httpClientInfo,
  type Principal,
  type RequestOrigin,
  unauthorized,
} from './caller.js';
import { DEFAULT_MAX_BODY_BYTES, HttpError, readJsonBody, sendError, sendJson } from './json.js';

export type { Principal } from './caller.js';
export { HttpError, isObject, sendJson } from './json.js';

/** HTTP methods routes are registered for. */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';

/**
 * Who may call a route: anyone (`none`), only the administrator (`admin`), or any caller the
 * access control admits (`caller`: the administrator or an authenticated client; ACLs apply
 * to clients through `canPublish`/`canSubscribe`).
 */
export type RouteAuth = 'none' | 'admin' | 'caller';

/** What a route handler gets. */
export interface RouteContext {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  /** Path parameters, decoded (`:id` in `/api/v1/clients/:id`; `*topic` takes the rest of the path). */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The caller; anonymous-client for `auth: 'none'` routes that need not know. */
  readonly principal: Principal;
  /** The listener URL the request came in through. */
  readonly listener: string;
  /** Reads the body as JSON (413 beyond the size cap, 400 when not JSON). */
  json(): Promise<unknown>;
  /** Writes a JSON answer. */
  send(status: number, value: unknown, headers?: Readonly<Record<string, string | string[]>>): void;
}

/** A route's code; it writes the answer (or throws an HttpError). */
export type RouteHandler = (context: RouteContext) => void | Promise<void>;

/** A registered route, as the OpenAPI check lists them. */
export interface RouteInfo {
  readonly method: HttpMethod;
  /** The pattern as registered, e.g. `/api/v1/clients/:id`. */
  readonly pattern: string;
  readonly auth: RouteAuth;
}

/** Settings of the HTTP application. */
export interface HttpAppOptions {
  /** The administrator's token (Bearer, or the login cookie); unset means no administrator. */
  readonly adminToken?: string;
  /** Credentials of non-admin callers go through it; absent: non-admin callers are anonymous clients. */
  readonly accessControl?: AccessControl;
  /** Largest JSON body accepted, in bytes. Default 1 MiB. */
  readonly maxBodyBytes?: number;
}

interface Route extends RouteInfo {
  readonly segments: readonly string[];
  readonly handler: RouteHandler;
}

/** The request handler a shared HTTP server calls, with the listener it came in through. */
export type BoundHandler = (request: IncomingMessage, response: ServerResponse) => Promise<void>;

/**
 * The HTTP API: a small router of `method + pattern` routes, each declaring who may call
 * it, with JSON bodies and errors. Modules (health, admin, push, metrics, dashboard)
 * register their routes with `route`; `handler(origin)` gives the function a listener mounts.
 */
export class HttpApp {
  /** How callers are identified; modules use it for ACL checks and the login cookie. */
  readonly auth: CallerAuthentication;
  private readonly routeList: Route[] = [];
  private readonly maxBodyBytes: number;

  constructor(options: HttpAppOptions = {}) {
    this.auth = new CallerAuthentication(options.adminToken, options.accessControl);
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  /** Registers a route; a pattern's `:name` segment is a parameter, a last `*name` takes the rest. */
  route(method: HttpMethod, pattern: string, handler: RouteHandler, options: { auth: RouteAuth }): this {
    if (!pattern.startsWith('/')) throw new Error(`route pattern '${pattern}' must start with /`);
    if (this.routeList.some((r) => r.method === method && r.pattern === pattern))
      throw new Error(`route ${method} ${pattern} is already registered`);
    const segments = pattern.split('/').slice(1);
    const rest = segments.findIndex((s) => s.startsWith('*'));
    if (rest !== -1 && rest !== segments.length - 1)
      throw new Error(`in '${pattern}', a *parameter must be the last segment`);
    this.routeList.push({ method, pattern, auth: options.auth, segments, handler });
    return this;
  }

  /** Every registered route. */
  get routes(): readonly RouteInfo[] {
    return this.routeList.map(({ method, pattern, auth }) => ({ method, pattern, auth }));
  }

  /** Whether the caller may publish to `topic` (the administrator may publish anywhere). */
  canPublish(principal: Principal, topic: string): boolean {
    return this.auth.canPublish(principal, topic);
  }

  /** Whether the caller may subscribe to `filter`: yes, no, or a guard for each topic. */
  canSubscribe(principal: Principal, filter: string): SubscribeDecision {
    return this.auth.canSubscribe(principal, filter);
  }

  /** The request handler for one listener. */
  handler(origin: RequestOrigin): BoundHandler {
    return (request, response) => this.handle(request, response, origin);
  }

  /** Answers one request: routing, authentication, the handler, errors as JSON. */
  async handle(request: IncomingMessage, response: ServerResponse, origin: RequestOrigin): Promise<void> {
    try {
      await this.dispatch(request, response, origin);
    } catch (error) {
      if (response.headersSent) {
        // A streaming answer (SSE) failed half-way: all that is left is to end it.
        response.destroy();
        return;
      }
      if (error instanceof HttpError) sendError(response, error);
      else sendError(response, new HttpError(500, 'internal', 'internal error'));
      if (error instanceof HttpError && error.status === 413) request.resume();
    }
  }

  private async dispatch(request: IncomingMessage, response: ServerResponse, origin: RequestOrigin) {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const found = this.match(request.method ?? 'GET', url.pathname);
    if (found === 'no-path') throw new HttpError(404, 'not-found', `no route for ${url.pathname}`);
    if (Array.isArray(found)) {
      throw new HttpError(405, 'method-not-allowed', `${request.method} is not allowed here`, {
        allow: found.join(', '),
      });
    }
    const { route, params } = found;
    if (crossSiteChange(request))
      throw forbidden('a state-changing request from another site is refused (cross-site request forgery)');
    const principal: Principal =
      route.auth === 'none'
        ? { kind: 'client', client: httpClientInfo(request, origin, 'http:anonymous') }
        : await this.auth.identify(request, origin);
    if (route.auth === 'admin' && principal.kind !== 'admin') {
      // Who gave no (usable) credentials is asked for them; a known client is refused.
      if (!this.auth.isAuthenticated(principal)) throw unauthorized('the admin token is required');
      throw forbidden(this.auth.hasAdmin ? 'administrator only' : 'no admin token is configured');
    }
    await route.handler({
      request,
      response,
      params,
      query: url.searchParams,
      principal,
      listener: origin.listener,
      json: () => readJsonBody(request, this.maxBodyBytes),
      send: (status, value, headers) => sendJson(response, status, value, headers),
    });
  }

  /** The route and its parameters; the allowed methods when only the method differs; or no path. */
  private match(
    method: string,
    path: string,
  ): { route: Route; params: Record<string, string> } | HttpMethod[] | 'no-path' {
    const parts = path.split('/').slice(1);
    const allowed: HttpMethod[] = [];
    for (const route of this.routeList) {
      const params = matchSegments(route.segments, parts);
      if (params === undefined) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
      allowed.push(route.method);
    }
    return allowed.length > 0 ? allowed : 'no-path';
  }
}

/** The parameters if `parts` (raw path segments) fit the pattern's segments. */
function matchSegments(
  segments: readonly string[],
  parts: readonly string[],
): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.startsWith('*')) {
      if (i >= parts.length) return undefined;
      params[segment.slice(1)] = parts.slice(i).map(decode).join('/');
      return params;
    }
    const part = parts[i];
    if (part === undefined) return undefined;
    if (segment.startsWith(':')) {
      if (part === '') return undefined;
      params[segment.slice(1)] = decode(part);
    } else if (segment !== part) return undefined;
  }
  return parts.length === segments.length ? params : undefined;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, 'bad-path', `'${part}' is not a valid URL-encoded path segment`);
  }
}

/**
 * Whether a browser sent a state-changing request on behalf of another site's page. Its
 * credentials are ambient (a Basic login the browser remembers; the admin cookie is
 * SameSite=Strict, but a sibling host or port is the same site), and no answer of this API
 * allows cross-origin calls, so such a request is only ever forgery. Browsers say where it
 * comes from in Sec-Fetch-Site; other clients send no such header.
 */
function crossSiteChange(request: IncomingMessage): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false;
  const site = request.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}
