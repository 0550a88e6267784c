import { once } from 'node:events';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import type { IClientOptions } from 'mqtt';
import { type Cicada, type CicadaOptions, createBroker } from '../../src/index.js';
import type { Listener, ListenOptions, TlsListenOptions } from '../../src/transport/transport.js';
import { type CertPair, type TestCerts, testCerts } from '../helpers/certs.js';

/** Shared by the TLS test files: brokers on `mqtts://` listeners and TLS clients that trust the test CA. */

/** A broker with one `mqtts://` listener on a free loopback port. */
export interface TlsBroker {
  readonly broker: Cicada;
  readonly listener: Listener;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** The server certificate of the test CA, as `TlsListenOptions`, with `extra` settings. */
export async function serverTls(extra: Partial<TlsListenOptions> = {}): Promise<TlsListenOptions> {
  const certs = await testCerts();
  return { cert: certs.server.cert, key: certs.server.key, ...extra };
}

/** Starts a broker listening on `mqtts://127.0.0.1:0` with `tls` (and `listen` options). */
export async function startTlsBroker(
  tls: TlsListenOptions,
  listen: Omit<ListenOptions, 'tls'> = {},
  options: CicadaOptions = {},
): Promise<TlsBroker> {
  const broker = createBroker({ onError: (e) => console.error('broker error:', e), ...options });
  try {
    const listener = await broker.listen('mqtts://127.0.0.1:0', { ...listen, tls });
    return {
      broker,
      listener,
      port: listener.port,
      url: `mqtts://127.0.0.1:${listener.port}`,
      close: () => broker.close(),
    };
  } catch (error) {
    await broker.close();
    throw error;
  }
}

/** MQTT.js TLS options trusting the test CA, presenting `cert` if given. */
export function mqttTls(certs: TestCerts, cert?: CertPair): IClientOptions {
  return {
    ca: certs.ca.certPem,
    rejectUnauthorized: true,
    ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }),
  };
}

/** A raw TLS client to `port` trusting the test CA; resolves after the handshake. */
export async function tlsClient(port: number, options: ConnectionOptions = {}): Promise<TLSSocket> {
  const certs = await testCerts();
  const socket = connect({ host: '127.0.0.1', port, ca: certs.ca.certPem, ...options });
  await once(socket, 'secureConnect');
  return socket;
}
