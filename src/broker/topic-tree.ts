/**
 * Topic matching structures of the broker core: `SubscriptionTree` maps topic filters to
 * subscribers and answers "who receives a message published to this topic name?" on the
 * publish hot path; `RetainedTree` holds retained messages by topic name and answers "which
 * retained messages does this new subscription receive?".
 *
 * Topic syntax follows MQTT 3.1.1 / 5.0 section 4.7: levels are separated by '/', empty levels
 * are real levels ('/a' has the levels '' and 'a'), '+' matches exactly one level (possibly
 * empty), '#' matches any number of levels including none (so 'a/#' matches 'a'), and topic
 * names starting with '$' are not matched by filters starting with a wildcard. Filters and
 * topic names are assumed to be valid already (the protocol layer checks them).
 */

/** Character code of '$'. */
const DOLLAR = 36;

/**
 * A value list switches to a Map index (O(1) add/remove) above this length and drops it again
 * below LINEAR_MAX / 2, so churn around the threshold does not rebuild it every time.
 */
const LINEAR_MAX = 16;

/** Whether a (valid) filter contains a wildcard level. */
function hasWildcard(filter: string): boolean {
  return filter.indexOf('+') !== -1 || filter.indexOf('#') !== -1;
}

/** The values subscribed under one topic filter. */
class Entry<V> {
  /** Iterated by `match`; replaced rather than mutated while a match is running. */
  values: V[] = [];
  /** value -> position in `values`, present only for long lists. */
  index: Map<V, number> | null = null;
  constructor(readonly filter: string) {}

  /** Adds `value` unless present; returns whether it was added. Copies the list if `shared`. */
  add(value: V, shared: boolean): boolean {
    const index = this.index;
    if (index !== null) {
      if (index.has(value)) return false;
    } else {
      const vals = this.values;
      for (let i = 0; i < vals.length; i++) if (vals[i] === value) return false;
    }
    if (shared) this.values = this.values.slice();
    const vals = this.values;
    vals.push(value);
    if (index !== null) {
      index.set(value, vals.length - 1);
    } else if (vals.length > LINEAR_MAX) {
      const built = new Map<V, number>();
      for (let i = 0; i < vals.length; i++) built.set(vals[i]!, i);
      this.index = built;
    }
    return true;
  }

  /** Removes `value` if present (swap-remove: order is not kept); copies the list if `shared`. */
  remove(value: V, shared: boolean): boolean {
    let pos = -1;
    const index = this.index;
    if (index !== null) {
      const at = index.get(value);
      if (at === undefined) return false;
      pos = at;
      index.delete(value);
    } else {
      const vals = this.values;
      for (let i = 0; i < vals.length; i++) {
        if (vals[i] === value) {
          pos = i;
          break;
        }
      }
      if (pos === -1) return false;
    }
    if (shared) this.values = this.values.slice();
    const vals = this.values;
    const last = vals.pop()!;
    if (pos < vals.length) {
      vals[pos] = last;
      if (index !== null) index.set(last, pos);
    }
    if (index !== null && vals.length < LINEAR_MAX / 2) this.index = null;
    return true;
  }
}

/** A level of the wildcard trie: the filters whose levels so far lead here. */
class SubNode<V> {
  /** Children by literal level. Null when there are none (most nodes), to save memory. */
  children: Map<string, SubNode<V>> | null = null;
  /** The child for a '+' level. */
  plus: SubNode<V> | null = null;
  /** The filter `<this node's levels>/#` ('#' is always last, so it needs no node of its own). */
  hash: Entry<V> | null = null;
  /** The filter ending exactly at this node. */
  entry: Entry<V> | null = null;
  constructor(
    readonly parent: SubNode<V> | null,
    /** The level leading here from the parent ('+' for the parent's `plus`). */
    readonly key: string,
  ) {}

  isEmpty(): boolean {
    return this.entry === null && this.hash === null && this.plus === null && this.children === null;
  }
}

/**
 * Topic filters -> subscriber values, for matching published topic names.
 *
 * Filters without wildcards live in one hash map keyed by the whole filter, so the common
 * exact subscription costs a single lookup per publish; wildcard filters live in a trie walked
 * breadth-first by the topic's levels (no recursion, no `split`: levels are cut out of the
 * topic only when some node needs them). Values are compared by identity (`===`).
 *
 * The visitor of `match` may add and remove subscriptions (a value list being visited is copied
 * before it is changed); values added or removed during a match may or may not be visited by
 * it, every other matching (filter, value) pair is visited exactly once.
 */
export class SubscriptionTree<V> {
  /** Filters without wildcards, by filter. */
  private readonly exact = new Map<string, Entry<V>>();
  /** Root of the trie of filters with wildcards. */
  private readonly root = new SubNode<V>(null, '');
  private pairs = 0;
  private filters = 0;
  /** Matches in progress (match may be re-entered from a visitor). */
  private matching = 0;
  /**
   * Breadth-first frontiers reused between (non-nested) matches. Stale slots are not cleared:
   * what they can keep alive is bounded by the largest frontier and holds no values.
   */
  private frontA: SubNode<V>[] = [];
  private frontB: SubNode<V>[] = [];

  /** Number of (filter, value) pairs. */
  get size(): number {
    return this.pairs;
  }

  /** Number of distinct filters with at least one value. */
  get filterCount(): number {
    return this.filters;
  }

  /** Subscribes `value` under `filter`; adding the same value under the same filter again is a no-op. */
  add(filter: string, value: V): void {
    const shared = this.matching > 0;
    let entry: Entry<V> | null;
    if (!hasWildcard(filter)) {
      entry = this.exact.get(filter) ?? null;
      if (entry === null) {
        entry = new Entry<V>(filter);
        this.exact.set(filter, entry);
        this.filters++;
      }
    } else {
      let node = this.root;
      let start = 0;
      for (;;) {
        const slash = filter.indexOf('/', start);
        const end = slash === -1 ? filter.length : slash;
        const level = filter.slice(start, end);
        if (level === '#') {
          // MQTT-4.7.1-2: '#' is the last level, so the entry hangs off its parent.
          entry = node.hash;
          if (entry === null) {
            entry = node.hash = new Entry<V>(filter);
            this.filters++;
          }
          break;
        }
        let next: SubNode<V> | null | undefined;
        if (level === '+') {
          next = node.plus;
          if (next === null) next = node.plus = new SubNode<V>(node, '+');
        } else {
          let children = node.children;
          if (children === null) children = node.children = new Map();
          next = children.get(level);
          if (next === undefined) {
            next = new SubNode<V>(node, level);
            children.set(level, next);
          }
        }
        node = next;
        if (slash === -1) {
          entry = node.entry;
          if (entry === null) {
            entry = node.entry = new Entry<V>(filter);
            this.filters++;
          }
          break;
        }
        start = slash + 1;
      }
    }
    if (entry.add(value, shared)) this.pairs++;
  }

  /** Unsubscribes `value` from `filter`; returns whether it was subscribed. Prunes what becomes empty. */
  remove(filter: string, value: V): boolean {
    const shared = this.matching > 0;
    if (!hasWildcard(filter)) {
      const entry = this.exact.get(filter);
      if (entry === undefined || !entry.remove(value, shared)) return false;
      this.pairs--;
      if (entry.values.length === 0) {
        this.exact.delete(filter);
        this.filters--;
      }
      return true;
    }
    let node: SubNode<V> | null | undefined = this.root;
    let start = 0;
    let isHash = false;
    for (;;) {
      const slash = filter.indexOf('/', start);
      const end = slash === -1 ? filter.length : slash;
      if (end - start === 1 && filter.charCodeAt(start) === 35 /* '#' */) {
        isHash = true;
        break;
      }
      if (end - start === 1 && filter.charCodeAt(start) === 43 /* '+' */) node = node.plus;
      else node = node.children?.get(filter.slice(start, end));
      if (node === null || node === undefined) return false;
      if (slash === -1) break;
      start = slash + 1;
    }
    const entry = isHash ? node.hash : node.entry;
    if (entry === null || !entry.remove(value, shared)) return false;
    this.pairs--;
    if (entry.values.length === 0) {
      if (isHash) node.hash = null;
      else node.entry = null;
      this.filters--;
      this.prune(node);
    }
    return true;
  }

  /** Detaches `node` and its ancestors while they hold nothing, so churn does not leak memory. */
  private prune(node: SubNode<V>): void {
    let n = node;
    for (;;) {
      const parent = n.parent;
      if (parent === null || !n.isEmpty()) return;
      if (n.key === '+' && parent.plus === n) {
        parent.plus = null;
      } else {
        const children = parent.children!;
        children.delete(n.key);
        if (children.size === 0) parent.children = null;
      }
      n = parent;
    }
  }

  /**
   * Calls `visit(value, filter)` once per subscribed (filter, value) pair whose filter matches
   * the topic name `topic`. The order of visits is unspecified.
   */
  match(topic: string, visit: (value: V, filter: string) => void): void {
    const exact = this.exact.get(topic);
    const root = this.root;
    const wild = !root.isEmpty();
    if (exact === undefined && !wild) return;
    this.matching++;
    try {
      if (exact !== undefined) {
        const vals = exact.values;
        for (let i = 0; i < vals.length; i++) visit(vals[i]!, topic);
      }
      if (wild) this.matchWild(topic, visit);
    } finally {
      this.matching--;
    }
  }

  /** Breadth-first walk of the wildcard trie, one topic level per step. */
  private matchWild(topic: string, visit: (value: V, filter: string) => void): void {
    // A nested match (from a visitor) must not clobber the outer match's frontiers.
    const nested = this.matching > 1;
    let cur = nested ? [] : this.frontA;
    let next = nested ? [] : this.frontB;
    let curLen = 1;
    cur[0] = this.root;
    let start = 0;
    // MQTT-4.7.2-1: a topic name starting with '$' is not matched by '+' or '#' as first level.
    let skipWild = topic.charCodeAt(0) === DOLLAR;
    for (;;) {
      const slash = topic.indexOf('/', start);
      let level: string | undefined;
      let nextLen = 0;
      for (let i = 0; i < curLen; i++) {
        const node = cur[i]!;
        if (!skipWild) {
          // '#' matches the remaining one or more levels.
          const hash = node.hash;
          if (hash !== null) {
            const vals = hash.values;
            const f = hash.filter;
            for (let j = 0; j < vals.length; j++) visit(vals[j]!, f);
          }
          if (node.plus !== null) next[nextLen++] = node.plus;
        }
        const children = node.children;
        if (children !== null) {
          if (level === undefined) level = topic.slice(start, slash === -1 ? topic.length : slash);
          const child = children.get(level);
          if (child !== undefined) next[nextLen++] = child;
        }
      }
      if (slash === -1) {
        // All levels consumed: filters ending here match, and so does '<here>/#', because
        // '#' also matches the parent level (MQTT 4.7.1.2: 'sport/#' matches 'sport').
        for (let i = 0; i < nextLen; i++) {
          const node = next[i]!;
          const entry = node.entry;
          if (entry !== null) {
            const vals = entry.values;
            const f = entry.filter;
            for (let j = 0; j < vals.length; j++) visit(vals[j]!, f);
          }
          const hash = node.hash;
          if (hash !== null) {
            const vals = hash.values;
            const f = hash.filter;
            for (let j = 0; j < vals.length; j++) visit(vals[j]!, f);
          }
        }
        break;
      }
      if (nextLen === 0) break;
      const t = cur;
      cur = next;
      next = t;
      curLen = nextLen;
      start = slash + 1;
      skipWild = false;
    }
  }
}

/** A level of the retained-message trie. */
class RetainedNode<V> {
  children: Map<string, RetainedNode<V>> | null = null;
  /** Valid when `topic` is not null. */
  value: V | undefined = undefined;
  /** The topic name stored here, or null when no message is retained at this exact level. */
  topic: string | null = null;
  constructor(
    readonly parent: RetainedNode<V> | null,
    readonly key: string,
  ) {}
}

/**
 * Retained messages (or any value) by topic name, in a trie of topic levels, so a subscription's
 * filter is matched by walking its levels instead of scanning every retained topic. A flat map
 * by topic name alongside makes `get`, overwriting `set` and `delete` single lookups.
 *
 * The visitor of `match` may set and delete entries; entries added or deleted during a match
 * may or may not be visited by it, every other matching entry is visited exactly once.
 */
export class RetainedTree<V> {
  private readonly root = new RetainedNode<V>(null, '');
  private readonly byTopic = new Map<string, RetainedNode<V>>();

  /** Number of stored topics. */
  get size(): number {
    return this.byTopic.size;
  }

  /** Stores `value` under the topic name `topic`, replacing any previous value. */
  set(topic: string, value: V): void {
    const known = this.byTopic.get(topic);
    if (known !== undefined) {
      known.value = value;
      return;
    }
    let node = this.root;
    let start = 0;
    for (;;) {
      const slash = topic.indexOf('/', start);
      const level = topic.slice(start, slash === -1 ? topic.length : slash);
      let children = node.children;
      if (children === null) children = node.children = new Map();
      let child = children.get(level);
      if (child === undefined) {
        child = new RetainedNode<V>(node, level);
        children.set(level, child);
      }
      node = child;
      if (slash === -1) break;
      start = slash + 1;
    }
    node.topic = topic;
    node.value = value;
    this.byTopic.set(topic, node);
  }

  /** The value stored under the topic name `topic`, if any. */
  get(topic: string): V | undefined {
    return this.byTopic.get(topic)?.value;
  }

  /** Whether a value is stored under the topic name `topic`. */
  has(topic: string): boolean {
    return this.byTopic.has(topic);
  }

  /** Removes the value stored under `topic`; returns whether there was one. Prunes empty levels. */
  delete(topic: string): boolean {
    const node = this.byTopic.get(topic);
    if (node === undefined) return false;
    this.byTopic.delete(topic);
    node.topic = null;
    node.value = undefined;
    let n = node;
    for (;;) {
      const parent = n.parent;
      if (parent === null || n.topic !== null || n.children !== null) return true;
      const siblings = parent.children!;
      siblings.delete(n.key);
      if (siblings.size === 0) parent.children = null;
      n = parent;
    }
  }

  /** The stored values, in insertion order of their topics. */
  *values(): IterableIterator<V> {
    for (const node of this.byTopic.values()) yield node.value as V;
  }

  /** [topic, value] pairs, in insertion order of their topics. */
  *entries(): IterableIterator<[topic: string, value: V]> {
    for (const [topic, node] of this.byTopic) yield [topic, node.value as V];
  }

  /**
   * Calls `visit(value, topic)` for every stored topic name matching the topic filter `filter`,
   * walking only the levels the filter selects. The order of visits is unspecified.
   */
  match(filter: string, visit: (value: V, topic: string) => void): void {
    if (!hasWildcard(filter)) {
      const node = this.byTopic.get(filter);
      if (node !== undefined) visit(node.value as V, filter);
      return;
    }
    if (filter === '#') {
      // Everything but '$' topics (MQTT-4.7.2-1): a flat pass beats walking the whole trie.
      for (const [topic, node] of this.byTopic)
        if (topic.charCodeAt(0) !== DOLLAR) visit(node.value as V, topic);
      return;
    }
    let frontier: RetainedNode<V>[] = [this.root];
    let start = 0;
    let first = true;
    for (;;) {
      const slash = filter.indexOf('/', start);
      const level = filter.slice(start, slash === -1 ? filter.length : slash);
      if (level === '#') {
        // '#' matches the parent level and every level below it (MQTT 4.7.1.2). Not first
        // here: a lone '#' took the flat path above.
        for (const node of frontier) this.visitSubtree(node, visit);
        return;
      }
      const next: RetainedNode<V>[] = [];
      if (level === '+') {
        for (const node of frontier) {
          if (node.children === null) continue;
          for (const child of node.children.values()) {
            // MQTT-4.7.2-1: a leading '+' does not match a level starting with '$'.
            if (first && child.key.charCodeAt(0) === DOLLAR) continue;
            next.push(child);
          }
        }
      } else {
        for (const node of frontier) {
          const child = node.children?.get(level);
          if (child !== undefined) next.push(child);
        }
      }
      if (next.length === 0) return;
      if (slash === -1) {
        for (const node of next) if (node.topic !== null) visit(node.value as V, node.topic);
        return;
      }
      frontier = next;
      start = slash + 1;
      first = false;
    }
  }

  /** Visits `top` and everything below it, depth-first with an explicit stack. */
  private visitSubtree(top: RetainedNode<V>, visit: (value: V, topic: string) => void): void {
    const stack: RetainedNode<V>[] = [top];
    while (stack.length > 0) {
      const node = stack.pop()!;
      // Re-checked at visit time: the visitor may have deleted it meanwhile.
      if (node.topic !== null) visit(node.value as V, node.topic);
      const children = node.children;
      if (children !== null) for (const child of children.values()) stack.push(child);
    }
  }
}
