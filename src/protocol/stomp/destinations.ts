/**
 * STOMP destinations on Cicada's topic space.
 *
 * - `/topic/<name>`: the MQTT topic whose `/` and `.` trade places with the STOMP name's:
 *   `/topic/sensors.kitchen.temp` is `sensors/kitchen/temp`, and a `.` inside an MQTT level
 *   is a `/` in STOMP (`/topic/v1/2.status` is `v1.2/status`). Swapping keeps the mapping
 *   one-to-one both ways, so every MQTT topic has exactly one STOMP name.
 * - In SUBSCRIBE a level `*` matches one level (MQTT `+`) and a last level `#` the rest
 *   (MQTT `#`); `+` is also taken. SEND names no wildcard.
 * - `/queue/<name>`: the broker queue `<name>` (MQTT topic `$queue/<name>`), name verbatim.
 */

import { QUEUE_TOPIC_PREFIX, queueNameFault } from '../../broker/queues.js';

export { QUEUE_TOPIC_PREFIX };
export const TOPIC_PREFIX = '/topic/';
export const QUEUE_PREFIX = '/queue/';

export type Destination =
  | { readonly kind: 'topic'; readonly topic: string }
  | { readonly kind: 'queue'; readonly name: string };

export type SubscriptionTarget =
  | { readonly kind: 'topic'; readonly filter: string }
  | { readonly kind: 'queue'; readonly name: string };

/** Swaps `.` and `/`: its own inverse, so one function maps both ways. */
export function swapSeparators(text: string): string {
  if (!text.includes('.') && !text.includes('/')) return text;
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x2e && c !== 0x2f) continue;
    out += text.slice(from, i) + (c === 0x2e ? '/' : '.');
    from = i + 1;
  }
  return out + text.slice(from);
}

/** The STOMP destination of an MQTT topic (of a message delivered to a topic subscription). */
export function topicDestination(topic: string): string {
  return TOPIC_PREFIX + swapSeparators(topic);
}

export function queueDestination(name: string): string {
  return QUEUE_PREFIX + name;
}

/** Why `name` is not a queue name, or undefined. */
function queueFault(name: string): string | undefined {
  const fault = queueNameFault(name);
  if (fault === 'empty') return `a queue needs a name: ${QUEUE_PREFIX}<name>`;
  if (fault === 'wildcards') return 'a queue name has no wildcards';
  return undefined;
}

const UNKNOWN = `destinations are ${TOPIC_PREFIX}<name> or ${QUEUE_PREFIX}<name>`;

/** Where a SEND goes; a string says why the destination is not one. */
export function sendDestination(destination: string): Destination | string {
  if (destination.startsWith(QUEUE_PREFIX)) {
    const name = destination.slice(QUEUE_PREFIX.length);
    return queueFault(name) ?? { kind: 'queue', name };
  }
  if (!destination.startsWith(TOPIC_PREFIX)) return UNKNOWN;
  const topic = swapSeparators(destination.slice(TOPIC_PREFIX.length));
  if (topic.length === 0) return 'a topic needs a name: /topic/<name>';
  // MQTT-3.3.2-2: a topic name holds no wildcard.
  if (topic.includes('+') || topic.includes('#')) return 'a SEND destination has no wildcards';
  if (topic.startsWith(QUEUE_TOPIC_PREFIX)) return `queues are addressed as ${QUEUE_PREFIX}<name>`;
  return { kind: 'topic', topic };
}

/** What a SUBSCRIBE consumes; a string says why the destination is not one. */
export function subscribeDestination(destination: string): SubscriptionTarget | string {
  if (destination.startsWith(QUEUE_PREFIX)) {
    const name = destination.slice(QUEUE_PREFIX.length);
    return queueFault(name) ?? { kind: 'queue', name };
  }
  if (!destination.startsWith(TOPIC_PREFIX)) return UNKNOWN;
  const name = destination.slice(TOPIC_PREFIX.length);
  if (name.length === 0) return 'a topic needs a name: /topic/<name>';
  const levels = swapSeparators(name).split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '*') levels[i] = '+';
    else if (level === '#' && i !== levels.length - 1) return "'#' matches the rest: only as the last level";
    else if (level !== '+' && level !== '#' && (level.includes('+') || level.includes('#')))
      return "a wildcard ('*', '+' or '#') takes a whole level";
  }
  const filter = levels.join('/');
  if (filter.startsWith(QUEUE_TOPIC_PREFIX)) return `queues are addressed as ${QUEUE_PREFIX}<name>`;
  return { kind: 'topic', filter };
}
