/**
 * - STORE_FORMAT: the directory holds data this version cannot read (a newer format, or not
 *   a Cicada store at all). Nothing was changed.
 * - STORE_CORRUPT: the data is damaged (unreadable file, a value that does not decode, a
 *   reference to something missing). Nothing was changed.
 * - STORE_OPEN: the directory could not be created or opened (permissions, not a directory).
 * - STORE_WRITE: a write did not reach the disk (disk full, I/O error); it was not applied.
 */
export type StoreErrorCode = 'STORE_FORMAT' | 'STORE_CORRUPT' | 'STORE_OPEN' | 'STORE_WRITE';

/** An error of the durable store, naming the store directory in its message. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly directory: string;

  constructor(code: StoreErrorCode, directory: string, detail: string, options?: { cause?: unknown }) {
    super(`Cicada store ${directory}: ${detail}`, options);
    this.name = 'StoreError';
    this.code = code;
    this.directory = directory;
  }
}

/** How a failure of LMDB's open() is reported: damage it detected, or any other reason. */
export function openFailureCode(message: string): 'STORE_CORRUPT' | 'STORE_OPEN' {
  return /MDB_(INVALID|CORRUPTED|VERSION_MISMATCH|PAGE_NOTFOUND)/.test(message)
    ? 'STORE_CORRUPT'
    : 'STORE_OPEN';
}
