import { readFile } from 'node:fs/promises';
import { type AclFile, type AclRule, parseAclFile } from './acl-file.js';
import { type ConcreteRule, RuleSet } from './acl-rules.js';
import { stripShare } from './topic-filter.js';
import type { AclGrant, AclSubject, Authorizer, SubscribeDecision } from './types.js';

/** Compiled per-client rule sets kept; beyond it the oldest is compiled again when next needed. */
const RULE_SET_CACHE_SIZE = 4096;

/**
 * Topic permissions from an ACL file (Mosquitto's `acl_file` syntax, see `acl-file.ts`).
 *
 * Precedence, per client:
 * 1. a `superuser` identity may do anything;
 * 2. a credential that carries its own grant (`identity.acl`, e.g. a token's claims) is judged by
 *    that grant alone: the file's rules, patterns included, do not apply to it; its publish
 *    filters grant write, its subscribe filters grant read;
 * 3. otherwise the file: the client's `user` section (or the anonymous section), plus every
 *    `pattern` line with `%u` and `%c` substituted. Deny rules win; what is not granted is denied.
 *
 * Decisions are made when asked: a subscription allowed before a `reload` keeps its decision
 * (and guard) until the client subscribes again or reconnects, when the broker asks again.
 */
export class Acl implements Authorizer {
  private file: AclFile;
  private usesClientId: boolean;
  private readonly ruleSets = new Map<string, RuleSet>();

  private constructor(
    file: AclFile,
    /** The file to re-read on `reload`, when the rules came from one. */
    private readonly path: string | undefined,
  ) {
    this.file = file;
    this.usesClientId = mentionsClientId(file);
  }

  /** Reads and parses an ACL file; throws `AclSyntaxError` (naming `file:line`) or the read error. */
  static async load(path: string): Promise<Acl> {
    return new Acl(parseAclFile(await readFile(path, 'utf8'), path), path);
  }

  /** Rules from text, e.g. in tests; `source` names it in errors. `reload` keeps them as they are. */
  static fromText(text: string, source = 'acl'): Acl {
    return new Acl(parseAclFile(text, source), undefined);
  }

  /** Where the rules came from (the file path, or the `source` given to `fromText`). */
  get source(): string {
    return this.file.source;
  }

  canPublish(subject: AclSubject, topic: string): boolean {
    if (subject.identity?.superuser === true) return true;
    return this.rulesFor(subject).canPublish(topic);
  }

  canSubscribe(subject: AclSubject, filter: string): SubscribeDecision {
    if (subject.identity?.superuser === true) return true;
    return this.rulesFor(subject).canSubscribe(stripShare(filter));
  }

  /**
   * Re-reads the file. A file that cannot be read or parsed changes nothing: the previous rules
   * stay in force and the error says so (and where the file is wrong).
   */
  async reload(): Promise<void> {
    const path = this.path;
    if (path === undefined) return;
    let file: AclFile;
    try {
      file = parseAclFile(await readFile(path, 'utf8'), path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`ACL file not reloaded, the previous rules stay in force: ${reason}`, { cause: error });
    }
    this.file = file;
    this.usesClientId = mentionsClientId(file);
    this.ruleSets.clear();
  }

  private rulesFor(subject: AclSubject): RuleSet {
    const grant = subject.identity?.acl;
    if (grant !== undefined) return grantRules(grant);
    const { username, clientId } = subject;
    // Rule sets are shared by every client they are the same for: per user unless a pattern says %c.
    const userKey = username === undefined ? 'a' : `u${username}`;
    const key = this.usesClientId ? `${userKey}\u0000${clientId}` : userKey;
    let rules = this.ruleSets.get(key);
    if (rules === undefined) {
      rules = new RuleSet(fileRules(this.file, username, clientId));
      if (this.ruleSets.size >= RULE_SET_CACHE_SIZE) {
        this.ruleSets.delete(this.ruleSets.keys().next().value as string);
      }
      this.ruleSets.set(key, rules);
    }
    return rules;
  }
}

function mentionsClientId(file: AclFile): boolean {
  return file.patterns.some((rule) => rule.filter.includes('%c'));
}

/** The file's rules for one client: its section, then the patterns that apply to it. */
function* fileRules(file: AclFile, username: string | undefined, clientId: string): Iterable<ConcreteRule> {
  yield* username === undefined ? file.anonymous : (file.users.get(username) ?? []);
  for (const pattern of file.patterns) {
    const rule = substitute(pattern, username, clientId);
    if (rule !== undefined) yield rule;
  }
}

/** A value that would change a filter's shape if substituted: it could widen a grant. */
const UNSAFE = /[+#/]/;

/**
 * A pattern with `%u` and `%c` replaced, or undefined when it does not apply: `%u` never matches
 * a client without a username, and a name containing `+`, `#` or `/` gets no grant from a
 * pattern (it would reach other clients' topics). A deny pattern still applies with such a
 * name: substituted literally it denies at least what it names.
 */
function substitute(
  pattern: AclRule,
  username: string | undefined,
  clientId: string,
): ConcreteRule | undefined {
  const { filter, access } = pattern;
  const usesUser = filter.includes('%u');
  const usesClient = filter.includes('%c');
  if (usesUser && username === undefined) return undefined;
  if (access !== 'deny' && ((usesUser && UNSAFE.test(username!)) || (usesClient && UNSAFE.test(clientId)))) {
    return undefined;
  }
  if (!usesUser && !usesClient) return pattern;
  return { access, filter: filter.replaceAll('%u', username ?? '').replaceAll('%c', clientId) };
}

/**
 * A credential's `{"publish": [filters], "subscribe": [filters]}` (a token claim, an HTTP hook's
 * answer) as a grant: undefined when absent, 'malformed' when not of that shape.
 */
export function parseAclGrant(value: unknown): AclGrant | 'malformed' | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'malformed';
  const { publish = [], subscribe = [] } = value as { publish?: unknown; subscribe?: unknown };
  if (!stringArray(publish) || !stringArray(subscribe)) return 'malformed';
  return { publish, subscribe };
}

function stringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** Rule sets of credential grants, compiled once per grant object. */
const grantRuleSets = new WeakMap<AclGrant, RuleSet>();

/** A credential's own grant as rules: publish filters grant write, subscribe filters grant read. */
function grantRules(grant: AclGrant): RuleSet {
  let rules = grantRuleSets.get(grant);
  if (rules === undefined) {
    const writes = grant.publish.map((filter): ConcreteRule => ({ access: 'write', filter }));
    const reads = grant.subscribe.map((filter): ConcreteRule => ({ access: 'read', filter }));
    rules = new RuleSet([...writes, ...reads]);
    grantRuleSets.set(grant, rules);
  }
  return rules;
}

/** What `grantAuthorizer` does for a client whose credential carries no grant. */
export interface GrantAuthorizerOptions {
  /** `allow` (default): no grant, no restriction, as with no ACL at all; `deny`: nothing is allowed. */
  readonly withoutGrant?: 'allow' | 'deny';
}

/**
 * An authorizer for setups without an ACL file, where credentials carry their own permissions
 * (e.g. JWT claims): a grant is enforced as in `Acl`, superusers pass, and clients without a
 * grant are allowed or denied everything as `withoutGrant` says.
 */
export function grantAuthorizer(options: GrantAuthorizerOptions = {}): Authorizer {
  const fallback = options.withoutGrant !== 'deny';
  return {
    canPublish(subject, topic) {
      if (subject.identity?.superuser === true) return true;
      const grant = subject.identity?.acl;
      return grant === undefined ? fallback : grantRules(grant).canPublish(topic);
    },
    canSubscribe(subject, filter) {
      if (subject.identity?.superuser === true) return true;
      const grant = subject.identity?.acl;
      return grant === undefined ? fallback : grantRules(grant).canSubscribe(stripShare(filter));
    },
  };
}
