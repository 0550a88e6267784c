import { type Cicada, type CicadaOptions, createBroker } from '../../src/index.js';

/** A broker on a free loopback port, for one test; `close` in an `after`/`finally`. */
export interface TestBroker {
  broker: Cicada;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startBroker(options: CicadaOptions = {}): Promise<TestBroker> {
  const broker = createBroker({ onError: (e) => console.error('broker error:', e), ...options });
  const listener = await broker.listen('mqtt://127.0.0.1:0');
  return {
    broker,
    port: listener.port,
    url: `mqtt://127.0.0.1:${listener.port}`,
    close: () => broker.close(),
  };
}

/** Resolves when `predicate` holds, checking on every event loop turn; rejects after `ms` with `what`. */
export async function until(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
