import { filterFault } from './topic-filter.js';

/**
 * The ACL file, in Mosquitto's `acl_file` syntax so existing files carry over:
 *
 *     # Comments take whole lines ('#' later in a line is a wildcard).
 *     topic read public/#
 *     user alice
 *     topic readwrite alice/#
 *     topic deny alice/secret
 *     pattern write devices/%c/#
 *
 * `topic` lines before any `user` line apply to anonymous clients, later ones to the user named
 * above them; `pattern` lines apply to every client, with `%u` (username) and `%c` (client id).
 */

/** What a rule allows: `deny` refuses both directions and wins over any grant. */
export type AclAccess = 'read' | 'write' | 'readwrite' | 'deny';

/** One `topic` or `pattern` line. */
export interface AclRule {
  readonly access: AclAccess;
  /** The topic filter as written (patterns still hold `%u` and `%c`). */
  readonly filter: string;
  /** Where it came from, for messages: `file:line`. */
  readonly origin: string;
}

/** A parsed ACL file. */
export interface AclFile {
  readonly source: string;
  /** `topic` lines before any `user` line: they apply to clients without a username. */
  readonly anonymous: readonly AclRule[];
  /** `topic` lines by the `user` section they follow (a user may have several sections). */
  readonly users: ReadonlyMap<string, readonly AclRule[]>;
  /** `pattern` lines, wherever they appear: they apply to every client. */
  readonly patterns: readonly AclRule[];
}

/** A line of an ACL file that could not be read: `code` is `ACL_SYNTAX`, the message names `file:line`. */
export class AclSyntaxError extends Error {
  override readonly name = 'AclSyntaxError';
  readonly code = 'ACL_SYNTAX';
  constructor(
    readonly source: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${source}:${line}: ${detail}`);
  }
}

const ACCESS_WORDS: ReadonlySet<string> = new Set(['read', 'write', 'readwrite', 'deny']);

/** Splits the first word off `text` (after leading blanks): [word, rest with leading blanks removed]. */
function firstWord(text: string): [string, string] {
  const trimmed = text.trimStart();
  const match = /^(\S+)\s*(.*)$/s.exec(trimmed);
  return match === null ? ['', ''] : [match[1]!, match[2]!];
}

/**
 * Parses ACL file text. `source` names it in errors (`source:line: what was expected`).
 * As in Mosquitto, a username or topic filter is the rest of its line, so it may contain spaces.
 */
export function parseAclFile(text: string, source: string): AclFile {
  const anonymous: AclRule[] = [];
  const users = new Map<string, AclRule[]>();
  const patterns: AclRule[] = [];
  let current = anonymous;
  const lines = text.split(/\r?\n/);
  for (let n = 1; n <= lines.length; n++) {
    const line = lines[n - 1]!.trimEnd();
    const [keyword, rest] = firstWord(line);
    if (keyword === '' || keyword.startsWith('#')) continue;
    if (keyword === 'user') {
      if (rest === '') throw new AclSyntaxError(source, n, `expected a username after 'user'`);
      let rules = users.get(rest);
      if (rules === undefined) {
        rules = [];
        users.set(rest, rules);
      }
      current = rules;
      continue;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      throw new AclSyntaxError(
        source,
        n,
        `expected 'user', 'topic', 'pattern' or a '#' comment, found '${keyword}'`,
      );
    }
    let [access, filter] = firstWord(rest);
    if (ACCESS_WORDS.has(access)) {
      if (filter === '')
        throw new AclSyntaxError(source, n, `expected a topic filter after '${keyword} ${access}'`);
    } else {
      // No access word: the whole rest is the filter, and access defaults to readwrite.
      filter = rest;
      access = 'readwrite';
    }
    if (filter === '')
      throw new AclSyntaxError(
        source,
        n,
        `expected [read|write|readwrite|deny] and a topic filter after '${keyword}'`,
      );
    const fault = filterFault(filter);
    if (fault !== undefined)
      throw new AclSyntaxError(source, n, `invalid topic filter '${filter}': ${fault}`);
    const rule: AclRule = { access: access as AclAccess, filter, origin: `${source}:${n}` };
    (keyword === 'pattern' ? patterns : current).push(rule);
  }
  return { source, anonymous, users, patterns };
}
