import { ReasonCode, reasonCodeName } from './reason-codes.js';

/** Why the codec refused some bytes or a packet. Match on these, never on messages. */
export type CodecErrorCode =
  | 'MALFORMED_VARIABLE_INT'
  | 'RESERVED_PACKET_TYPE'
  | 'BAD_FIXED_HEADER_FLAGS'
  | 'INVALID_QOS'
  | 'DUP_ON_QOS0'
  | 'TRUNCATED'
  | 'TRAILING_BYTES'
  | 'INVALID_UTF8'
  | 'NULL_CHARACTER'
  | 'TOPIC_NAME_INVALID'
  | 'TOPIC_FILTER_INVALID'
  | 'PACKET_ID_ZERO'
  | 'PACKET_TOO_LARGE'
  | 'UNKNOWN_PROPERTY'
  | 'PROPERTY_NOT_ALLOWED'
  | 'DUPLICATE_PROPERTY'
  | 'PROPERTY_VALUE_INVALID'
  | 'BAD_PROTOCOL_NAME'
  | 'UNSUPPORTED_PROTOCOL_VERSION'
  | 'BAD_CONNECT_FLAGS'
  | 'BAD_CONNACK_FLAGS'
  | 'BAD_REASON_CODE'
  | 'EMPTY_PAYLOAD_LIST'
  | 'BAD_SUBSCRIPTION_OPTIONS'
  | 'VERSION_UNKNOWN'
  | 'VALUE_OUT_OF_RANGE';

/**
 * A typed codec failure. `reasonCode` is the MQTT 5 reason code a receiver answers
 * with (in CONNACK or DISCONNECT) before closing the connection (MQTT 4.13).
 */
export class MqttCodecError extends Error {
  override readonly name = 'MqttCodecError';
  constructor(
    readonly code: CodecErrorCode,
    readonly reasonCode: number,
    detail: string,
  ) {
    super(`${detail} (${code}, ${reasonCodeName(reasonCode)})`);
  }
}

/** A packet that cannot be parsed as the specification says (0x81). */
export function malformed(code: CodecErrorCode, detail: string): MqttCodecError {
  return new MqttCodecError(code, ReasonCode.MalformedPacket, detail);
}

/** A parsed packet with data the protocol does not allow (0x82). */
export function protocolError(code: CodecErrorCode, detail: string): MqttCodecError {
  return new MqttCodecError(code, ReasonCode.ProtocolError, detail);
}
