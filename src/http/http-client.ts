import type { ClientInfo } from '../broker/hooks.js';
import type { RouteContext } from './app.js';

/**
 * The ClientInfo the broker sees for an HTTP caller's action: protocol `http`, the caller's
 * address and listener. A client of the access control keeps its own ClientInfo (what the
 * access control learned about it is keyed on that object), unless `clientId` asks for a
 * new identity (an SSE session); the administrator gets one named `http:admin`.
 */
export function callerClientInfo(context: RouteContext, clientId?: string): ClientInfo {
  const { principal, request, listener } = context;
  if (principal.kind === 'client' && clientId === undefined) return principal.client;
  const known = principal.kind === 'client' ? principal.client : undefined;
  const socket = request.socket;
  return {
    clientId: clientId ?? 'http:admin',
    ...(known?.username === undefined ? {} : { username: known.username }),
    protocol: 'http',
    protocolVersion: 0,
    ...(socket.remoteAddress === undefined ? {} : { remoteAddress: socket.remoteAddress }),
    ...(socket.remotePort === undefined ? {} : { remotePort: socket.remotePort }),
    listener,
    keepAlive: 0,
    connectedAt: Date.now(),
    secure: listener.startsWith('https:'),
  };
}
