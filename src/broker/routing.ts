import type { DeliveryGuard } from './hooks.js';
import type { SubscriptionOptions } from './message.js';
import type { Session } from './session.js';
import { SubscriptionTree } from './topic-tree.js';

/** One session's subscription to one filter; the subscription tree holds these for non-shared filters. */
export interface Subscription {
  readonly kind: 'direct';
  /** The filter as subscribed, `$share/group/` prefix included. */
  readonly filter: string;
  readonly session: Session;
  options: SubscriptionOptions;
  /** Set when authorization allowed the filter only in part: the messages it may deliver. Not persisted. */
  guard?: DeliveryGuard | undefined;
}

/**
 * A shared subscription group `$share/{name}/{filter}` (MQTT 4.8.2): one entry in the
 * subscription tree, each message going to one member.
 */
export interface ShareGroup {
  readonly kind: 'group';
  /** `name/filter`: unique per group. */
  readonly key: string;
  readonly name: string;
  readonly filter: string;
  readonly members: Subscription[];
  /** Round-robin position. */
  cursor: number;
  /** Routing scratch: the publish that last matched this group. */
  routeEpoch: number;
}

export type Subscriber = Subscription | ShareGroup;

const SHARE_PREFIX = '$share/';

/** Splits `$share/{name}/{filter}` into its parts, or returns undefined for a non-shared filter. */
export function parseSharedFilter(filter: string): { name: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  if (slash < 0) return undefined;
  return { name: filter.slice(SHARE_PREFIX.length, slash), filter: filter.slice(slash + 1) };
}

/**
 * Picks the member to receive the next message on `topic`: round-robin over members whose
 * client is connected; when none is, round-robin over all, whose persistent sessions queue it.
 * A member whose guard refuses the topic is passed over: another member may read it.
 */
export function pickMember(group: ShareGroup, topic: string, exclude?: Session): Subscription | undefined {
  const members = group.members;
  const n = members.length;
  for (let i = 0; i < n; i++) {
    const index = (group.cursor + i) % n;
    const member = members[index]!;
    if (
      member.session.link !== undefined &&
      member.session !== exclude &&
      (member.guard === undefined || member.guard(topic))
    ) {
      group.cursor = index + 1;
      return member;
    }
  }
  for (let i = 0; i < n; i++) {
    const index = (group.cursor + i) % n;
    const member = members[index]!;
    if (member.session !== exclude && (member.guard === undefined || member.guard(topic))) {
      group.cursor = index + 1;
      return member;
    }
  }
  return undefined;
}

/**
 * Whether a message on a topic could be routed to one of `subscriptions` (its filter matches and
 * its guard, if any, allows it): used to re-judge queued messages once subscriptions change.
 */
export function readableTopics(subscriptions: Iterable<Subscription>): (topic: string) => boolean {
  const tree = new SubscriptionTree<Subscription>();
  for (const subscription of subscriptions) {
    tree.add(parseSharedFilter(subscription.filter)?.filter ?? subscription.filter, subscription);
  }
  return (topic) => {
    let readable = false;
    tree.match(topic, (subscription) => {
      if (!readable) readable = subscription.guard === undefined || subscription.guard(topic);
    });
    return readable;
  };
}
