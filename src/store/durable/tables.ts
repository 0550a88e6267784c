/**
 * The LMDB named databases of a Cicada store (format 1, see codec.ts for what they hold) and
 * how they are opened.
 */
import type { Database, RootDatabase } from 'lmdb';

export type Table = Database<unknown, Buffer>;

export interface Tables {
  root: RootDatabase<unknown, Buffer>;
  meta: Database<unknown, string>;
  sessions: Table;
  records: Table;
  deliveries: Table;
  inbound: Table;
  retained: Table;
  messages: Table;
  refs: Table;
}

export const TABLE_NAMES = [
  'meta',
  'sessions',
  'records',
  'deliveries',
  'inbound',
  'retained',
  'messages',
  'refs',
] as const;

export type TableName = (typeof TABLE_NAMES)[number];

/** Opens (creating them if missing, which writes) every table of the store. */
export function openTables(root: RootDatabase<unknown, Buffer>): Tables {
  // Plain MessagePack values: msgpackr's record extension off. Embedded binary data is not
  // copied by the decoder but by codec.ts, when it takes it, before the next read.
  const valueOptions = { encoding: 'msgpack', useRecords: false, copyBuffers: false } as const;
  const table = (name: string): Table =>
    root.openDB<unknown, Buffer>({ name, keyEncoding: 'binary', ...valueOptions });
  return {
    root,
    meta: root.openDB<unknown, string>({ name: 'meta', keyEncoding: 'ordered-binary', ...valueOptions }),
    sessions: table('sessions'),
    records: table('records'),
    deliveries: table('deliveries'),
    inbound: table('inbound'),
    retained: table('retained'),
    messages: table('messages'),
    refs: table('refs'),
  };
}

/** The names of the tables in the root database (kept there NUL-terminated). */
export function tableNames(root: RootDatabase<unknown, Buffer>): string[] {
  const names: string[] = [];
  for (const key of root.getKeys()) names.push(Buffer.from(key).toString('utf8').replace(/\0$/, ''));
  return names;
}
