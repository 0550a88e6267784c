import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeFrames,
  encodeFrame,
  headerEncodingFault,
  STOMP_CLIENT_COMMANDS,
  STOMP_SERVER_COMMANDS,
  type StompDecoder,
  type StompLimits,
  type StompVersion,
} from '../../../src/codec/stomp/index.js';
import { seeded, seedFrom } from '../../helpers/random.js';
import { decodeChunked, type Outcome, plain } from './helpers.js';

/**
 * Fuzzing the STOMP decoder with random and mutated byte streams. Every input must either
 * decode or raise a StompCodecError: nothing else may throw, held memory stays below what was
 * fed and below the frame size limit, chunking does not change the outcome, and whatever
 * decodes re-encodes to bytes that decode to the same frame. The seed is printed so a failure
 * can be replayed with FUZZ_SEED.
 */

const seed = seedFrom('FUZZ_SEED');
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 10_000);
const VERSIONS: readonly StompVersion[] = ['1.0', '1.1', '1.2'];

const { random, int, pick, bytes, mutate } = seeded(seed);

const corpus: Buffer[] = [
  'CONNECT\naccept-version:1.0,1.1,1.2\nhost:h\nlogin:u\npasscode:p\nheart-beat:0,0\n\n\0',
  'STOMP\naccept-version:1.2\nhost:h\n\n\0',
  'CONNECTED\nversion:1.2\nheart-beat:0,1000\n\n\0',
  'SEND\ndestination:/topic/a.b\ncontent-type:text/plain\n\nhello\0',
  'SEND\ndestination:/queue/q\ncontent-length:5\n\na\0b\0c\0',
  'SEND\r\ndestination:/queue/q\r\nreceipt:1\r\n\r\nbody\0',
  'SUBSCRIBE\nid:0\ndestination:/queue/q\nack:client\n\n\0',
  'UNSUBSCRIBE\nid:0\n\n\0',
  'ACK\nid:a\\cb\ntransaction:t\n\n\0',
  'NACK\nid:x\\ny\\r\\\\\n\n\0',
  'BEGIN\ntransaction:t\n\n\0',
  'COMMIT\ntransaction:t\n\n\0',
  'ABORT\ntransaction:t\n\n\0',
  'DISCONNECT\nreceipt:9\n\n\0',
  'MESSAGE\nsubscription:0\nmessage-id:1\ndestination:/topic/x\nclé:☕\ncontent-length:3\n\n\0\0\0\0',
  'RECEIPT\nreceipt-id:9\n\n\0',
  'ERROR\nmessage:bad\nreceipt-id:9\n\ndetails\0',
  '\n',
  '\r\n',
].map((s) => Buffer.from(s, 'utf8'));

/** Bytes that steer the STOMP grammar, for mutations beyond the generic ones. */
const GRAMMAR = [0x00, 0x0a, 0x0d, 0x3a, 0x5c, 0x63, 0x6e, 0xc3, 0xff, 0x30, 0x2d];

function stompMutate(input: Buffer): Buffer {
  let out = input;
  for (let r = 1 + int(3); r > 0; r--) {
    const at = int(out.length + 1);
    const byte = Buffer.from([pick(GRAMMAR)]);
    out =
      random() < 0.5
        ? Buffer.concat([out.subarray(0, at), byte, out.subarray(at)])
        : Buffer.concat([out.subarray(0, at), byte, out.subarray(at + 1)]);
  }
  return out;
}

function randomStream(): Buffer {
  if (random() < 0.1) return bytes(int(64));
  const stream = Buffer.concat(Array.from({ length: 1 + int(5) }, () => pick(corpus)));
  const roll = random();
  if (roll < 0.1) return stream;
  if (roll < 0.55) return mutate(stream);
  return stompMutate(roll < 0.8 ? stream : mutate(stream));
}

function randomLimits(): Partial<StompLimits> {
  if (random() < 0.6) return {};
  return { maxFrameSize: 1 + int(120), maxHeaders: int(6), maxHeaderLength: int(40) };
}

function randomCuts(length: number): number[] {
  const cuts: number[] = [];
  for (let at = 0; at < length; ) {
    at += random() < 0.3 ? 1 : 1 + int(length);
    cuts.push(at);
  }
  return cuts;
}

function fail(message: string, stream: Buffer): never {
  assert.fail(`seed ${seed}: ${message} for ${JSON.stringify(stream.toString('latin1'))}`);
}

describe(`STOMP decoder fuzz (seed ${seed}, replay with FUZZ_SEED)`, () => {
  test(`${ITERATIONS} random and mutated streams: frames or a typed error, bounded, chunking-independent`, () => {
    let decodedFrames = 0;
    let reEncoded = 0;
    let codecErrors = 0;
    const codes = new Set<string>();
    for (let i = 0; i < ITERATIONS; i++) {
      const stream = randomStream();
      const version = pick(VERSIONS);
      const limits = randomLimits();
      const bounded = (decoder: StompDecoder, fed: number) => {
        if (decoder.bufferedBytes > fed) fail('decoder holds more than it was fed', stream);
        if (decoder.bufferedBytes > decoder.limits.maxFrameSize)
          fail('decoder holds more than a frame', stream);
      };
      let whole: Outcome;
      let chunked: Outcome;
      try {
        whole = decodeChunked(stream, { version, limits, afterPush: bounded });
        chunked = decodeChunked(stream, {
          version,
          limits,
          cuts: randomCuts(stream.length),
          afterPush: bounded,
        });
      } catch (error) {
        fail(`non-codec error ${error}`, stream);
      }
      if (chunked.error?.code !== whole.error?.code)
        fail(`${chunked.error?.code} != ${whole.error?.code}`, stream);
      assert.deepStrictEqual(
        plain(chunked.frames),
        plain(whole.frames),
        `seed ${seed}: chunking changed frames`,
      );
      assert.equal(chunked.heartbeats, whole.heartbeats, `seed ${seed}: chunking changed heart-beats`);
      if (whole.error) {
        codecErrors++;
        codes.add(whole.error.code);
      }
      for (const frame of whole.frames) {
        decodedFrames++;
        if (!STOMP_CLIENT_COMMANDS.has(frame.command) && !STOMP_SERVER_COMMANDS.has(frame.command))
          fail(`decoded an unknown command ${frame.command}`, stream);
        // A 1.0 value may keep an inner CR the unescaped encoder refuses; anything else must re-encode.
        if (frame.headers.some(([n, v]) => headerEncodingFault(frame.command, n, v, version) !== undefined))
          continue;
        const again = decodeFrames(encodeFrame(frame.command, frame.headers, frame.body, version), version);
        assert.deepStrictEqual(plain(again), plain([frame]), `seed ${seed}: re-encoding changed a frame`);
        reEncoded++;
      }
    }
    // The mutations must exercise both outcomes and most error codes, or the fuzzer tests nothing.
    assert.ok(decodedFrames > ITERATIONS / 2, `only ${decodedFrames} frames decoded`);
    assert.ok(reEncoded > decodedFrames * 0.9, `only ${reEncoded} of ${decodedFrames} frames re-encoded`);
    assert.ok(codecErrors > ITERATIONS / 4, `only ${codecErrors} codec errors`);
    assert.ok(codes.size >= 7, `only ${[...codes].join(', ')} seen`);
  });
});
