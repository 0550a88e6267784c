import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LoginThrottle, type LoginThrottleOptions } from '../../src/auth/login-throttle.js';

/** Login throttling per source address, on an injected clock. */

function throttle(options: LoginThrottleOptions = {}): { t: LoginThrottle; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { t: new LoginThrottle({ now: () => clock.now, ...options }), clock };
}

/** Records `n` failures from `address`, returning the delay each refusal got (asked before recording, as access control does). */
function fail(t: LoginThrottle, address: string, n: number): number[] {
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    delays.push(t.delayFor(address));
    t.recordFailure(address);
  }
  return delays;
}

describe('LoginThrottle', () => {
  test('the first failures are free, then delays double from 250 ms up to the 10 s cap', () => {
    const { t } = throttle();
    assert.deepEqual(
      fail(t, '10.0.0.1', 14),
      [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000],
    );
    assert.equal(t.failures('10.0.0.1'), 14);
    assert.equal(t.delayFor('10.0.0.1'), 10_000);
  });

  test('the numbers are configurable, and a huge failure count stays at the cap', () => {
    const { t } = throttle({ freeFailures: 2, initialDelayMs: 100, maxDelayMs: 1000 });
    assert.deepEqual(fail(t, 'a', 7), [0, 0, 100, 200, 400, 800, 1000]);
    fail(t, 'a', 2000);
    assert.equal(t.delayFor('a'), 1000);
  });

  test('addresses are counted separately', () => {
    const { t } = throttle();
    fail(t, '10.0.0.1', 6);
    assert.equal(t.delayFor('10.0.0.1'), 500);
    assert.equal(t.delayFor('10.0.0.2'), 0);
    assert.equal(t.failures('10.0.0.2'), 0);
  });

  test('a success forgets the address; the total failure counter does not go back', () => {
    const { t } = throttle();
    fail(t, 'x', 7);
    fail(t, 'y', 2);
    t.recordSuccess('x');
    assert.equal(t.failures('x'), 0);
    assert.equal(t.delayFor('x'), 0);
    assert.equal(t.failures('y'), 2);
    assert.equal(t.totalFailures, 9);
  });

  test('failures are forgotten after a quiet window; a failure inside it keeps the count', () => {
    const { t, clock } = throttle({ windowMs: 60_000 });
    fail(t, 'a', 6);
    clock.now += 59_999;
    assert.equal(t.failures('a'), 6);
    fail(t, 'a', 1);
    clock.now += 59_999;
    assert.equal(t.failures('a'), 7, 'the window runs from the latest failure');
    clock.now += 1;
    assert.equal(t.failures('a'), 0);
    assert.equal(t.delayFor('a'), 0);
    assert.equal(t.size, 0, 'the expired entry is gone');
  });

  test('expired entries are dropped as new failures arrive', () => {
    const { t, clock } = throttle({ windowMs: 1000 });
    for (let i = 0; i < 100; i++) fail(t, `old-${i}`, 1);
    assert.equal(t.size, 100);
    clock.now += 1000;
    fail(t, 'new', 1);
    assert.equal(t.size, 1);
  });

  test('a storm of addresses cannot grow the table past maxAddresses: the least recently failing go first', () => {
    const { t, clock } = throttle({ maxAddresses: 3 });
    fail(t, 'a', 6);
    clock.now += 1;
    fail(t, 'b', 1);
    clock.now += 1;
    fail(t, 'a', 1); // a is now more recent than b
    for (let i = 0; i < 10_000; i++) fail(t, `storm-${i}`, 1);
    assert.equal(t.size, 3);
    assert.equal(t.failures('b'), 0);
    const { t: t2 } = throttle({ maxAddresses: 3 });
    fail(t2, 'a', 6);
    fail(t2, 'b', 1);
    fail(t2, 'a', 1);
    fail(t2, 'c', 1);
    fail(t2, 'd', 1);
    assert.equal(t2.failures('a'), 7, 'a was refreshed after b, so b went first');
    assert.equal(t2.failures('b'), 0);
    assert.equal(t2.totalFailures, 10);
  });
});
