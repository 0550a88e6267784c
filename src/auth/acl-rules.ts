import type { AclAccess } from './acl-file.js';
import { contains, filterFault, intersect, type Levels, matches, overlaps } from './topic-filter.js';
import type { SubscribeDecision } from './types.js';

/** Publish decisions remembered per rule set: publishing is the hot path, topics repeat. */
const PUBLISH_CACHE_SIZE = 256;

/** One rule with its filter already substituted (`%u`, `%c`) and checked. */
export interface ConcreteRule {
  readonly access: AclAccess;
  readonly filter: string;
}

/**
 * The rules that apply to one client, compiled: which topics it may write, which it may read,
 * and which are denied (deny wins over any grant). Anything not granted is denied.
 */
export class RuleSet {
  private readonly reads: Levels[] = [];
  private readonly writes: Levels[] = [];
  private readonly denies: Levels[] = [];
  private readonly published = new Map<string, boolean>();

  /** Rules with an invalid filter grant nothing (and deny nothing): a bad claim must not widen access. */
  constructor(rules: Iterable<ConcreteRule>) {
    for (const { access, filter } of rules) {
      if (filterFault(filter) !== undefined) continue;
      const levels = filter.split('/');
      if (access === 'deny') this.denies.push(levels);
      if (access === 'read' || access === 'readwrite') this.reads.push(levels);
      if (access === 'write' || access === 'readwrite') this.writes.push(levels);
    }
  }

  /** Whether a message may be published to `topic`: a write rule matches and no deny rule does. */
  canPublish(topic: string): boolean {
    const cached = this.published.get(topic);
    if (cached !== undefined) return cached;
    const levels = topic.split('/');
    const allowed = anyMatches(this.writes, levels) && !anyMatches(this.denies, levels);
    // Bounded: the oldest decision goes first, so a client walking many topics costs a fixed amount.
    if (this.published.size >= PUBLISH_CACHE_SIZE) {
      this.published.delete(this.published.keys().next().value as string);
    }
    this.published.set(topic, allowed);
    return allowed;
  }

  /**
   * Whether a subscription to `filter` (without any `$share/` prefix) may be made:
   * - `false` when nothing it matches may be read (no read rule overlaps it, or what they have
   *   in common lies within a deny rule);
   * - `true` when everything it matches may be read (one read rule contains it, no deny overlaps);
   * - otherwise a guard telling, per delivered topic, whether that message may be read.
   */
  canSubscribe(filter: string): SubscribeDecision {
    if (filterFault(filter) !== undefined) return false;
    const levels = filter.split('/');
    const denies = this.denies.filter((deny) => overlaps(deny, levels));
    const readable: Levels[] = [];
    let reachable = false;
    let cover: Levels | undefined;
    for (const read of this.reads) {
      const common = intersect(read, levels);
      if (common === undefined) continue;
      readable.push(read);
      if (!denies.some((deny) => contains(deny, common))) reachable = true;
      if (cover === undefined && contains(read, levels)) cover = read;
    }
    if (!reachable) return false;
    if (cover !== undefined && denies.length === 0) return true;
    // Only rules that touch the filter matter to the topics it delivers.
    const reads = cover === undefined ? readable : [cover];
    return (topic: string) => {
      const topicLevels = topic.split('/');
      return anyMatches(reads, topicLevels) && !anyMatches(denies, topicLevels);
    };
  }
}

function anyMatches(filters: readonly Levels[], topic: Levels): boolean {
  for (let i = 0; i < filters.length; i++) if (matches(filters[i]!, topic)) return true;
  return false;
}
