import type { ClientInfo } from '../broker/hooks.js';
import type { RouteContext } from './app.js';
import { httpClientInfo } from './caller.js';

/**
 * The ClientInfo the broker sees for an HTTP caller's action: protocol `http`, the caller's
 * address and listener. A client of the access control keeps its own ClientInfo (what the
 * access control learned about it is keyed on that object), unless `clientId` asks for a
 * new identity (an SSE session); the administrator gets one named `http:admin`.
 */
export function callerClientInfo(context: RouteContext, clientId?: string): ClientInfo {
  const { principal, request, listener } = context;
  if (principal.kind === 'client' && clientId === undefined) return principal.client;
  const username = principal.kind === 'client' ? principal.client.username : undefined;
  const origin = { listener, secure: listener.startsWith('https:') };
  return httpClientInfo(request, origin, clientId ?? 'http:admin', username);
}
