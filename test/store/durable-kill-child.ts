/**
 * Child process of the durable store's crash test: `node durable-kill-child.js <dir> <writers>
 * <count> <firstSeq>`. Opens the store in <dir>, then <writers> clients each enqueue <count>
 * QoS 1 deliveries (seqs from <firstSeq>), one at a time, and after each awaited write print
 * `<client> <seq>` on stdout (synchronous on a pipe): a printed line is an acknowledged write.
 * Every fifth delivery is removed again once acknowledged, printed as `-<client> <seq>`,
 * so the file also sees deletions when it is killed. Prints `ready` once the sessions are
 * saved and `done` at the end. Does nothing when imported or run without arguments (a test runner may load it).
 */
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Message } from '../../src/broker/message.js';
import { DurableStore } from '../../src/store/durable/index.js';

export const T0 = 1_700_000_000_000;

/** The payload of delivery `seq` of `client`, so the parent can check bytes. */
export function payloadOf(client: string, seq: number): Buffer {
  const text = `${client}:${seq}:`;
  return Buffer.concat([Buffer.from(text), Buffer.alloc(seq % 300, seq & 0xff)]);
}

export function messageOf(client: string, seq: number): Message {
  return {
    id: `${client}-${seq}`,
    topic: `kill/${client}`,
    payload: payloadOf(client, seq),
    qos: 1,
    retain: false,
    createdAt: T0,
  };
}

function say(line: string): void {
  writeSync(1, `${line}\n`);
}

async function main(dir: string, writers: number, count: number, firstSeq: number): Promise<void> {
  // The parent verified the file already; skip the child-process check to start faster.
  const store = new DurableStore({ directory: dir, verifyOnOpen: false });
  await store.open(T0);
  const clients = Array.from({ length: writers }, (_, i) => `w${i}`);
  await Promise.all(
    clients.map((clientId) => store.saveSession({ clientId, expiryInterval: 0xffffffff, subscriptions: [] })),
  );
  say('ready');
  await Promise.all(
    clients.map(async (client) => {
      for (let seq = firstSeq; seq < firstSeq + count; seq++) {
        await store.enqueue(client, [{ seq, message: messageOf(client, seq), qos: 1, retain: false }]);
        say(`${client} ${seq}`);
        if (seq % 5 === 0) {
          await store.removeDelivery(client, seq);
          say(`-${client} ${seq}`);
        }
      }
    }),
  );
  say('done');
  await store.close();
}

const [script, dir, writers, count, firstSeq] = process.argv.slice(1);
if (dir !== undefined && script !== undefined && import.meta.url === pathToFileURL(script).href) {
  main(dir, Number(writers), Number(count), Number(firstSeq)).catch((error: unknown) => {
    say(`error ${(error as Error).stack}`);
    process.exitCode = 1;
  });
}
