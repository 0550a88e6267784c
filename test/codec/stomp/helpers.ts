import {
  type StompDecoder as Decoder,
  StompCodecError,
  StompDecoder,
  type StompFrame,
  type StompLimits,
  type StompVersion,
} from '../../../src/codec/stomp/index.js';

/** Frame text from its lines, joined by LF: `wire('SEND', 'destination:/a', '', 'body\0')`. */
export function wire(...lines: string[]): Buffer {
  return Buffer.from(lines.join('\n'), 'utf8');
}

/** Everything a decoder made of a stream: frames, heart-beats, and the error that ended it, if any. */
export interface Outcome {
  frames: StompFrame[];
  heartbeats: number;
  error: StompCodecError | undefined;
  /** Whether the stream ended inside a frame. */
  midFrame: boolean;
}

/**
 * Feeds `stream` to a fresh decoder in the chunks `cuts` make (offsets, any order, may repeat).
 * Only StompCodecError is caught: anything else fails the test. `afterPush` sees the decoder
 * after every chunk (to check buffering).
 */
export function decodeChunked(
  stream: Buffer,
  options: {
    version?: StompVersion;
    limits?: Partial<StompLimits>;
    cuts?: readonly number[];
    afterPush?: (decoder: Decoder, fed: number) => void;
  } = {},
): Outcome {
  const decoder = new StompDecoder(options.limits);
  decoder.version = options.version ?? '1.2';
  const frames: StompFrame[] = [];
  let heartbeats = 0;
  const bounds = [...new Set([0, ...(options.cuts ?? []), stream.length])]
    .filter((at) => at >= 0 && at <= stream.length)
    .sort((a, b) => a - b);
  try {
    for (let i = 1; i < bounds.length; i++) {
      decoder.push(
        stream.subarray(bounds[i - 1], bounds[i]),
        (frame) => frames.push(frame),
        () => heartbeats++,
      );
      options.afterPush?.(decoder, bounds[i]!);
    }
  } catch (error) {
    if (!(error instanceof StompCodecError)) throw error;
    return { frames, heartbeats, error, midFrame: decoder.midFrame };
  }
  return { frames, heartbeats, error: undefined, midFrame: decoder.midFrame };
}

/** Every offset of `stream`: a one-byte drip. */
export function everyByte(stream: Buffer): number[] {
  return Array.from({ length: stream.length }, (_, i) => i);
}

/** Frames as plain data, bodies as hex, for deepEqual across decoders. */
export function plain(frames: readonly StompFrame[]): unknown[] {
  return frames.map((f) => ({ command: f.command, headers: f.headers, body: f.body.toString('hex') }));
}
