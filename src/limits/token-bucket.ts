/**
 * A token bucket: `rate` tokens a second flow in up to `capacity`; each action takes some.
 * The clock is a parameter of every call (milliseconds, any monotonic origin), so one bucket
 * costs two numbers and tests drive time by hand.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  /**
   * @param rate tokens added per second (> 0)
   * @param capacity most tokens held: the burst allowed after a quiet spell (>= 1)
   * @param now the clock's reading at creation; the bucket starts full
   */
  constructor(
    readonly rate: number,
    readonly capacity: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.updatedAt = now;
  }

  private refill(now: number): void {
    const elapsed = now - this.updatedAt;
    // A clock that went backwards adds nothing rather than taking tokens away.
    if (elapsed <= 0) return;
    this.updatedAt = now;
    const tokens = this.tokens + (elapsed * this.rate) / 1000;
    this.tokens = tokens > this.capacity ? this.capacity : tokens;
  }

  /** Takes `cost` tokens if there are that many; otherwise takes none and answers false. */
  tryTake(cost: number, now: number): boolean {
    this.refill(now);
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /**
   * Takes `cost` tokens even if that puts the bucket in debt, and answers how many
   * milliseconds until it is out of debt again (0 when there were enough). Allowing debt
   * means an action larger than the capacity (one big message) still goes through, and then
   * waits as long as its size deserves.
   */
  take(cost: number, now: number): number {
    this.refill(now);
    this.tokens -= cost;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** Tokens available now (negative while in debt). */
  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** True when the bucket is full: it remembers nothing, so whoever keeps it may forget it. */
  isFull(now: number): boolean {
    return this.available(now) >= this.capacity;
  }
}
