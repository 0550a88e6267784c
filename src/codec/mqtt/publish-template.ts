import { utf8Length, variableIntLength, writeUtf8, writeVariableInt } from './primitives.js';
import { propertiesLength, writeProperties } from './properties.js';
import { MAX_VARIABLE_BYTE_INTEGER, type Properties, type ProtocolVersion, type QoS } from './types.js';

/** What may differ between the copies of one message sent to different subscribers. */
export interface PublishVariant {
  qos: QoS;
  /** Required for QoS 1 and 2. */
  packetId?: number;
  dup?: boolean;
  retain?: boolean;
  /** 5.0: the identifiers of the subscriptions this copy matched (MQTT-3.3.4-3). */
  subscriptionIdentifiers?: readonly number[];
  /** 5.0: a Topic Alias for this connection (MQTT 3.3.2.3.4). */
  topicAlias?: number;
  /** 5.0: send an empty topic name, relying on an alias the receiver already holds. */
  omitTopic?: boolean;
  /** 5.0: the remaining Message Expiry Interval for this copy (MQTT-3.3.2-6). */
  messageExpiryInterval?: number;
}

/** Properties that vary per subscriber and so are never part of the shared encoding. */
const EMPTY = Buffer.alloc(0);

const PER_COPY: ReadonlySet<string> = new Set([
  'subscriptionIdentifiers',
  'topicAlias',
  'messageExpiryInterval',
]);

/**
 * A PUBLISH encoded once and sent to many: the topic and the properties common to every
 * copy are encoded on construction; each `encode` writes only the fixed header, packet
 * identifier and per-copy properties around them. Copies without per-copy fields are
 * cached, so a QoS 0 fan-out encodes each version once.
 */
export class PublishTemplate {
  private readonly topicLength: number;
  private readonly common: Properties | undefined;
  private readonly commonLength: number;
  /** The common properties, encoded on first use by a 5.0 copy. */
  private commonBytes: Buffer | undefined;
  private readonly cache: (Buffer | undefined)[] = [];

  constructor(
    readonly topic: string,
    readonly payload: Buffer,
    properties?: Properties,
  ) {
    const topicLength = utf8Length(topic);
    if (topicLength > 0xffff) throw new RangeError(`topic is ${topicLength} bytes; at most 65535 fit`);
    this.topicLength = topicLength;
    let common: Properties | undefined;
    if (properties !== undefined) {
      for (const key in properties) {
        const value = properties[key as keyof Properties];
        if (value === undefined || PER_COPY.has(key)) continue;
        common ??= {};
        (common as Record<string, unknown>)[key] = value;
      }
    }
    this.common = common;
    this.commonLength = propertiesLength(common, 'publish');
  }

  private commonProperties(): Buffer {
    if (this.commonBytes === undefined) {
      const length = this.commonLength;
      if (length === 0) {
        this.commonBytes = EMPTY;
      } else {
        // Encoded without its length prefix: the per-copy properties change the total.
        const encoded = Buffer.allocUnsafe(variableIntLength(length) + length);
        writeProperties(encoded, 0, this.common, length);
        this.commonBytes = encoded.subarray(encoded.length - length);
      }
    }
    return this.commonBytes;
  }

  /** The encoded size of one copy, to check against a receiver's Maximum Packet Size before sending. */
  encodedLength(version: ProtocolVersion, variant: PublishVariant): number {
    const remaining = this.remainingLength(version, variant);
    return 1 + variableIntLength(remaining) + remaining;
  }

  /** Encodes one copy into a single buffer. */
  encode(version: ProtocolVersion, variant: PublishVariant): Buffer {
    const cacheable = isPlain(variant);
    const key = cacheable ? version * 2 + (variant.retain ? 1 : 0) : -1;
    if (cacheable) {
      const hit = this.cache[key];
      if (hit !== undefined) return hit;
    }
    const buf = this.write(version, variant, true);
    if (cacheable) this.cache[key] = buf;
    return buf;
  }

  /**
   * Encodes everything but the payload, for a vectored write of `[head, payload]` that
   * shares one payload buffer between all copies.
   */
  encodeHead(version: ProtocolVersion, variant: PublishVariant): Buffer {
    return this.write(version, variant, false);
  }

  private propsLength(variant: PublishVariant): number {
    let length = this.commonLength;
    if (variant.messageExpiryInterval !== undefined) length += 5;
    if (variant.topicAlias !== undefined) length += 3;
    const ids = variant.subscriptionIdentifiers;
    if (ids !== undefined) {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (!(id >= 1 && id <= MAX_VARIABLE_BYTE_INTEGER))
          throw new RangeError(`subscription identifier ${id} is out of range`);
        length += 1 + variableIntLength(id);
      }
    }
    return length;
  }

  private remainingLength(version: ProtocolVersion, variant: PublishVariant): number {
    let remaining = 2 + (omitsTopic(version, variant) ? 0 : this.topicLength) + this.payload.length;
    if (variant.qos > 0) remaining += 2;
    if (version === 5) {
      const props = this.propsLength(variant);
      remaining += variableIntLength(props) + props;
    }
    if (remaining > MAX_VARIABLE_BYTE_INTEGER)
      throw new RangeError(`PUBLISH body of ${remaining} bytes is too large`);
    return remaining;
  }

  private write(version: ProtocolVersion, variant: PublishVariant, withPayload: boolean): Buffer {
    const { qos } = variant;
    const remaining = this.remainingLength(version, variant);
    const headLength = 1 + variableIntLength(remaining) + remaining - this.payload.length;
    const buf = Buffer.allocUnsafe(withPayload ? headLength + this.payload.length : headLength);
    buf[0] = 0x30 | (variant.dup ? 8 : 0) | (qos << 1) | (variant.retain ? 1 : 0);
    let pos = writeVariableInt(buf, 1, remaining);
    if (omitsTopic(version, variant)) {
      buf[pos++] = 0;
      buf[pos++] = 0;
    } else {
      pos = writeUtf8(buf, pos, this.topic, this.topicLength);
    }
    if (qos > 0) {
      const id = variant.packetId;
      if (id === undefined || id < 1 || id > 0xffff)
        throw new RangeError(`packet identifier ${id} is not in 1..65535`);
      buf[pos++] = id >> 8;
      buf[pos++] = id & 0xff;
    }
    if (version === 5) pos = this.writeProps(buf, pos, variant);
    if (withPayload) this.payload.copy(buf, pos);
    return buf;
  }

  private writeProps(buf: Buffer, pos: number, variant: PublishVariant): number {
    pos = writeVariableInt(buf, pos, this.propsLength(variant));
    if (variant.messageExpiryInterval !== undefined) {
      buf[pos] = 0x02;
      buf.writeUInt32BE(variant.messageExpiryInterval, pos + 1);
      pos += 5;
    }
    if (this.commonLength > 0) pos += this.commonProperties().copy(buf, pos);
    if (variant.topicAlias !== undefined) {
      buf[pos] = 0x23;
      buf.writeUInt16BE(variant.topicAlias, pos + 1);
      pos += 3;
    }
    const ids = variant.subscriptionIdentifiers;
    if (ids !== undefined) {
      for (let i = 0; i < ids.length; i++) {
        buf[pos] = 0x0b;
        pos = writeVariableInt(buf, pos + 1, ids[i]!);
      }
    }
    return pos;
  }
}

/** Topic aliases exist only in 5.0: earlier versions always carry the topic. */
function omitsTopic(version: ProtocolVersion, variant: PublishVariant): boolean {
  return version === 5 && variant.omitTopic === true;
}

function isPlain(variant: PublishVariant): boolean {
  return (
    variant.qos === 0 &&
    !variant.dup &&
    variant.subscriptionIdentifiers === undefined &&
    variant.topicAlias === undefined &&
    !variant.omitTopic &&
    variant.messageExpiryInterval === undefined
  );
}
