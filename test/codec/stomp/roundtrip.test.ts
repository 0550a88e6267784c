import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeFrames, encodeFrame, headerEncodingFault } from '../../../src/codec/stomp/index.js';
import { heartbeatsArb, VERSIONS, type VersionedFrame, versionedFrameArb } from './arbitraries.js';
import { decodeChunked, plain } from './helpers.js';

/**
 * Property-based tests of the STOMP codec: encode/decode round trips, and the streaming
 * decoder's outcome (frames, heart-beats, error) independent of how the stream is chunked,
 * for valid and for damaged streams. Replay a failure with FC_SEED.
 */

const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const runs = (n: number): fc.Parameters<unknown> => ({
  numRuns: n,
  ...(SEED === undefined ? {} : { seed: SEED }),
});

const encode = ({ frame, version }: VersionedFrame): Buffer =>
  encodeFrame(frame.command, frame.headers, frame.body, version);

/** Frames of one version and the heart-beats between them, as one stream. */
const streamArb = fc.constantFrom(...VERSIONS).chain((version) =>
  fc
    .array(
      fc.tuple(
        heartbeatsArb,
        versionedFrameArb.map(({ frame }) => frame),
      ),
      { maxLength: 6 },
    )
    .map((items) => {
      // The generated frame's escaping assumed its own version; re-check it for this one.
      const frames = items
        .map(([, frame]) => frame)
        .filter((f) =>
          f.headers.every(([n, v]) => headerEncodingFault(f.command, n, v, version) === undefined),
        );
      const parts = frames.flatMap((frame, i) => [
        Buffer.from(items[i]![0]),
        encodeFrame(frame.command, frame.headers, frame.body, version),
      ]);
      const heartbeats = items
        .slice(0, frames.length)
        .reduce((n, [eols]) => n + eols.split('\n').length - 1, 0);
      return { version, frames, heartbeats, stream: Buffer.concat(parts) };
    }),
);

const cutsArb = fc.array(fc.nat({ max: 2000 }), { maxLength: 12 });

describe('encode/decode round trip', () => {
  test('every generated frame is encodable for its version', () => {
    fc.assert(
      fc.property(versionedFrameArb, ({ version, frame }) => {
        for (const [name, value] of frame.headers)
          assert.equal(headerEncodingFault(frame.command, name, value, version), undefined);
      }),
      runs(1000),
    );
  });

  test('decode(encode(frame)) is the frame, and re-encoding gives the same bytes', () => {
    fc.assert(
      fc.property(versionedFrameArb, (item) => {
        const bytes = encode(item);
        const decoded = decodeFrames(bytes, item.version);
        assert.deepStrictEqual(decoded, [item.frame]);
        assert.deepStrictEqual(encode({ version: item.version, frame: decoded[0]! }), bytes);
      }),
      runs(3000),
    );
  });

  test('the encoder writes exactly the bytes it sized: no slack, the last byte is the NUL', () => {
    fc.assert(
      fc.property(versionedFrameArb, (item) => {
        const bytes = encode(item);
        assert.equal(bytes.at(-1), 0);
        assert.ok(bytes.subarray(bytes.length - 1 - item.frame.body.length, -1).equals(item.frame.body));
      }),
      runs(1000),
    );
  });
});

describe('streaming: chunking never changes the outcome', () => {
  test('valid streams with heart-beats decode the same from any chunking', () => {
    fc.assert(
      fc.property(streamArb, cutsArb, ({ version, frames, heartbeats, stream }, cuts) => {
        const outcome = decodeChunked(stream, { version, cuts });
        assert.equal(outcome.error, undefined);
        assert.equal(outcome.midFrame, false);
        assert.deepStrictEqual(plain(outcome.frames), plain(frames));
        assert.equal(outcome.heartbeats, heartbeats);
      }),
      runs(1500),
    );
  });

  const damageArb = fc.array(
    fc.record({
      at: fc.nat(),
      byte: fc.constantFrom(0x00, 0x0a, 0x0d, 0x3a, 0x5c, 0x41, 0xff, 0xc3, 0x30),
      insert: fc.boolean(),
    }),
    { minLength: 1, maxLength: 3 },
  );
  const limitsArb = fc.record(
    { maxFrameSize: fc.integer({ min: 1, max: 200 }), maxHeaders: fc.nat(6), maxHeaderLength: fc.nat(30) },
    { requiredKeys: [] },
  );

  test('damaged streams give the same frames, heart-beats and error code from any chunking, under any limits', () => {
    fc.assert(
      fc.property(streamArb, damageArb, limitsArb, cutsArb, ({ version, stream }, damage, limits, cuts) => {
        let bytes = stream;
        for (const { at, byte, insert } of damage) {
          const i = bytes.length === 0 ? 0 : at % (bytes.length + (insert ? 1 : 0));
          bytes = insert
            ? Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)])
            : Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i + 1)]);
        }
        const whole = decodeChunked(bytes, { version, limits });
        const chunked = decodeChunked(bytes, { version, limits, cuts });
        assert.equal(chunked.error?.code, whole.error?.code);
        assert.deepStrictEqual(plain(chunked.frames), plain(whole.frames));
        assert.equal(chunked.heartbeats, whole.heartbeats);
        assert.equal(chunked.midFrame, whole.midFrame);
      }),
      runs(3000),
    );
  });
});
