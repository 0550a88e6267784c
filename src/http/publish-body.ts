import { isUtf8 } from 'node:buffer';
import type { MessageInit } from '../broker/broker.js';
import type { MessageProperties, QoS } from '../broker/message.js';
import { describeTopicFault, topicFault } from '../limits/topic-limits.js';
import { HttpError, isObject } from './json.js';

/**
 * The JSON body of `POST /api/v1/publish` (one item of the batch), checked as strictly as an
 * MQTT PUBLISH: what MQTT would refuse is a 400 naming the field.
 */

/** What the broker accepts, for checking a publish before it is made. */
export interface PublishRules {
  /** Highest QoS accepted (MQTT 3.2.2.3.4). */
  readonly maximumQoS: QoS;
  /** Whether RETAIN may be set (MQTT 3.2.2.3.5). */
  readonly retainAvailable: boolean;
  /** Longest topic name in UTF-8 bytes (as the MQTT listeners' `maxTopicLength`). */
  readonly maxTopicLength: number;
  /** Deepest topic name in levels (as the MQTT listeners' `maxTopicLevels`). */
  readonly maxTopicLevels: number;
}

/** MQTT 1.5.4: a UTF-8 string is at most 65 535 bytes. */
const MAX_MQTT_STRING = 65_535;
/** MQTT 2.2.2.2: Message Expiry Interval is a four-byte integer. */
const MAX_UINT32 = 0xffff_ffff;

/** A UTF-16 surrogate without its pair: JSON can carry one, UTF-8 cannot (MQTT-1.5.4-1). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const BODY_KEYS = new Set(['topic', 'payload', 'encoding', 'qos', 'retain', 'properties']);
const PROPERTY_KEYS = new Set([
  'contentType',
  'payloadFormatIndicator',
  'messageExpiryInterval',
  'responseTopic',
  'correlationData',
  'userProperties',
]);

/** A 400 for a publish body that MQTT would not accept either. */
export function badPublish(message: string): HttpError {
  return new HttpError(400, 'bad-request', message);
}

/** Turns a publish body into the fields of a message (no origin yet); throws a 400 HttpError. */
export function parsePublishBody(body: unknown, rules: PublishRules): MessageInit {
  if (!isObject(body)) throw badPublish('a publish is a JSON object {"topic", "payload", ...}');
  for (const key of Object.keys(body)) {
    if (!BODY_KEYS.has(key)) throw badPublish(`unknown field '${key}'`);
  }
  const topic = topicName(body.topic, 'topic', rules);
  const payload = payloadBytes(body.payload, body.encoding);
  const qos = body.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw badPublish("'qos' must be 0, 1 or 2");
  // MQTT-3.2.2-11: nothing above the server's Maximum QoS.
  if (qos > rules.maximumQoS)
    throw badPublish(`'qos' ${qos} is above the broker's maximum ${rules.maximumQoS}`);
  const retain = body.retain ?? false;
  if (typeof retain !== 'boolean') throw badPublish("'retain' must be true or false");
  // MQTT-3.2.2-14: no RETAIN when Retain Available is 0.
  if (retain && !rules.retainAvailable) throw badPublish('retained messages are not supported');
  const init: MessageInit = { topic, payload, qos, retain };
  if (body.properties !== undefined) {
    const { properties, expiryInterval } = messageProperties(body.properties, rules);
    // MQTT-3.3.2-4: a payload declared UTF-8 must be UTF-8.
    if (properties?.payloadFormatIndicator === true && !isUtf8(payload))
      throw badPublish("'payloadFormatIndicator' is true but the payload is not UTF-8");
    if (properties !== undefined) init.properties = properties;
    if (expiryInterval !== undefined) init.expiryInterval = expiryInterval;
  }
  return init;
}

/** A topic name as MQTT 4.7 allows it: no wildcards, no U+0000, well-formed, within the limits. */
function topicName(value: unknown, field: string, rules: PublishRules): string {
  if (typeof value !== 'string') throw badPublish(`'${field}' must be a string`);
  // MQTT-4.7.3-1: at least one character.
  if (value.length === 0) throw badPublish(`'${field}' is empty`);
  // MQTT-3.3.2-2: a topic name has no wildcards.
  if (value.includes('+') || value.includes('#'))
    throw badPublish(`'${field}' must not contain the wildcards '+' or '#'`);
  checkString(value, field);
  const fault = topicFault(value, rules.maxTopicLength, rules.maxTopicLevels);
  if (fault !== undefined)
    throw badPublish(`'${field}': ${describeTopicFault(fault, rules.maxTopicLength, rules.maxTopicLevels)}`);
  return value;
}

/** MQTT 1.5.4 strings: well-formed UTF-8 (no lone surrogates), no U+0000, at most 65 535 bytes. */
function checkString(value: string, field: string): void {
  // MQTT-1.5.4-2: no U+0000.
  if (value.includes('\u0000')) throw badPublish(`'${field}' contains U+0000`);
  // MQTT-1.5.4-1: JSON may carry a lone surrogate, which has no UTF-8 form.
  if (LONE_SURROGATE.test(value))
    throw badPublish(`'${field}' is not well-formed Unicode (a lone surrogate)`);
  if (Buffer.byteLength(value) > MAX_MQTT_STRING)
    throw badPublish(`'${field}' is longer than ${MAX_MQTT_STRING} bytes`);
}

/** The payload bytes: text as UTF-8 (default) or base64. */
function payloadBytes(value: unknown, encoding: unknown): Buffer {
  if (typeof value !== 'string')
    throw badPublish("'payload' must be a string (text, or base64 with encoding)");
  if (encoding === undefined || encoding === 'utf8') {
    if (LONE_SURROGATE.test(value))
      throw badPublish("'payload' is not well-formed Unicode (a lone surrogate); send it as base64");
    return Buffer.from(value, 'utf8');
  }
  if (encoding === 'base64') return base64(value, 'payload');
  throw badPublish('\'encoding\' must be "utf8" or "base64"');
}

/** Strict base64 (RFC 4648 4, padding optional): Buffer.from would skip bad characters silently. */
function base64(value: string, field: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.replace(/=+$/, '').length % 4 === 1)
    throw badPublish(`'${field}' is not valid base64`);
  return Buffer.from(value, 'base64');
}

/** The MQTT 5 properties of the body (3.3.2.3), and the Message Expiry Interval apart. */
function messageProperties(
  value: unknown,
  rules: PublishRules,
): { properties?: MessageProperties; expiryInterval?: number } {
  if (!isObject(value)) throw badPublish("'properties' must be an object");
  for (const key of Object.keys(value)) {
    if (!PROPERTY_KEYS.has(key)) throw badPublish(`unknown property '${key}'`);
  }
  const out: MessageProperties = {};
  const { contentType, payloadFormatIndicator, messageExpiryInterval } = value;
  const { responseTopic, correlationData, userProperties } = value;
  if (contentType !== undefined) {
    if (typeof contentType !== 'string') throw badPublish("'contentType' must be a string");
    checkString(contentType, 'contentType');
    out.contentType = contentType;
  }
  if (payloadFormatIndicator !== undefined) {
    // MQTT 3.3.2.3.2: 0 (unspecified bytes) or 1 (UTF-8); true/false read the same.
    if (payloadFormatIndicator === true || payloadFormatIndicator === 1) out.payloadFormatIndicator = true;
    else if (payloadFormatIndicator === false || payloadFormatIndicator === 0)
      out.payloadFormatIndicator = false;
    else throw badPublish("'payloadFormatIndicator' must be true, false, 0 or 1");
  }
  if (responseTopic !== undefined) out.responseTopic = topicName(responseTopic, 'responseTopic', rules);
  if (correlationData !== undefined) {
    if (typeof correlationData !== 'string') throw badPublish("'correlationData' must be a base64 string");
    out.correlationData = base64(correlationData, 'correlationData');
  }
  if (userProperties !== undefined) out.userProperties = userPropertyPairs(userProperties);
  let expiryInterval: number | undefined;
  if (messageExpiryInterval !== undefined) {
    if (
      typeof messageExpiryInterval !== 'number' ||
      !Number.isInteger(messageExpiryInterval) ||
      messageExpiryInterval < 0 ||
      messageExpiryInterval > MAX_UINT32
    )
      throw badPublish("'messageExpiryInterval' must be a whole number of seconds from 0 to 4294967295");
    expiryInterval = messageExpiryInterval;
  }
  const result: { properties?: MessageProperties; expiryInterval?: number } = {};
  if (Object.keys(out).length > 0) result.properties = out;
  if (expiryInterval !== undefined) result.expiryInterval = expiryInterval;
  return result;
}

/** MQTT 3.3.2.3.7: name/value string pairs, in order, names may repeat. */
function userPropertyPairs(value: unknown): [string, string][] {
  if (!Array.isArray(value)) throw badPublish("'userProperties' must be an array of [name, value] pairs");
  return value.map((pair: unknown, i) => {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      typeof pair[1] !== 'string'
    )
      throw badPublish(`'userProperties[${i}]' must be a [name, value] pair of strings`);
    checkString(pair[0], `userProperties[${i}][0]`);
    checkString(pair[1], `userProperties[${i}][1]`);
    return [pair[0], pair[1]];
  });
}
