/**
 * Topic filters as sets of topic names, for the ACL: does a filter match a topic, does one
 * filter's set contain another's, do two sets overlap, and what is their intersection. The ACL
 * needs these on its own: `src/auth/` may not reach into the broker's matching trie.
 *
 * Filters are handled as arrays of levels. As in MQTT 4.7: '+' matches exactly one level
 * (possibly empty), a trailing '#' matches any number of levels including none ('a/#' matches
 * 'a', MQTT 4.7.1.2), and a topic starting with '$' is not matched by a filter whose first level
 * is a wildcard (MQTT-4.7.2-1).
 */

/** A topic filter split at '/'. */
export type Levels = readonly string[];

const SHARE_PREFIX = '$share/';

/** The topic filter of a `$share/{group}/{filter}` subscription, or the filter itself (MQTT 4.8.2). */
export function stripShare(filter: string): string {
  if (!filter.startsWith(SHARE_PREFIX)) return filter;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  return slash < 0 ? filter : filter.slice(slash + 1);
}

/** What is wrong with a topic filter (MQTT-4.7.1-1, -2, MQTT-4.7.3-1), or undefined when it is valid. */
export function filterFault(filter: string): string | undefined {
  if (filter.length === 0) return 'a topic filter is at least one character (MQTT-4.7.3-1)';
  if (filter.includes('\u0000')) return 'a topic filter contains no NUL character (MQTT-4.7.3-2)';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '#' && i !== levels.length - 1) return `'#' must be the last level (MQTT-4.7.1-1)`;
    if (level !== '#' && level.includes('#')) return `'#' must be a whole level (MQTT-4.7.1-1)`;
    if (level !== '+' && level.includes('+')) return `'+' must be a whole level (MQTT-4.7.1-2)`;
  }
  return undefined;
}

/** Whether a level is a wildcard. */
function wild(level: string): boolean {
  return level === '+' || level === '#';
}

/** MQTT-4.7.2-1: at the first level, a wildcard does not stand for a level starting with '$'. */
function dollarBlocked(i: number, wildLevel: string, other: string): boolean {
  return i === 0 && wild(wildLevel) && !wild(other) && other.charCodeAt(0) === 36;
}

/** Whether `filter` matches the topic name `topic` (both split into levels). */
export function matches(filter: Levels, topic: Levels): boolean {
  if (filter[0] !== undefined && dollarBlocked(0, filter[0], topic[0]!)) return false;
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i]!;
    // '#' matches the rest, the parent level included (MQTT 4.7.1.2).
    if (level === '#') return true;
    if (i >= topic.length) return false;
    if (level !== '+' && level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

/** Whether every topic `inner` matches is matched by `outer`. */
export function contains(outer: Levels, inner: Levels): boolean {
  for (let i = 0; ; i++) {
    const a = outer[i];
    const b = inner[i];
    if (a === '#') return b === undefined || !dollarBlocked(i, a, b);
    if (a === undefined) return b === undefined;
    // `inner` ended (a topic of exactly i levels) or goes on with '#' (i levels and more), which
    // only `outer`'s '#' covers, unless those i levels make the empty string, which is no topic
    // (MQTT-4.7.3-1): then '#' and '+/#' match the same topics.
    if (b === undefined) return false;
    if (b === '#') return a === '+' && outer[i + 1] === '#' && (i === 0 || (i === 1 && inner[0] === ''));
    if (a === '+') {
      if (dollarBlocked(i, a, b)) return false;
    } else if (a !== b) {
      return false;
    }
  }
}

/**
 * The set of topics both filters match, as a filter, or undefined when there is none.
 * (Every MQTT filter is a product of per-level sets, so an intersection is a filter again.)
 */
export function intersect(x: Levels, y: Levels): Levels | undefined {
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const a = x[i];
    const b = y[i];
    if (a === '#' || b === '#') {
      const [hash, other, otherLevels] = a === '#' ? [a, b, y] : [b as string, a, x];
      if (other === undefined) return topicOrNothing(out); // the parent level: both match exactly i levels
      if (dollarBlocked(i, hash, other)) return undefined;
      return [...out, ...otherLevels.slice(i)];
    }
    if (a === undefined || b === undefined) return a === b ? topicOrNothing(out) : undefined;
    if (a === '+') {
      if (dollarBlocked(i, a, b)) return undefined;
      out.push(b);
    } else if (b === '+') {
      if (dollarBlocked(i, b, a)) return undefined;
      out.push(a);
    } else if (a === b) {
      out.push(a);
    } else {
      return undefined;
    }
  }
}

/** Levels without wildcards, unless they make the empty string, which is no topic (MQTT-4.7.3-1). */
function topicOrNothing(levels: string[]): Levels | undefined {
  return levels.length === 1 && levels[0] === '' ? undefined : levels;
}

/** Whether some topic is matched by both filters. */
export function overlaps(x: Levels, y: Levels): boolean {
  return intersect(x, y) !== undefined;
}
