/**
 * The STOMP 1.0/1.1/1.2 frame codec: bytes to frames and back. Pure: no I/O, no timers,
 * nothing of the broker; which frames and headers a connection may send is the protocol's
 * business (src/protocol/stomp/).
 */
export { decodeFrames, StompDecoder } from './decoder.js';
export { encodeFrame, headerEncodingFault } from './encoder.js';
export { StompCodecError, type StompErrorCode } from './errors.js';
export { escapeHeaderText, unescapeHeaderText } from './escape.js';
export {
  DEFAULT_STOMP_LIMITS,
  escapesHeaders,
  getHeader,
  STOMP_CLIENT_COMMANDS,
  STOMP_SERVER_COMMANDS,
  type StompFrame,
  type StompLimits,
  type StompVersion,
} from './frame.js';
