import { setTimeout as delay } from 'node:timers/promises';
import type { MemoryWatch } from './memory-watch.js';
import { TokenBucket } from './token-bucket.js';

/** Per-client publish rates; 0 leaves one unlimited. */
export interface PublishRates {
  /** Messages a second, sustained; a burst of one second's worth is allowed. */
  messagesPerSecond: number;
  /** Bytes a second (as the protocol counts a message's size), sustained; one second's worth in a burst. */
  bytesPerSecond: number;
}

/**
 * Slows one publisher down instead of dropping what it sends: after each message it says
 * how long the reader should stop reading (its rate buckets are in debt, or the process's
 * memory is above its high-water mark). Pausing reads pushes back through TCP to the
 * client, so QoS 1/2 messages are delayed, never lost. Protocol-neutral.
 */
export class PublishThrottle {
  private readonly messages: TokenBucket | undefined;
  private readonly bytes: TokenBucket | undefined;

  constructor(
    rates: PublishRates,
    private readonly memory: MemoryWatch | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    const start = now();
    if (rates.messagesPerSecond > 0) {
      const burst = Math.max(1, rates.messagesPerSecond);
      this.messages = new TokenBucket(rates.messagesPerSecond, burst, start);
    }
    if (rates.bytesPerSecond > 0) {
      this.bytes = new TokenBucket(rates.bytesPerSecond, Math.max(1, rates.bytesPerSecond), start);
    }
  }

  /** A throttle only when something can slow publishers down; undefined keeps the hot path at one check. */
  static create(rates: PublishRates, memory: MemoryWatch | undefined): PublishThrottle | undefined {
    if (rates.messagesPerSecond <= 0 && rates.bytesPerSecond <= 0 && memory === undefined) return undefined;
    return new PublishThrottle(rates, memory);
  }

  /**
   * Charges one message of `size` bytes and answers what reading must wait for: undefined
   * when it may go on, else a promise that resolves once the buckets are out of debt and
   * memory is below its low-water mark.
   */
  charge(size: number): Promise<void> | undefined {
    let wait = 0;
    // With only the memory watch (the production default) no clock is read.
    if (this.messages !== undefined || this.bytes !== undefined) {
      const now = this.now();
      if (this.messages !== undefined) wait = this.messages.take(1, now);
      if (this.bytes !== undefined) wait = Math.max(wait, this.bytes.take(size, now));
    }
    const memory = this.memory;
    const memoryHigh = memory?.high === true;
    if (wait === 0 && !memoryHigh) return undefined;
    const refilled = wait === 0 ? undefined : delay(wait);
    if (memory === undefined || !memoryHigh) return refilled;
    // Memory is asked again after the refill: it may have risen anew meanwhile.
    return refilled === undefined ? memory.whenRelieved() : refilled.then(() => memory.whenRelieved());
  }
}
