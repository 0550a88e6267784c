/**
 * The MQTT packet codec: bytes to typed packets and back, for MQTT 3.1, 3.1.1 and 5.0.
 * Pure: no I/O, no timers, and nothing of the broker.
 */
export { type DecoderOptions, decodeAll, MAX_PACKET_SIZE, MqttDecoder } from './decoder.js';
export { encode, encodePublish } from './encoder.js';
export { type CodecErrorCode, MqttCodecError } from './errors.js';
export { sharedFilterFault, topicFilterFault } from './primitives.js';
export { PROPERTY_DEFINITIONS, type PropertyContext } from './properties.js';
export { PublishTemplate, type PublishVariant } from './publish-template.js';
export {
  allowedReasonCodes,
  ConnectReturnCode,
  ReasonCode,
  reasonCodeName,
  SubackFailure311,
} from './reason-codes.js';
export * from './types.js';
