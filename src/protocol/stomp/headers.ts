import type { Message, MessageProperties } from '../../broker/message.js';
import { headerEncodingFault, type StompFrame, type StompVersion } from '../../codec/stomp/index.js';
import { QUEUE_PREFIX, QUEUE_TOPIC_PREFIX, swapSeparators, TOPIC_PREFIX } from './destinations.js';

/**
 * STOMP headers and MQTT 5 message properties, both ways.
 *
 * SEND: `content-type` is the Content Type, `reply-to` naming a `/topic/` or `/queue/`
 * destination the Response Topic, `correlation-id` the Correlation Data; the headers that
 * steer the frame (destination, receipt, transaction, expires, persistent, retain,
 * content-length) stay here; every other header is a User Property, in order, repeats kept.
 * MESSAGE: the same in reverse, after the headers the server sets itself.
 */

/** Headers of a SEND that are the protocol's own, never forwarded as User Properties. */
const SEND_CONTROL: ReadonlySet<string> = new Set([
  'destination',
  'content-length',
  'content-type',
  'receipt',
  'transaction',
  'expires',
  'persistent',
  'retain',
  'reply-to',
  'correlation-id',
]);

/**
 * Headers the server sets on MESSAGE: a User Property of one of these names is not forwarded,
 * so what a subscriber reads under them is always the server's (a client reading the last
 * repeat would otherwise read the publisher's).
 */
const MESSAGE_OWN: ReadonlySet<string> = new Set([
  ...SEND_CONTROL,
  'message-id',
  'subscription',
  'ack',
  'redelivered',
  'delivery-count',
  'retained',
]);

/** The MQTT topic a `reply-to` destination names, if it names one of ours. */
function replyTopic(destination: string): string | undefined {
  if (destination.startsWith(TOPIC_PREFIX) && destination.length > TOPIC_PREFIX.length)
    return swapSeparators(destination.slice(TOPIC_PREFIX.length));
  if (destination.startsWith(QUEUE_PREFIX) && destination.length > QUEUE_PREFIX.length)
    return QUEUE_TOPIC_PREFIX + destination.slice(QUEUE_PREFIX.length);
  return undefined;
}

/** The STOMP destination of an MQTT topic: `/queue/<name>` for a queue's, else `/topic/...`. */
export function destinationOf(topic: string): string {
  return topic.startsWith(QUEUE_TOPIC_PREFIX)
    ? QUEUE_PREFIX + topic.slice(QUEUE_TOPIC_PREFIX.length)
    : TOPIC_PREFIX + swapSeparators(topic);
}

/** The message properties a SEND frame's headers give; undefined when none. */
export function sendProperties(frame: StompFrame): MessageProperties | undefined {
  const properties: MessageProperties = {};
  const userProperties: [string, string][] = [];
  let replyToSeen = false;
  let any = false;
  for (const [name, value] of frame.headers) {
    if (!SEND_CONTROL.has(name)) {
      if (!MESSAGE_OWN.has(name)) userProperties.push([name, value]);
      continue;
    }
    // STOMP 1.2 "Repeated Header Entries": the first occurrence counts.
    if (name === 'content-type') {
      if (properties.contentType !== undefined) continue;
      properties.contentType = value;
      any = true;
    } else if (name === 'correlation-id') {
      if (properties.correlationData !== undefined) continue;
      properties.correlationData = Buffer.from(value);
      any = true;
    } else if (name === 'reply-to') {
      if (replyToSeen) continue;
      replyToSeen = true;
      const topic = replyTopic(value);
      if (topic === undefined) userProperties.push([name, value]);
      else {
        properties.responseTopic = topic;
        any = true;
      }
    }
  }
  if (userProperties.length > 0) properties.userProperties = userProperties;
  else if (!any) return undefined;
  return properties;
}

/** The headers a message carries to every subscriber, in `version`. */
export function messageHeaders(message: Message, version: StompVersion): [string, string][] {
  const headers: [string, string][] = [['destination', destinationOf(message.topic)]];
  const properties = message.properties;
  const add = (name: string, value: string): void => {
    // STOMP 1.0 escapes nothing: a header it cannot carry (a line break) is left out.
    if (headerEncodingFault('MESSAGE', name, value, version) === undefined) headers.push([name, value]);
  };
  if (properties?.contentType !== undefined) add('content-type', properties.contentType);
  headers.push(['content-length', String(message.payload.length)]);
  if (message.expiresAt !== undefined) headers.push(['expires', String(message.expiresAt)]);
  if (properties?.responseTopic !== undefined) add('reply-to', destinationOf(properties.responseTopic));
  const correlation = properties?.correlationData;
  if (correlation !== undefined) {
    // Only Correlation Data that is text: bytes that are not UTF-8 would not come back the same.
    const text = correlation.toString('utf8');
    if (Buffer.byteLength(text) === correlation.length && Buffer.from(text).equals(correlation))
      add('correlation-id', text);
  }
  for (const [name, value] of properties?.userProperties ?? []) {
    if (!MESSAGE_OWN.has(name)) add(name, value);
  }
  return headers;
}
