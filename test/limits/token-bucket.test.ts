import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket } from '../../src/limits/index.js';

/** The token bucket, driven by a hand-held clock (milliseconds). */

describe('TokenBucket', () => {
  test('starts full: a burst of `capacity` is allowed, the next is not', () => {
    const bucket = new TokenBucket(10, 3, 0);
    assert.equal(bucket.tryTake(1, 0), true);
    assert.equal(bucket.tryTake(1, 0), true);
    assert.equal(bucket.tryTake(1, 0), true);
    assert.equal(bucket.tryTake(1, 0), false);
  });

  test('refills at `rate` tokens a second, never beyond `capacity`', () => {
    const bucket = new TokenBucket(10, 5, 0);
    assert.equal(bucket.tryTake(5, 0), true);
    assert.equal(bucket.available(0), 0);
    assert.equal(bucket.available(100), 1); // 10/s for 0.1 s
    assert.equal(bucket.available(250), 2.5);
    assert.equal(bucket.available(60_000), 5);
    assert.equal(bucket.isFull(60_000), true);
  });

  test('tryTake takes nothing when it refuses', () => {
    const bucket = new TokenBucket(1, 2, 0);
    assert.equal(bucket.tryTake(3, 0), false);
    assert.equal(bucket.available(0), 2);
  });

  test('take goes into debt and answers how long until it is paid off', () => {
    const bucket = new TokenBucket(100, 10, 0);
    assert.equal(bucket.take(10, 0), 0);
    // 5 tokens of debt at 100/s: 50 ms.
    assert.equal(bucket.take(5, 0), 50);
    assert.equal(bucket.available(0), -5);
    assert.equal(bucket.available(50), 0);
    // A cost above the capacity goes through once, then waits as long as its size deserves.
    assert.equal(bucket.take(210, 50), 2100);
  });

  test('a clock that goes backwards takes nothing away', () => {
    const bucket = new TokenBucket(10, 10, 1000);
    bucket.tryTake(5, 1000);
    assert.equal(bucket.available(500), 5);
    assert.equal(bucket.available(1100), 6);
  });
});
