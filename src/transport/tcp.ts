import { createServer, type Socket } from 'node:net';
import type { ConnectionHandler, Listener, Transport } from './transport.js';

export const DEFAULT_MQTT_PORT = 1883;

/** Plain TCP: `mqtt://HOST:PORT` (or `tcp://`). */
export class TcpTransport implements Transport {
  readonly schemes = ['mqtt:', 'tcp:'] as const;

  listen(url: URL, handler: ConnectionHandler): Promise<Listener> {
    const host = url.hostname.replace(/^\[|\]$/g, '') || '0.0.0.0';
    const port = url.port === '' ? DEFAULT_MQTT_PORT : Number(url.port);
    const urlText = url.toString();
    // Nagle with delayed ACK costs tens of milliseconds per small message: disable it.
    const server = createServer({ noDelay: true, keepAlive: true }, (socket: Socket) => {
      handler(socket, {
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        listener: urlText,
        secure: false,
      });
    });
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
        });
      });
    });
  }
}
