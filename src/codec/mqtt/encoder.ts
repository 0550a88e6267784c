import { utf8Length, variableIntLength, writeBinary, writeUtf8, writeVariableInt } from './primitives.js';
import { type PropertyContext, propertiesLength, writeProperties } from './properties.js';
import {
  type AckPacket,
  type ConnackPacket,
  type ConnectPacket,
  MAX_VARIABLE_BYTE_INTEGER,
  type Packet,
  PacketType,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  type SubackPacket,
  type SubscribePacket,
  type UnsubackPacket,
  type UnsubscribePacket,
} from './types.js';

/**
 * Encodes one packet for the given protocol version into a single buffer, sized first and
 * written in one pass. Properties are written only for version 5 and in the order the
 * object holds them. Throws TypeError or RangeError for a packet that cannot be encoded.
 */
export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  switch (packet.type) {
    case 'publish':
      return encodePublish(packet, version);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return encodeAck(packet, version);
    case 'connect':
      return encodeConnect(packet);
    case 'connack':
      return encodeConnack(packet, version);
    case 'subscribe':
      return encodeSubscribe(packet, version);
    case 'suback':
      return encodeSuback(packet, version);
    case 'unsubscribe':
      return encodeUnsubscribe(packet, version);
    case 'unsuback':
      return encodeUnsuback(packet, version);
    case 'pingreq':
      return Buffer.from([0xc0, 0]);
    case 'pingresp':
      return Buffer.from([0xd0, 0]);
    case 'disconnect':
    case 'auth':
      return encodeReasonOnly(packet.type, packet.reasonCode ?? 0, packet.properties, version);
  }
}

/** Allocates the packet buffer and writes its fixed header; returns the buffer and the body's offset. */
function allocate(first: number, remaining: number): [Buffer, number] {
  if (remaining > MAX_VARIABLE_BYTE_INTEGER)
    throw new RangeError(`packet body of ${remaining} bytes is too large`);
  const buf = Buffer.allocUnsafe(1 + variableIntLength(remaining) + remaining);
  buf[0] = first;
  return [buf, writeVariableInt(buf, 1, remaining)];
}

function checkPacketId(id: number | undefined): number {
  if (id === undefined || !Number.isInteger(id) || id < 1 || id > 0xffff) {
    throw new RangeError(`packet identifier ${id} is not in 1..65535`);
  }
  return id;
}

function checkByte(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff)
    throw new RangeError(`${what} ${value} does not fit a byte`);
  return value;
}

function checkString(byteLength: number, what: string): number {
  if (byteLength > 0xffff) throw new RangeError(`${what} is ${byteLength} bytes; at most 65535 fit`);
  return byteLength;
}

/** Length of a property section including its own length prefix. */
function propertySectionLength(props: Properties | undefined, context: PropertyContext): [number, number] {
  const length = propertiesLength(props, context);
  return [length, variableIntLength(length) + length];
}

export function encodePublish(packet: PublishPacket, version: ProtocolVersion): Buffer {
  const { qos, topic, payload } = packet;
  const topicLength = checkString(utf8Length(topic), 'topic');
  let remaining = 2 + topicLength + payload.length;
  if (qos > 0) remaining += 2;
  let propsLength = 0;
  if (version === 5) {
    const [inner, section] = propertySectionLength(packet.properties, 'publish');
    propsLength = inner;
    remaining += section;
  }
  const first = 0x30 | (packet.dup ? 8 : 0) | (qos << 1) | (packet.retain ? 1 : 0);
  let [buf, pos] = allocate(first, remaining);
  pos = writeUtf8(buf, pos, topic, topicLength);
  if (qos > 0) pos = buf.writeUInt16BE(checkPacketId(packet.packetId), pos);
  if (version === 5) pos = writeProperties(buf, pos, packet.properties, propsLength);
  payload.copy(buf, pos);
  return buf;
}

function encodeAck(
  packet: AckPacket<'puback' | 'pubrec' | 'pubrel' | 'pubcomp'>,
  version: ProtocolVersion,
): Buffer {
  const type = PacketType[packet.type];
  const first = (type << 4) | (packet.type === 'pubrel' ? 2 : 0);
  const reasonCode = checkByte(packet.reasonCode ?? 0, 'reason code');
  const packetId = checkPacketId(packet.packetId);
  const props = packet.properties;
  if (version < 5 || (reasonCode === 0 && !hasProperties(props))) {
    // MQTT 3.4.2.1: reason code 0 with no properties may be left out.
    const [buf, pos] = allocate(first, 2);
    buf.writeUInt16BE(packetId, pos);
    return buf;
  }
  const [inner, section] = hasProperties(props) ? propertySectionLength(props, packet.type) : [0, 0];
  const [buf, start] = allocate(first, 3 + section);
  let pos = buf.writeUInt16BE(packetId, start);
  buf[pos++] = reasonCode;
  if (section > 0) writeProperties(buf, pos, props, inner);
  return buf;
}

function hasProperties(props: Properties | undefined): boolean {
  if (props === undefined) return false;
  for (const key in props) if (props[key as keyof Properties] !== undefined) return true;
  return false;
}

function encodeConnect(packet: ConnectPacket): Buffer {
  const version = packet.protocolVersion;
  const protocolName = version === 3 ? 'MQIsdp' : 'MQTT';
  const { will, username, password } = packet;
  const clientIdLength = checkString(utf8Length(packet.clientId), 'client identifier');
  let remaining = 2 + protocolName.length + 4 + 2 + clientIdLength;
  let propsLength = 0;
  let willPropsLength = 0;
  let willTopicLength = 0;
  let usernameLength = 0;
  if (version === 5) {
    const [inner, section] = propertySectionLength(packet.properties, 'connect');
    propsLength = inner;
    remaining += section;
  }
  let flags = packet.clean ? 2 : 0;
  if (will) {
    flags |= 4 | (will.qos << 3) | (will.retain ? 0x20 : 0);
    willTopicLength = checkString(utf8Length(will.topic), 'will topic');
    remaining += 2 + willTopicLength + 2 + checkString(will.payload.length, 'will payload');
    if (version === 5) {
      const [inner, section] = propertySectionLength(will.properties, 'will');
      willPropsLength = inner;
      remaining += section;
    }
  }
  if (username !== undefined) {
    flags |= 0x80;
    usernameLength = checkString(utf8Length(username), 'user name');
    remaining += 2 + usernameLength;
  }
  if (password !== undefined) {
    flags |= 0x40;
    remaining += 2 + checkString(password.length, 'password');
  }
  let [buf, pos] = allocate(0x10, remaining);
  pos = writeUtf8(buf, pos, protocolName, protocolName.length);
  buf[pos++] = version;
  buf[pos++] = flags;
  pos = buf.writeUInt16BE(packet.keepAlive, pos);
  if (version === 5) pos = writeProperties(buf, pos, packet.properties, propsLength);
  pos = writeUtf8(buf, pos, packet.clientId, clientIdLength);
  if (will) {
    if (version === 5) pos = writeProperties(buf, pos, will.properties, willPropsLength);
    pos = writeUtf8(buf, pos, will.topic, willTopicLength);
    pos = writeBinary(buf, pos, will.payload);
  }
  if (username !== undefined) pos = writeUtf8(buf, pos, username, usernameLength);
  if (password !== undefined) writeBinary(buf, pos, password);
  return buf;
}

function encodeConnack(packet: ConnackPacket, version: ProtocolVersion): Buffer {
  let remaining = 2;
  let propsLength = 0;
  if (version === 5) {
    const [inner, section] = propertySectionLength(packet.properties, 'connack');
    propsLength = inner;
    remaining += section;
  }
  let [buf, pos] = allocate(0x20, remaining);
  buf[pos++] = version > 3 && packet.sessionPresent ? 1 : 0;
  buf[pos++] = checkByte(packet.reasonCode, 'reason code');
  if (version === 5) writeProperties(buf, pos, packet.properties, propsLength);
  return buf;
}

function encodeSubscribe(packet: SubscribePacket, version: ProtocolVersion): Buffer {
  let remaining = 2;
  let propsLength = 0;
  if (version === 5) {
    const [inner, section] = propertySectionLength(packet.properties, 'subscribe');
    propsLength = inner;
    remaining += section;
  }
  const lengths = packet.subscriptions.map((s) => checkString(utf8Length(s.topicFilter), 'topic filter'));
  for (const length of lengths) remaining += 3 + length;
  let [buf, pos] = allocate(0x82, remaining);
  pos = buf.writeUInt16BE(checkPacketId(packet.packetId), pos);
  if (version === 5) pos = writeProperties(buf, pos, packet.properties, propsLength);
  packet.subscriptions.forEach((s, i) => {
    pos = writeUtf8(buf, pos, s.topicFilter, lengths[i]!);
    let options: number = s.qos;
    if (version === 5) {
      options |= (s.noLocal ? 4 : 0) | (s.retainAsPublished ? 8 : 0) | ((s.retainHandling ?? 0) << 4);
    }
    buf[pos++] = options;
  });
  return buf;
}

function encodeSuback(packet: SubackPacket, version: ProtocolVersion): Buffer {
  return encodeCodeList(0x90, packet.packetId, packet.reasonCodes, packet.properties, 'suback', version);
}

function encodeUnsuback(packet: UnsubackPacket, version: ProtocolVersion): Buffer {
  // MQTT 3.x UNSUBACK carries only the packet identifier.
  const codes = version === 5 ? packet.reasonCodes : [];
  return encodeCodeList(0xb0, packet.packetId, codes, packet.properties, 'unsuback', version);
}

function encodeCodeList(
  first: number,
  packetId: number,
  codes: number[],
  props: Properties | undefined,
  context: PropertyContext,
  version: ProtocolVersion,
): Buffer {
  let remaining = 2 + codes.length;
  let propsLength = 0;
  if (version === 5) {
    const [inner, section] = propertySectionLength(props, context);
    propsLength = inner;
    remaining += section;
  }
  let [buf, pos] = allocate(first, remaining);
  pos = buf.writeUInt16BE(checkPacketId(packetId), pos);
  if (version === 5) pos = writeProperties(buf, pos, props, propsLength);
  for (const code of codes) buf[pos++] = checkByte(code, 'reason code');
  return buf;
}

function encodeUnsubscribe(packet: UnsubscribePacket, version: ProtocolVersion): Buffer {
  let remaining = 2;
  let propsLength = 0;
  if (version === 5) {
    const [inner, section] = propertySectionLength(packet.properties, 'unsubscribe');
    propsLength = inner;
    remaining += section;
  }
  const lengths = packet.topicFilters.map((f) => checkString(utf8Length(f), 'topic filter'));
  for (const length of lengths) remaining += 2 + length;
  let [buf, pos] = allocate(0xa2, remaining);
  pos = buf.writeUInt16BE(checkPacketId(packet.packetId), pos);
  if (version === 5) pos = writeProperties(buf, pos, packet.properties, propsLength);
  packet.topicFilters.forEach((f, i) => {
    pos = writeUtf8(buf, pos, f, lengths[i]!);
  });
  return buf;
}

/** DISCONNECT and AUTH: shortest form allowed (MQTT 3.14.2.1, 3.15.2.1). */
function encodeReasonOnly(
  type: 'disconnect' | 'auth',
  reasonCode: number,
  props: Properties | undefined,
  version: ProtocolVersion,
): Buffer {
  const first = PacketType[type] << 4;
  checkByte(reasonCode, 'reason code');
  if (version < 5 || (reasonCode === 0 && !hasProperties(props))) return Buffer.from([first, 0]);
  if (!hasProperties(props)) return Buffer.from([first, 1, reasonCode]);
  const [inner, section] = propertySectionLength(props, type);
  const [buf, pos] = allocate(first, 1 + section);
  buf[pos] = reasonCode;
  writeProperties(buf, pos + 1, props, inner);
  return buf;
}
