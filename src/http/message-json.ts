import { type Message, remainingExpiry } from '../broker/message.js';

/** MQTT 5 properties of a message as JSON: binary correlation data in base64. */
export interface MessagePropertiesJson {
  contentType?: string;
  payloadFormatIndicator?: boolean;
  /** Seconds left before the message expires. */
  messageExpiryInterval?: number;
  responseTopic?: string;
  /** Base64. */
  correlationData?: string;
  userProperties?: [string, string][];
}

/** A message as the HTTP API shows it (retained browser; SSE uses the same shape). */
export interface MessageJson {
  topic: string;
  /** The payload in base64 (always: payloads are bytes). */
  payload: string;
  /** The payload as text, when it is valid UTF-8. */
  payloadText?: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties: MessagePropertiesJson;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as text if it is valid UTF-8, else undefined. */
export function utf8Text(payload: Buffer): string | undefined {
  try {
    return strictUtf8.decode(payload);
  } catch {
    return undefined;
  }
}

/** The properties of `message` as JSON; the expiry counts from `now`. */
export function propertiesJson(message: Message, now: number): MessagePropertiesJson {
  const p = message.properties;
  const out: MessagePropertiesJson = {};
  if (p?.contentType !== undefined) out.contentType = p.contentType;
  if (p?.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  const expiry = remainingExpiry(message, now);
  if (expiry !== undefined) out.messageExpiryInterval = expiry;
  if (p?.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p?.correlationData !== undefined) out.correlationData = p.correlationData.toString('base64');
  if (p?.userProperties !== undefined) out.userProperties = p.userProperties.map(([k, v]) => [k, v]);
  return out;
}

/** A message as JSON: payload in base64, and as text when it is UTF-8. */
export function messageJson(message: Message, now: number): MessageJson {
  const text = utf8Text(message.payload);
  return {
    topic: message.topic,
    payload: message.payload.toString('base64'),
    ...(text === undefined ? {} : { payloadText: text }),
    qos: message.qos,
    retain: message.retain,
    properties: propertiesJson(message, now),
  };
}
