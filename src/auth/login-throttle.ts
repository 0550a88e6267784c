/**
 * Slows password guessing per source address: after a few free failures, each further
 * refusal is held back, twice as long each time up to a cap. A quiet window forgets the
 * address (access control does not clear it on a success: one valid account must not reset
 * the slowing of guesses at others); the table is bounded, so a storm of addresses cannot
 * exhaust memory.
 */

export interface LoginThrottleOptions {
  /** Failures an address may have before refusals are delayed. Default 5. */
  readonly freeFailures?: number;
  /** An address's failures are forgotten after this long without a new one, in ms. Default 600000 (10 min). */
  readonly windowMs?: number;
  /** The first delay, in ms; each further failure doubles it. Default 250. */
  readonly initialDelayMs?: number;
  /** The longest delay, in ms. Default 10000. */
  readonly maxDelayMs?: number;
  /** Most addresses tracked; the least recently failing is forgotten first. Default 10000. */
  readonly maxAddresses?: number;
  /** Milliseconds; for tests. Default `Date.now`. */
  readonly now?: () => number;
}

interface FailureRecord {
  count: number;
  lastFailure: number;
}

/** Failed-login bookkeeping per source address (implements access control's `FailureThrottle`). */
export class LoginThrottle {
  private readonly records = new Map<string, FailureRecord>();
  private failuresSeen = 0;
  private readonly freeFailures: number;
  private readonly windowMs: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;

  constructor(options: LoginThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? 5;
    this.windowMs = options.windowMs ?? 600_000;
    this.initialDelayMs = options.initialDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 10_000;
    this.maxAddresses = Math.max(1, options.maxAddresses ?? 10_000);
    this.now = options.now ?? Date.now;
  }

  /** How long to hold back the next refusal for `address`, in ms (0 while failures are free). */
  delayFor(address: string): number {
    const excess = this.failures(address) - this.freeFailures;
    if (excess < 0) return 0;
    // 2^excess overflows to Infinity long before it matters; the cap bounds it.
    return Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** excess);
  }

  /** Counts a refused login from `address`. */
  recordFailure(address: string): void {
    const now = this.now();
    this.failuresSeen++;
    this.forgetExpired(now);
    const record = this.live(address, now);
    // Re-inserted, so the map stays ordered by last failure (oldest first).
    this.records.delete(address);
    if (this.records.size >= this.maxAddresses) this.records.delete(this.records.keys().next().value!);
    this.records.set(address, { count: (record?.count ?? 0) + 1, lastFailure: now });
  }

  /** Forgets `address`'s failures (for callers that trust a success to clear them). */
  recordSuccess(address: string): void {
    this.records.delete(address);
  }

  /** Failures of `address` in its current window. */
  failures(address: string): number {
    return this.live(address, this.now())?.count ?? 0;
  }

  /** Every failure ever recorded (a counter for metrics). */
  get totalFailures(): number {
    return this.failuresSeen;
  }

  /** Addresses tracked at the moment. */
  get size(): number {
    return this.records.size;
  }

  private live(address: string, now: number): FailureRecord | undefined {
    const record = this.records.get(address);
    if (record === undefined || now - record.lastFailure < this.windowMs) return record;
    this.records.delete(address);
    return undefined;
  }

  /** Drops expired records from the front, where the oldest are. */
  private forgetExpired(now: number): void {
    for (const [address, record] of this.records) {
      if (now - record.lastFailure < this.windowMs) break;
      this.records.delete(address);
    }
  }
}
