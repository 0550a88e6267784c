/**
 * Run by `verifyInChildProcess` as `node verify-child.js <directory> <now>`: opens the store
 * exactly as the broker is about to (every table read and decoded; the expiry sweep computed
 * but not written, so the broker still sees what expired), so that a damaged file crashes this throwaway process rather than the broker.
 * Prints `ok …` and exits 0 on success; on a StoreError prints it as one JSON line
 * `{"code":…,"detail":…}` and exits 1. Does nothing when imported or run without arguments.
 */
import { pathToFileURL } from 'node:url';
import { StoreError } from './errors.js';
import { DurableStore } from './lmdb-store.js';

async function verify(directory: string, now: number): Promise<void> {
  const store = new DurableStore({ directory, verifyOnOpen: false, commitExpirySweep: false });
  const state = await store.open(now);
  await store.close();
  const deliveries = state.sessions.reduce((n, s) => n + s.deliveries.length, 0);
  console.log(
    `ok: ${state.sessions.length} sessions, ${deliveries} deliveries, ${state.retained.length} retained`,
  );
}

const [script, directory, now] = process.argv.slice(1);
if (directory !== undefined && script !== undefined && import.meta.url === pathToFileURL(script).href) {
  verify(directory, Number(now)).catch((error: unknown) => {
    if (error instanceof StoreError) {
      const prefix = `Cicada store ${directory}: `;
      const detail = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
      console.log(JSON.stringify({ code: error.code, detail }));
    } else {
      console.log(`error: ${(error as Error).message.split('\n')[0]}`);
    }
    process.exitCode = 1;
  });
}
