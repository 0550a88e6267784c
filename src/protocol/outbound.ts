import type { Duplex } from 'node:stream';

/** What an OutboundWriter tells the connection it writes for. */
export interface OutboundEvents {
  /** A write left more than the soft limit unsent: the client is a slow consumer until `drained`. */
  overSoftLimit(): void;
  /**
   * More than the hard limit is unsent: only a client that stopped reading gets there. Called
   * once, on a later tick (never from inside a write: the caller may be in a delivery loop).
   */
  overHardLimit(): void;
  /** 'drain' came and nothing is parked: the client read what it was sent. */
  drained(): void;
  /** One tick's writes were handed to the stream together. */
  flushed?(): void;
}

export interface OutboundLimits {
  /** Unsent bytes beyond which the client is a slow consumer; never below the stream's own mark, so 'drain' follows. */
  softLimit: number;
  /** Unsent bytes beyond which the connection goes; never below the soft limit plus one largest frame. */
  hardLimit: number;
  /** The largest frame or packet the connection writes. */
  largestFrame: number;
}

/** Where written bytes are counted (the broker's traffic metrics). */
export interface SentCounter {
  bytesSent: number;
}

const NOTHING = Buffer.alloc(0);

/**
 * One connection's outbound bytes, whatever the protocol.
 *
 * - Everything written in one tick is corked into one vectored write: one syscall (one
 *   WebSocket message) instead of one each.
 * - Past the stream's high-water mark bytes are parked, in order, and moved to the stream on
 *   'drain' until it is at its mark again, so the stream never holds much more than its mark:
 *   bigger writes stretch every subscriber's latency (fan-out throughput fell ~30% when
 *   deliveries ran on to the soft limit unparked, commit 421fae0).
 * - The slow-consumer limits count every unsent byte, in the stream and parked (`unsentBytes`).
 * - `end` writes what is parked before ending the stream, so a final frame is not lost.
 */
export class OutboundWriter {
  readonly softLimit: number;
  readonly hardLimit: number;
  private corked = false;
  /** Bytes waiting for 'drain', from `parkedHead` on. */
  private parked: Buffer[] = [];
  private parkedHead = 0;
  private parkedBytes = 0;
  private hardLimitReported = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.events.flushed?.();
    this.stream.uncork();
  };
  private readonly reportHardLimit = (): void => this.events.overHardLimit();

  constructor(
    readonly stream: Duplex,
    limits: OutboundLimits,
    private readonly counter: SentCounter,
    private readonly events: OutboundEvents,
  ) {
    this.softLimit = Math.max(limits.softLimit, stream.writableHighWaterMark);
    this.hardLimit = Math.max(limits.hardLimit, this.softLimit + limits.largestFrame);
    stream.on('drain', () => this.onDrain());
  }

  /** Unsent bytes: in the stream's buffer and parked behind it. */
  get unsentBytes(): number {
    return this.stream.writableLength + this.parkedBytes;
  }

  /** Writes `bytes` after everything before; false once the client is a slow consumer. */
  write(bytes: Buffer): boolean {
    this.counter.bytesSent += bytes.length;
    const stream = this.stream;
    if (this.parkedBytes > 0 || stream.writableNeedDrain) {
      this.parked.push(bytes);
      this.parkedBytes += bytes.length;
    } else {
      if (!this.corked) {
        this.corked = true;
        stream.cork();
        process.nextTick(this.uncork);
      }
      stream.write(bytes);
    }
    const unsent = stream.writableLength + this.parkedBytes;
    if (unsent <= this.softLimit) return true;
    this.events.overSoftLimit();
    if (unsent > this.hardLimit && !this.hardLimitReported) {
      this.hardLimitReported = true;
      process.nextTick(this.reportHardLimit);
    }
    return false;
  }

  /** Ends the stream after everything written, parked bytes included. */
  end(): void {
    if (this.parkedBytes > 0 && !this.stream.destroyed) this.unpark(true);
    this.stream.end();
  }

  private onDrain(): void {
    if (this.parkedBytes > 0) {
      this.stream.cork();
      this.unpark(false);
      this.stream.uncork();
      if (this.parkedBytes > 0) return;
    }
    this.events.drained();
  }

  /** Moves parked bytes to the stream until it is past its mark again (all of them when `all`). */
  private unpark(all: boolean): void {
    const { parked, stream } = this;
    let i = this.parkedHead;
    while (i < parked.length && (all || !stream.writableNeedDrain)) {
      const bytes = parked[i]!;
      parked[i++] = NOTHING;
      this.parkedBytes -= bytes.length;
      stream.write(bytes);
    }
    if (i === parked.length) {
      this.parked = [];
      this.parkedHead = 0;
    } else if (i > 1024 && i * 2 > parked.length) {
      // Drop the written-out front now and then, not on every drain.
      this.parked = parked.slice(i);
      this.parkedHead = 0;
    } else {
      this.parkedHead = i;
    }
  }
}
