/**
 * Child process of the durable store's write-failure test: `node durable-full-child.js <dir>`,
 * started under a file size limit (ulimit -f) so that the data file cannot grow, as on a full
 * disk. Enqueues 64 KiB messages until a write rejects, then prints how it rejected, reopens
 * the store and prints what survived. Does nothing when imported or run without arguments.
 */
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { DurableStore, StoreError } from '../../src/store/durable/index.js';

const T0 = 1_700_000_000_000;

function say(line: string): void {
  writeSync(1, `${line}\n`);
}

async function main(directory: string): Promise<void> {
  // With a handler, exceeding the limit makes write() fail with EFBIG instead of killing us.
  process.on('SIGXFSZ', () => undefined);
  const store = new DurableStore({ directory, verifyOnOpen: false });
  await store.open(T0);
  await store.saveSession({ clientId: 'c', expiryInterval: 0xffffffff, subscriptions: [] });
  let acked = 0;
  for (let seq = 1; seq <= 10_000; seq++) {
    const message = {
      id: `m${seq}`,
      topic: 't',
      payload: Buffer.alloc(64 * 1024, seq & 0xff),
      qos: 1 as const,
      retain: false,
      createdAt: T0,
    };
    try {
      await store.enqueue('c', [{ seq, message, qos: 1, retain: false }]);
      acked = seq;
    } catch (error) {
      say(
        `rejected ${error instanceof StoreError ? error.code : 'other'} after ${acked}: ${(error as Error).message}`,
      );
      break;
    }
  }
  if (acked === 10_000) say('never rejected');
  // Informational: whether this instance still takes writes (LMDB may need a reopen).
  await store.markSent('c', 1, 1).then(
    () => say('a write after the failure went through'),
    (error: unknown) => say(`a write after the failure rejected too: ${(error as Error).message}`),
  );
  await store.close().catch((error: unknown) => say(`close failed: ${(error as Error).message}`));

  const again = new DurableStore({ directory, verifyOnOpen: false });
  const state = await again.open(T0);
  const seqs = state.sessions[0]?.deliveries.map((d) => d.seq) ?? [];
  const complete = seqs.length >= acked && seqs.slice(0, acked).every((s, i) => s === i + 1);
  say(
    complete
      ? `still usable: ${seqs.length} deliveries, all ${acked} acknowledged`
      : `lost data: ${seqs.length}`,
  );
  await again.close();
}

const [script, directory] = process.argv.slice(1);
if (directory !== undefined && script !== undefined && import.meta.url === pathToFileURL(script).href) {
  main(directory).catch((error: unknown) => {
    say(`error ${(error as Error).stack}`);
    process.exitCode = 1;
  });
}
