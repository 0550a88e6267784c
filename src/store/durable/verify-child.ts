/**
 * Run by `verifyInChildProcess` as `node verify-child.js <directory>`: reads every key and
 * value of the store's file through LMDB, as the broker's load is about to, but without
 * decoding anything (the values are only touched, first and last byte, after LMDB copied
 * them), so that a damaged file crashes this throwaway process rather than the broker. What
 * the values mean is checked by the broker's own load, which only throws on a bad value.
 * Walks the main table and the tables of a Cicada store (codec.ts); other names are left to
 * the broker, which refuses them. Each table must yield as many entries as LMDB counted for
 * it (a damaged page can make part of a tree read as empty). Writes nothing.
 * Prints `ok …` and exits 0 on success; on an error LMDB reports prints it as one JSON line
 * `{"code":…,"detail":…}` and exits 1. Does nothing when imported or run without arguments.
 */
import { pathToFileURL } from 'node:url';
import { type DatabaseOptions, open, type RootDatabase } from 'lmdb';
import { openFailureCode } from './errors.js';
import { TABLE_NAMES, tableNames } from './tables.js';

/** Report: what the parent turns into a StoreError. */
function report(code: string, detail: string): void {
  console.log(JSON.stringify({ code, detail }));
  process.exitCode = 1;
}

async function verify(directory: string): Promise<void> {
  let root: RootDatabase<unknown, Buffer>;
  try {
    root = open<unknown, Buffer>({
      path: directory,
      noSubdir: false,
      overlappingSync: false,
      keyEncoding: 'binary',
      encoding: 'binary',
      maxDbs: 16,
    });
  } catch (error) {
    const message = (error as Error).message;
    report(openFailureCode(message), `LMDB cannot open it: ${message}`);
    return;
  }
  let touched = 0;
  /** A value "decoder" that touches the bytes LMDB handed over and keeps nothing. */
  const touch = {
    encode: (value: unknown): unknown => value,
    decode: (bytes: Uint8Array, size: number): null => {
      if (size > 0) touched += bytes[0]! ^ bytes[size - 1]!;
      return null;
    },
  };
  try {
    const names = tableNames(root);
    let entries = names.length;
    for (const name of names) {
      if (!(TABLE_NAMES as readonly string[]).includes(name)) continue;
      // lmdb takes a custom encoder for named tables too; its types only list it for the root.
      const options = { name, keyEncoding: 'binary', encoder: touch } as DatabaseOptions & { name: string };
      const table = root.openDB<unknown, Buffer>(options);
      let read = 0;
      for (const _entry of table.getRange()) read++;
      // LMDB counts a table's entries as it writes them: a damaged tree may read as fewer.
      const counted = (table.getStats() as { entryCount?: number }).entryCount;
      if (counted !== read) {
        report('STORE_CORRUPT', `table ${name} should hold ${counted} entries but ${read} could be read`);
        return;
      }
      entries += read;
    }
    console.log(`ok: ${entries} entries in ${names.length} tables (${touched & 1})`);
  } catch (error) {
    report('STORE_CORRUPT', `reading it failed: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    await root.close().catch(() => undefined);
  }
}

const [script, directory] = process.argv.slice(1);
if (directory !== undefined && script !== undefined && import.meta.url === pathToFileURL(script).href) {
  verify(directory).catch((error: unknown) => {
    console.log(`error: ${(error as Error).message.split('\n')[0]}`);
    process.exitCode = 1;
  });
}
