import { afterEach } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type Cicada, type CicadaOptions, createBroker } from '../../src/index.js';

/** The admin token the HTTP tests configure. */
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** A broker with an HTTP API and an MQTT listener on free loopback ports. */
export interface HttpBroker {
  readonly cicada: Cicada;
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:PORT`. */
  readonly base: string;
  /** The MQTT listener's URL. */
  readonly mqttUrl: string;
}

const opened: Cicada[] = [];
const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  for (const cicada of opened.splice(0).reverse()) await cicada.close();
});

/** An MQTT.js client connected to `url` (no reconnects), ended after the test. */
export async function mqttClient(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.push(client);
  return client;
}

/** Starts a broker (closed after the test) with `http.adminToken` set unless `options.http` says otherwise. */
export async function httpBroker(options: CicadaOptions = {}): Promise<HttpBroker> {
  const cicada = createBroker({
    onError: (e) => console.error('broker error:', e),
    ...options,
    http: { adminToken: ADMIN_TOKEN, ...options.http },
  });
  opened.push(cicada);
  const http = await cicada.listen('http://127.0.0.1:0');
  const mqtt = await cicada.listen('mqtt://127.0.0.1:0');
  return { cicada, base: `http://127.0.0.1:${http.port}`, mqttUrl: `mqtt://127.0.0.1:${mqtt.port}` };
}

/** Headers of an administrator's request. */
export const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` } as const;

/** Fetches `path` and parses the JSON answer (undefined for an empty body). */
export async function fetchJson(
  base: string,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? undefined : JSON.parse(text),
  };
}

/** `fetchJson` as the administrator. */
export function adminJson(base: string, path: string, init: RequestInit = {}) {
  return fetchJson(base, path, {
    ...init,
    headers: { ...ADMIN, ...(init.headers as Record<string, string>) },
  });
}

/** Calls `read` until `done` holds for its answer (or fails after `ms` naming `what`); returns that answer. */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
