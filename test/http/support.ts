import { afterEach } from 'node:test';
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
afterEach(async () => {
  for (const cicada of opened.splice(0).reverse()) await cicada.close();
});

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
