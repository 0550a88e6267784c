import { DEFAULT_STOMP_OPTIONS, type StompOptions } from '../protocol/stomp/options.js';
import { integer, section } from './fields.js';

/** The `stomp` section: STOMP settings (topic length and depth limits are `mqtt`'s: one topic space). */
export type StompConfig = Omit<StompOptions, 'maxTopicLength' | 'maxTopicLevels' | 'largestMessage'>;

/** setTimeout's ceiling, in milliseconds. */
const MAX_TIMER_MS = 2_147_483_647;
const STOMP = DEFAULT_STOMP_OPTIONS;
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

export const STOMP_SECTION = section<StompConfig>(
  'STOMP protocol settings (stomp://, stomps://, ws(s)://HOST:PORT/stomp listeners)',
  {
    maxFrameSize: integer(
      1,
      UNBOUNDED,
      STOMP.maxFrameSize,
      'Largest frame accepted (headers and body), in bytes',
    ),
    maxHeaders: integer(1, 65_535, STOMP.maxHeaders, 'Most header lines in one frame'),
    maxHeaderLength: integer(1, UNBOUNDED, STOMP.maxHeaderLength, 'Longest header line, in bytes'),
    connectTimeout: integer(
      1,
      MAX_TIMER_MS,
      STOMP.connectTimeout,
      'Milliseconds a new connection has to send CONNECT',
    ),
    heartbeatSend: integer(
      0,
      MAX_TIMER_MS,
      STOMP.heartbeatSend,
      'Shortest interval between heart-beats the server sends, in ms (0: sends none)',
    ),
    heartbeatReceive: integer(
      0,
      MAX_TIMER_MS,
      STOMP.heartbeatReceive,
      'Interval at which the server wants client heart-beats, in ms; silent for twice it: closed (0: none)',
    ),
    maxSubscriptions: integer(
      0,
      UNBOUNDED,
      STOMP.maxSubscriptions,
      'Subscriptions one connection may hold (0: unlimited)',
    ),
    maxUnacknowledged: integer(
      1,
      65_535,
      STOMP.maxUnacknowledged,
      'Topic messages awaiting ACK per connection; more wait in its queue',
    ),
    maxTransactionFrames: integer(
      0,
      UNBOUNDED,
      STOMP.maxTransactionFrames,
      "Frames a connection's open transactions may hold",
    ),
    maxSendRate: integer(
      0,
      UNBOUNDED,
      STOMP.maxSendRate,
      'SEND frames a second per client; beyond it reads pause (0: unlimited)',
    ),
    maxSendBytesRate: integer(
      0,
      UNBOUNDED,
      STOMP.maxSendBytesRate,
      'Body bytes a second per client; beyond it reads pause (0: unlimited)',
    ),
    outboundSoftLimit: integer(
      0,
      UNBOUNDED,
      STOMP.outboundSoftLimit,
      'Unsent bytes per connection beyond which QoS 0 to it is dropped and the rest waits',
    ),
    outboundHardLimit: integer(
      1,
      UNBOUNDED,
      STOMP.outboundHardLimit,
      'Unsent bytes per connection at which a client that does not read is disconnected',
    ),
  },
);
