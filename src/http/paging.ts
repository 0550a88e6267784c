import { HttpError } from './json.js';

/** Items per page unless `limit` says otherwise, and the most one page may hold. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** One page of a list: `next` is the cursor of the following page, null on the last. */
export interface Page<T> {
  readonly items: T[];
  readonly next: string | null;
}

/**
 * One page of `items`, ordered by `keyOf` (unique per item). The cursor is the last key
 * shown (opaque to callers), so pages stay consistent while items come and go.
 */
export function paginate<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  query: URLSearchParams,
): Page<T> {
  const limit = pageSize(query.get('limit'));
  const cursor = query.get('cursor');
  const after = cursor === null || cursor === '' ? undefined : decodeCursor(cursor);
  const keyed = items.map((item) => ({ key: keyOf(item), item }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const start = after === undefined ? 0 : keyed.findIndex((k) => k.key > after);
  const from = start === -1 ? keyed.length : start;
  const shown = keyed.slice(from, from + limit);
  const more = from + limit < keyed.length;
  const last = shown.at(-1);
  return {
    items: shown.map((k) => k.item),
    next: more && last !== undefined ? Buffer.from(last.key, 'utf8').toString('base64url') : null,
  };
}

function pageSize(text: string | null): number {
  if (text === null || text === '') return DEFAULT_PAGE_SIZE;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE)
    throw new HttpError(
      400,
      'bad-query',
      `limit is "${text}", expected an integer from 1 to ${MAX_PAGE_SIZE}`,
    );
  return n;
}

function decodeCursor(cursor: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor))
    throw new HttpError(400, 'bad-query', 'cursor is not one this API gave');
  return Buffer.from(cursor, 'base64url').toString('utf8');
}
