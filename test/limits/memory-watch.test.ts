import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type MemoryState, MemoryWatch, memoryLimit, PublishThrottle } from '../../src/limits/index.js';
import { topicFault } from '../../src/limits/topic-limits.js';

/** The memory watch with an injected source, the publish throttle and the topic limits. */

describe('MemoryWatch', () => {
  test('goes high above the high-water mark and back only below the low-water mark (hysteresis)', async () => {
    let bytes = 100;
    const watch = new MemoryWatch({ highWaterMark: 1000, lowWaterMark: 600 }, () => bytes);
    const changes: MemoryState[] = [];
    watch.on('change', (state) => changes.push(state));
    assert.equal(watch.sample(), false);
    bytes = 1001;
    assert.equal(watch.sample(), true);
    const relieved = watch.whenRelieved();
    let done = false;
    relieved.then(() => {
      done = true;
    });
    bytes = 800; // below high, above low: still high
    assert.equal(watch.sample(), true);
    await Promise.resolve();
    assert.equal(done, false);
    bytes = 599;
    assert.equal(watch.sample(), false);
    await relieved;
    assert.deepEqual(
      changes.map((c) => [c.high, c.bytes]),
      [
        [true, 1001],
        [false, 599],
      ],
    );
    assert.equal(changes[0]!.highWaterMark, 1000);
    assert.equal(changes[0]!.lowWaterMark, 600);
  });

  test('never throws: a failing source is reported and the state kept; a throwing listener is contained', () => {
    let fail = false;
    let bytes = 2000;
    const watch = new MemoryWatch({ highWaterMark: 1000, lowWaterMark: 500 }, () => {
      if (fail) throw new Error('no /proc today');
      return bytes;
    });
    const failures: unknown[] = [];
    watch.on('sampleFailed', (error) => failures.push(error));
    watch.on('change', () => {
      throw new Error('a clumsy listener');
    });
    assert.equal(watch.sample(), true);
    fail = true;
    assert.equal(watch.sample(), true);
    assert.equal(failures.length, 1);
    fail = false;
    bytes = Number.NaN;
    assert.equal(watch.sample(), true);
    bytes = 10;
    assert.equal(watch.sample(), false);
  });

  test('derived marks: 80% of the memory limit, low at 85% of high; -1 switches it off', () => {
    const derived = new MemoryWatch({}, () => 0);
    assert.equal(derived.highWaterMark, Math.floor(memoryLimit() * 0.8));
    assert.equal(derived.lowWaterMark, Math.floor(derived.highWaterMark * 0.85));
    const off = new MemoryWatch({ highWaterMark: -1 }, () => Number.MAX_SAFE_INTEGER);
    assert.equal(off.enabled, false);
    assert.equal(off.sample(), false);
    assert.throws(() => new MemoryWatch({ highWaterMark: 10, lowWaterMark: 20 }), RangeError);
  });

  test('start samples on an unref’d interval; stop ends it', () => {
    const watch = new MemoryWatch({ highWaterMark: 1000, sampleInterval: 60_000 }, () => 5000);
    watch.start();
    assert.equal(watch.high, true); // the first sample is taken at once
    watch.stop();
  });
});

describe('PublishThrottle', () => {
  test('nothing to limit: no throttle at all (the read path keeps its single check)', () => {
    assert.equal(PublishThrottle.create({ messagesPerSecond: 0, bytesPerSecond: 0 }, undefined), undefined);
  });

  test('asks for a pause once a bucket is in debt, not before', async () => {
    let now = 0;
    const throttle = new PublishThrottle({ messagesPerSecond: 2, bytesPerSecond: 0 }, undefined, () => now);
    assert.equal(throttle.charge(10), undefined);
    assert.equal(throttle.charge(10), undefined);
    const wait = throttle.charge(10);
    assert.ok(wait instanceof Promise);
    await wait;
    now = 10_000;
    assert.equal(throttle.charge(10), undefined);
  });

  test('bytes: a message larger than a second’s worth goes through, then reading waits', () => {
    const throttle = new PublishThrottle({ messagesPerSecond: 0, bytesPerSecond: 1000 }, undefined, () => 0);
    assert.ok(throttle.charge(1500) instanceof Promise);
  });

  test('memory pressure pauses every publisher until the low-water mark', async () => {
    let bytes = 5000;
    const memory = new MemoryWatch({ highWaterMark: 1000, lowWaterMark: 500 }, () => bytes);
    memory.sample();
    const throttle = PublishThrottle.create({ messagesPerSecond: 0, bytesPerSecond: 0 }, memory)!;
    const wait = throttle.charge(1);
    assert.ok(wait instanceof Promise);
    bytes = 100;
    memory.sample();
    await wait;
    assert.equal(throttle.charge(1), undefined);
  });
});

describe('topicFault', () => {
  test('length in UTF-8 bytes, depth in levels', () => {
    assert.equal(topicFault('a/b/c', 5, 3), undefined);
    assert.equal(topicFault('a/b/cd', 5, 3), 'too-long');
    assert.equal(topicFault('a/b/c/d', 100, 3), 'too-deep');
    assert.equal(topicFault('///', 100, 4), undefined);
    assert.equal(topicFault('////', 100, 4), 'too-deep');
    // 'é' is two bytes: four characters, eight bytes.
    assert.equal(topicFault('éééé', 7, 10), 'too-long');
    assert.equal(topicFault('éééé', 8, 10), undefined);
  });
});
