/**
 * Checks an LMDB data file before this process maps it. LMDB keeps no checksums and trusts
 * its file: a damaged one (garbage header, truncation, a bad page) makes the process crash
 * with SIGSEGV or SIGBUS rather than return an error. So, before opening:
 *
 * 1. `checkHeader` reads the two meta pages with plain file reads (magic, page size, last
 *    page and tree roots within the file): a wrong, truncated or overwritten file is caught
 *    here, cheaply.
 * 2. `verifyInChildProcess` reads every key and value of the store through LMDB, without
 *    decoding them, in a separate Node.js process (verify-child.js): the pages the broker's
 *    load will read, read first where a crash costs nothing. If that process dies on a
 *    signal, the file is damaged, and only the throwaway process went down. (What the values
 *    hold is then checked by the load itself, which throws STORE_CORRUPT, never crashes.)
 *
 * Both report with a `StoreError` naming the directory; nothing is repaired or discarded.
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError, type StoreErrorCode } from './errors.js';

export const DATA_FILE = 'data.mdb';

const LMDB_MAGIC = 0xbeefc0de;
/** Page header in this LMDB build (lmdb-js 3.x): pgno(8) txnid(8) pad(2) flags(2) lower(2) upper(2). */
const PAGE_HEADER = 24;
const P_META = 0x08;
const P_INVALID = 0xffff_ffff_ffff_ffffn;

interface MetaPage {
  pageSize: number;
  lastPage: bigint;
  txnId: bigint;
  roots: bigint[];
  /** Entries of the main table: in a Cicada store, its named tables. */
  mainEntries: bigint;
}

/** What the header says about a data file that passed `checkHeader`. */
export interface HeaderInfo {
  /** Entries of the main table (the named tables) in the latest committed transaction. */
  mainEntries: number;
}

/** Reads meta page `index` (0 or 1) given a page size; a reason string when it is not sound. */
function readMeta(fd: number, offset: number): MetaPage | string {
  const page = Buffer.alloc(PAGE_HEADER + 136);
  const read = readSync(fd, page, 0, page.length, offset);
  if (read < page.length) return 'meta page cut short';
  if ((page.readUInt16LE(18) & P_META) === 0) return 'meta page not flagged as such';
  const meta = PAGE_HEADER;
  if (page.readUInt32LE(meta) !== LMDB_MAGIC) return 'bad magic number (not an LMDB file)';
  // mm_dbs[0] (the free-page tree) keeps the page size in its md_pad field.
  const dbs = meta + 24;
  const pageSize = page.readUInt32LE(dbs);
  const roots = [page.readBigUInt64LE(dbs + 40), page.readBigUInt64LE(dbs + 48 + 40)];
  const mainEntries = page.readBigUInt64LE(dbs + 48 + 32);
  const lastPage = page.readBigUInt64LE(dbs + 96);
  const txnId = page.readBigUInt64LE(dbs + 104);
  return { pageSize, lastPage, txnId, roots, mainEntries };
}

/**
 * Throws STORE_CORRUPT unless `directory/data.mdb` looks like a sound LMDB file. A missing or
 * empty file is fine (LMDB creates it): then the result is undefined.
 */
export function checkHeader(directory: string): HeaderInfo | undefined {
  const file = join(directory, DATA_FILE);
  let size: number;
  try {
    size = statSync(file).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (size === 0) return undefined;
  const corrupt = (why: string): StoreError =>
    new StoreError('STORE_CORRUPT', directory, `${DATA_FILE} is damaged: ${why}`);
  const fd = openSync(file, 'r');
  try {
    const first = readMeta(fd, 0);
    if (typeof first === 'string') throw corrupt(`first meta page: ${first}`);
    const { pageSize } = first;
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      throw corrupt(`page size ${pageSize} is impossible`);
    }
    const second = readMeta(fd, pageSize);
    if (typeof second === 'string') throw corrupt(`second meta page: ${second}`);
    if (second.pageSize !== pageSize) throw corrupt('the meta pages disagree on the page size');
    const pages = BigInt(Math.floor(size / pageSize));
    for (const [n, meta] of [first, second].entries()) {
      if (meta.lastPage + 1n > pages) {
        throw corrupt(`meta page ${n} needs ${meta.lastPage + 1n} pages, the file has ${pages} (truncated?)`);
      }
      for (const root of meta.roots) {
        if (root !== P_INVALID && (root < 2n || root > meta.lastPage)) {
          throw corrupt(`meta page ${n} has a tree root at page ${root}, outside the file`);
        }
      }
    }
    const latest = second.txnId > first.txnId ? second : first;
    return { mainEntries: Number(latest.mainEntries) };
  } finally {
    closeSync(fd);
  }
}

const CHILD = fileURLToPath(new URL('./verify-child.js', import.meta.url));

/**
 * Reads the whole store in a child process (verify-child.js): a damaged file crashes that
 * process, not this one. Throws STORE_CORRUPT if it crashes or hangs, and the error the child
 * reports (LMDB refusing the file or failing to read it) as a StoreError.
 */
export function verifyInChildProcess(directory: string): Promise<void> {
  let size = 0;
  try {
    size = statSync(join(directory, DATA_FILE)).size;
  } catch {
    return Promise.resolve();
  }
  if (size === 0) return Promise.resolve();
  // A full read runs at hundreds of MB/s; allow a generous margin before calling it hung.
  const timeout = 60_000 + Math.ceil(size / (20 * 1024 * 1024)) * 1000;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CHILD, directory],
      { timeout, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (!error) {
          resolve();
          return;
        }
        const reported = parseReport(stdout);
        if (reported !== undefined) {
          reject(new StoreError(reported.code, directory, reported.detail));
          return;
        }
        const { signal, killed } = error as { signal?: string | null; killed?: boolean };
        let why: string;
        if (killed && signal === 'SIGKILL') {
          why = `reading it did not finish within ${timeout} ms`;
        } else if (signal) {
          why = `reading it crashed the verifying process (${signal}): the LMDB file is damaged`;
        } else {
          const detail = `${stdout}\n${stderr}`.trim().split('\n').at(-1) ?? '';
          why = `reading it failed: ${detail || error.message}`;
        }
        reject(new StoreError('STORE_CORRUPT', directory, why));
      },
    );
  });
}

/** The child's last line, when it is a StoreError it reported: `{"code":…,"detail":…}`. */
function parseReport(stdout: string): { code: StoreErrorCode; detail: string } | undefined {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  try {
    const report: unknown = JSON.parse(last);
    if (typeof report !== 'object' || report === null) return undefined;
    const { code, detail } = report as { code?: unknown; detail?: unknown };
    const codes: readonly string[] = ['STORE_FORMAT', 'STORE_CORRUPT', 'STORE_OPEN', 'STORE_WRITE'];
    if (typeof code === 'string' && codes.includes(code) && typeof detail === 'string') {
      return { code: code as StoreErrorCode, detail };
    }
  } catch {
    // not a report
  }
  return undefined;
}
