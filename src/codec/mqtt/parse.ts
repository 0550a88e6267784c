import { MqttCodecError, malformed, protocolError } from './errors.js';
import {
  cursor,
  readBinary,
  readTopicName,
  readUint16,
  readUtf8,
  sharedFilterFault,
  topicFilterFault,
} from './primitives.js';
import { decodeProperties, type PropertyContext } from './properties.js';
import { allowedReasonCodes, ReasonCode } from './reason-codes.js';
import type {
  AckPacket,
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  SubscribePacket,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
  Will,
} from './types.js';

/**
 * Packet body parsers. Each takes the whole packet's bytes `[pos, end)` after the fixed
 * header, with the header's flags already checked, and returns the typed packet or throws
 * an MqttCodecError. Every parser consumes exactly the Remaining Length: a shortfall is
 * TRUNCATED and extra bytes are TRAILING_BYTES, both Malformed Packet.
 */

const PINGREQ: Packet = Object.freeze({ type: 'pingreq' });
const PINGRESP: Packet = Object.freeze({ type: 'pingresp' });

export function parsePacket(
  type: number,
  flags: number,
  buf: Buffer,
  pos: number,
  end: number,
  version: ProtocolVersion,
): Packet {
  switch (type) {
    case 3:
      return parsePublish(flags, buf, pos, end, version);
    case 4:
      return parseAck('puback', buf, pos, end, version);
    case 5:
      return parseAck('pubrec', buf, pos, end, version);
    case 6:
      return parseAck('pubrel', buf, pos, end, version);
    case 7:
      return parseAck('pubcomp', buf, pos, end, version);
    case 1:
      return parseConnect(buf, pos, end);
    case 2:
      return parseConnack(buf, pos, end, version);
    case 8:
      return parseSubscribe(buf, pos, end, version);
    case 9:
      return parseSuback(buf, pos, end, version);
    case 10:
      return parseUnsubscribe(buf, pos, end, version);
    case 11:
      return parseUnsuback(buf, pos, end, version);
    case 12:
      expectEnd(pos, end);
      return PINGREQ;
    case 13:
      expectEnd(pos, end);
      return PINGRESP;
    case 14:
      return parseDisconnect(buf, pos, end, version);
    default:
      return parseAuth(buf, pos, end);
  }
}

function expectEnd(pos: number, end: number): void {
  if (pos !== end)
    throw malformed('TRAILING_BYTES', `${end - pos} unexpected bytes at the end of the packet`);
}

function readPacketId(buf: Buffer, pos: number, end: number): number {
  const id = readUint16(buf, pos, end);
  // MQTT-2.2.1-3 (3.1.1 MQTT-2.3.1-1): a packet identifier is non-zero.
  if (id === 0) throw protocolError('PACKET_ID_ZERO', 'packet identifier is 0 (MQTT-2.2.1-3)');
  return id;
}

function checkReasonCode(type: keyof typeof allowedReasonCodes, code: number): number {
  if (!allowedReasonCodes[type]!.has(code)) {
    throw malformed(
      'BAD_REASON_CODE',
      `reason code 0x${code.toString(16)} is not valid in ${type.toUpperCase()}`,
    );
  }
  return code;
}

function parsePublish(
  flags: number,
  buf: Buffer,
  pos: number,
  end: number,
  version: ProtocolVersion,
): PublishPacket {
  const qos = (flags >> 1) & 3;
  // MQTT-3.3.1-4: QoS 3 is malformed.
  if (qos === 3) throw malformed('INVALID_QOS', 'PUBLISH with QoS 3 (MQTT-3.3.1-4)');
  const dup = (flags & 8) !== 0;
  // MQTT-3.3.1-2: DUP is 0 for QoS 0.
  if (dup && qos === 0) throw malformed('DUP_ON_QOS0', 'PUBLISH with DUP set at QoS 0 (MQTT-3.3.1-2)');
  const topic = readTopicName(buf, pos, end);
  pos = cursor.pos;
  let packetId = 0;
  if (qos > 0) {
    packetId = readPacketId(buf, pos, end);
    pos += 2;
  }
  let properties: Properties | undefined;
  if (version === 5) {
    properties = decodeProperties(buf, pos, end, 'publish');
    pos = cursor.pos;
    // MQTT 3.3.2.1: an empty topic name needs a Topic Alias.
    if (topic.length === 0 && properties?.topicAlias === undefined) {
      throw protocolError('TOPIC_NAME_INVALID', 'PUBLISH with an empty topic name and no Topic Alias');
    }
  } else if (topic.length === 0) {
    throw new MqttCodecError(
      'TOPIC_NAME_INVALID',
      ReasonCode.TopicNameInvalid,
      'PUBLISH with an empty topic name (MQTT-4.7.3-1)',
    );
  }
  return {
    type: 'publish',
    topic,
    payload: buf.subarray(pos, end),
    qos: qos as QoS,
    retain: (flags & 1) !== 0,
    dup,
    packetId,
    properties,
  };
}

function parseAck<T extends 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'>(
  type: T,
  buf: Buffer,
  pos: number,
  end: number,
  version: ProtocolVersion,
): AckPacket<T> {
  const packetId = readPacketId(buf, pos, end);
  pos += 2;
  let reasonCode = 0;
  let properties: Properties | undefined;
  // MQTT 3.4.2.1: reason code and properties may be omitted in 5.0.
  if (version === 5 && pos < end) {
    reasonCode = checkReasonCode(type, buf[pos]!);
    pos++;
    if (pos < end) {
      properties = decodeProperties(buf, pos, end, type);
      pos = cursor.pos;
    }
  }
  expectEnd(pos, end);
  return { type, packetId, reasonCode, properties };
}

const PROTOCOL_LEVELS: Record<string, number> = { MQTT: 4, MQIsdp: 3 };

function parseConnect(buf: Buffer, pos: number, end: number): ConnectPacket {
  const protocolName = readUtf8(buf, pos, end);
  pos = cursor.pos;
  if (pos + 4 > end) throw malformed('TRUNCATED', 'CONNECT variable header is incomplete');
  const level = buf[pos]!;
  const expected = PROTOCOL_LEVELS[protocolName];
  if (expected === undefined) {
    // MQTT-3.1.2-1: an unknown protocol name need not be answered as MQTT.
    throw malformed('BAD_PROTOCOL_NAME', `unknown protocol name '${protocolName}' (MQTT-3.1.2-1)`);
  }
  if (!(level === expected || (expected === 4 && level === 5))) {
    // MQTT-3.1.2-2: an unsupported level is answered with 0x84 (return code 1 in 3.1.1).
    throw new MqttCodecError(
      'UNSUPPORTED_PROTOCOL_VERSION',
      ReasonCode.UnsupportedProtocolVersion,
      `unsupported protocol level ${level} for '${protocolName}'`,
    );
  }
  const version = level as ProtocolVersion;
  const flags = buf[pos + 1]!;
  const keepAlive = (buf[pos + 2]! << 8) | buf[pos + 3]!;
  pos += 4;
  checkConnectFlags(flags, version);

  let properties: Properties | undefined;
  if (version === 5) {
    properties = decodeProperties(buf, pos, end, 'connect');
    pos = cursor.pos;
    // MQTT 3.1.2.11.10: Authentication Data without a method is a Protocol Error.
    if (properties?.authenticationData !== undefined && properties.authenticationMethod === undefined) {
      throw protocolError('PROPERTY_VALUE_INVALID', 'Authentication Data without Authentication Method');
    }
  }
  const clientId = readUtf8(buf, pos, end);
  pos = cursor.pos;
  const packet: ConnectPacket = {
    type: 'connect',
    protocolVersion: version,
    clean: (flags & 2) !== 0,
    keepAlive,
    clientId,
  };
  if (flags & 4) {
    let willProperties: Properties | undefined;
    if (version === 5) {
      willProperties = decodeProperties(buf, pos, end, 'will');
      pos = cursor.pos;
    }
    const topic = readTopicName(buf, pos, end);
    if (topic.length === 0) {
      throw new MqttCodecError(
        'TOPIC_NAME_INVALID',
        ReasonCode.TopicNameInvalid,
        'empty Will Topic (MQTT-4.7.3-1)',
      );
    }
    // The will lives as long as the session, so it gets its own memory rather than a view of the socket chunk.
    const payload = Buffer.from(readBinary(buf, cursor.pos, end));
    pos = cursor.pos;
    const will: Will = { topic, payload, qos: ((flags >> 3) & 3) as QoS, retain: (flags & 0x20) !== 0 };
    if (willProperties) will.properties = willProperties;
    packet.will = will;
  }
  if (flags & 0x80) {
    packet.username = readUtf8(buf, pos, end);
    pos = cursor.pos;
  }
  if (flags & 0x40) {
    packet.password = readBinary(buf, pos, end);
    pos = cursor.pos;
  }
  if (properties) packet.properties = properties;
  expectEnd(pos, end);
  return packet;
}

function checkConnectFlags(flags: number, version: ProtocolVersion): void {
  // MQTT-3.1.2-3: the reserved flag is 0.
  if (flags & 1) throw malformed('BAD_CONNECT_FLAGS', 'CONNECT reserved flag is set (MQTT-3.1.2-3)');
  const willQoS = (flags >> 3) & 3;
  if (willQoS === 3) throw malformed('INVALID_QOS', 'Will QoS 3 (MQTT-3.1.2-12)');
  if ((flags & 4) === 0 && (willQoS !== 0 || (flags & 0x20) !== 0)) {
    // MQTT-3.1.2-11, MQTT-3.1.2-13: without a will, Will QoS and Will Retain are 0.
    throw malformed('BAD_CONNECT_FLAGS', 'Will QoS or Will Retain set without a Will (MQTT-3.1.2-11)');
  }
  if (version < 5 && (flags & 0x40) !== 0 && (flags & 0x80) === 0) {
    // 3.1.1 MQTT-3.1.2-22: a password needs a user name (lifted in 5.0).
    throw malformed('BAD_CONNECT_FLAGS', 'Password flag set without User Name flag (MQTT-3.1.2-22)');
  }
}

function parseConnack(buf: Buffer, pos: number, end: number, version: ProtocolVersion): ConnackPacket {
  if (pos + 2 > end) throw malformed('TRUNCATED', 'CONNACK is shorter than two bytes');
  const ackFlags = buf[pos]!;
  const reasonCode = buf[pos + 1]!;
  pos += 2;
  // MQTT-3.2.2-1: bits 7-1 of the acknowledge flags are reserved (3.1 has no Session Present).
  if (version > 3 && ackFlags > 1) throw malformed('BAD_CONNACK_FLAGS', 'CONNACK reserved flags are set');
  const sessionPresent = version > 3 && ackFlags === 1;
  let properties: Properties | undefined;
  if (version === 5) {
    checkReasonCode('connack', reasonCode);
    properties = decodeProperties(buf, pos, end, 'connack');
    pos = cursor.pos;
  } else if (reasonCode > 5) {
    throw malformed('BAD_REASON_CODE', `CONNACK return code ${reasonCode} is reserved`);
  }
  // MQTT-3.2.2-6: Session Present is 0 when the connection is refused.
  if (sessionPresent && reasonCode !== 0) {
    throw protocolError('BAD_CONNACK_FLAGS', 'CONNACK refuses the connection but sets Session Present');
  }
  expectEnd(pos, end);
  return { type: 'connack', sessionPresent, reasonCode, properties };
}

function readFilter(buf: Buffer, pos: number, end: number, version: ProtocolVersion): string {
  const filter = readUtf8(buf, pos, end);
  const fault =
    version === 5 && filter.startsWith('$share/') ? sharedFilterFault(filter) : topicFilterFault(filter);
  if (fault !== undefined)
    throw new MqttCodecError('TOPIC_FILTER_INVALID', ReasonCode.TopicFilterInvalid, fault);
  return filter;
}

function parseSubscribe(buf: Buffer, pos: number, end: number, version: ProtocolVersion): SubscribePacket {
  const packetId = readPacketId(buf, pos, end);
  pos += 2;
  let properties: Properties | undefined;
  if (version === 5) {
    properties = decodeProperties(buf, pos, end, 'subscribe');
    pos = cursor.pos;
  }
  const subscriptions: Subscription[] = [];
  while (pos < end) {
    const topicFilter = readFilter(buf, pos, end, version);
    pos = cursor.pos;
    if (pos >= end) throw malformed('TRUNCATED', `no subscription options after '${topicFilter}'`);
    subscriptions.push(parseSubscriptionOptions(topicFilter, buf[pos++]!, version));
  }
  // MQTT-3.8.3-3: at least one topic filter.
  if (subscriptions.length === 0)
    throw protocolError('EMPTY_PAYLOAD_LIST', 'SUBSCRIBE with no topic filter (MQTT-3.8.3-3)');
  return { type: 'subscribe', packetId, subscriptions, properties };
}

function parseSubscriptionOptions(
  topicFilter: string,
  options: number,
  version: ProtocolVersion,
): Subscription {
  const qos = options & 3;
  if (qos === 3) throw malformed('INVALID_QOS', `subscription to '${topicFilter}' with QoS 3 (MQTT-3.8.3-4)`);
  if (version < 5) {
    // 3.1.1 MQTT-3.8.3-4: the upper six bits are reserved.
    if (options > 3) throw malformed('BAD_SUBSCRIPTION_OPTIONS', 'reserved subscription option bits are set');
    return { topicFilter, qos: qos as QoS };
  }
  // MQTT-3.8.3-5: bits 6 and 7 are reserved.
  if (options & 0xc0)
    throw malformed('BAD_SUBSCRIPTION_OPTIONS', 'reserved subscription option bits are set (MQTT-3.8.3-5)');
  const retainHandling = (options >> 4) & 3;
  if (retainHandling === 3)
    throw protocolError('BAD_SUBSCRIPTION_OPTIONS', 'Retain Handling 3 (MQTT 3.8.3.1)');
  const noLocal = (options & 4) !== 0;
  // MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error.
  if (noLocal && topicFilter.startsWith('$share/')) {
    throw protocolError('BAD_SUBSCRIPTION_OPTIONS', 'No Local on a shared subscription (MQTT-3.8.3-4)');
  }
  return {
    topicFilter,
    qos: qos as QoS,
    noLocal,
    retainAsPublished: (options & 8) !== 0,
    retainHandling: retainHandling as 0 | 1 | 2,
  };
}

function parseSuback(buf: Buffer, pos: number, end: number, version: ProtocolVersion): SubackPacket {
  const packetId = readPacketId(buf, pos, end);
  pos += 2;
  let properties: Properties | undefined;
  if (version === 5) {
    properties = decodeProperties(buf, pos, end, 'suback');
    pos = cursor.pos;
  }
  const reasonCodes: number[] = [];
  for (; pos < end; pos++) {
    const code = buf[pos]!;
    if (version === 5) checkReasonCode('suback', code);
    else if (code > 2 && code !== 0x80)
      throw malformed('BAD_REASON_CODE', `SUBACK return code 0x${code.toString(16)}`);
    reasonCodes.push(code);
  }
  if (reasonCodes.length === 0) throw protocolError('EMPTY_PAYLOAD_LIST', 'SUBACK with no return codes');
  return { type: 'suback', packetId, reasonCodes, properties };
}

function parseUnsubscribe(
  buf: Buffer,
  pos: number,
  end: number,
  version: ProtocolVersion,
): UnsubscribePacket {
  const packetId = readPacketId(buf, pos, end);
  pos += 2;
  let properties: Properties | undefined;
  if (version === 5) {
    properties = decodeProperties(buf, pos, end, 'unsubscribe');
    pos = cursor.pos;
  }
  const topicFilters: string[] = [];
  while (pos < end) {
    topicFilters.push(readFilter(buf, pos, end, version));
    pos = cursor.pos;
  }
  // MQTT-3.10.3-2: at least one topic filter.
  if (topicFilters.length === 0) {
    throw protocolError('EMPTY_PAYLOAD_LIST', 'UNSUBSCRIBE with no topic filter (MQTT-3.10.3-2)');
  }
  return { type: 'unsubscribe', packetId, topicFilters, properties };
}

function parseUnsuback(buf: Buffer, pos: number, end: number, version: ProtocolVersion): UnsubackPacket {
  const packetId = readPacketId(buf, pos, end);
  pos += 2;
  const reasonCodes: number[] = [];
  let properties: Properties | undefined;
  if (version === 5) {
    properties = decodeProperties(buf, pos, end, 'unsuback');
    pos = cursor.pos;
    for (; pos < end; pos++) reasonCodes.push(checkReasonCode('unsuback', buf[pos]!));
    if (reasonCodes.length === 0) throw protocolError('EMPTY_PAYLOAD_LIST', 'UNSUBACK with no reason codes');
  }
  expectEnd(pos, end);
  return { type: 'unsuback', packetId, reasonCodes, properties };
}

/** DISCONNECT and AUTH: an optional reason code, then optional properties (MQTT 3.14.2, 3.15.2). */
function parseReasonAndProperties(
  type: 'disconnect' | 'auth',
  buf: Buffer,
  pos: number,
  end: number,
): DisconnectPacket | AuthPacket {
  let reasonCode = 0;
  let properties: Properties | undefined;
  if (pos < end) {
    reasonCode = checkReasonCode(type, buf[pos++]!);
    if (pos < end) {
      properties = decodeProperties(buf, pos, end, type as PropertyContext);
      pos = cursor.pos;
    }
  }
  expectEnd(pos, end);
  return { type, reasonCode, properties };
}

function parseDisconnect(buf: Buffer, pos: number, end: number, version: ProtocolVersion): DisconnectPacket {
  if (version < 5) {
    expectEnd(pos, end);
    return { type: 'disconnect' };
  }
  return parseReasonAndProperties('disconnect', buf, pos, end) as DisconnectPacket;
}

function parseAuth(buf: Buffer, pos: number, end: number): AuthPacket {
  const packet = parseReasonAndProperties('auth', buf, pos, end) as AuthPacket;
  // MQTT 3.15.2.2.2: only an AUTH that is a bare Success may omit the Authentication Method.
  const bare = packet.reasonCode === 0 && packet.properties === undefined;
  if (!bare && packet.properties?.authenticationMethod === undefined) {
    throw protocolError('PROPERTY_VALUE_INVALID', 'AUTH without Authentication Method');
  }
  return packet;
}
