import { EventEmitter } from 'node:events';
import { totalmem } from 'node:os';

/** Settings of the process-wide memory watch. */
export interface MemoryWatchOptions {
  /**
   * Memory (bytes, as the source measures it) above which load is shed. 0 derives it: 80% of
   * the memory the process may use (its cgroup limit, else the machine's memory). -1 disables
   * the watch.
   */
  highWaterMark: number;
  /** Memory below which shedding stops again (hysteresis). 0 derives it: 85% of the high-water mark. */
  lowWaterMark: number;
  /** Milliseconds between samples. Default 1000. */
  sampleInterval: number;
}

/** The defaults: derived water marks, one sample a second. */
export const DEFAULT_MEMORY_WATCH_OPTIONS: MemoryWatchOptions = {
  highWaterMark: 0,
  lowWaterMark: 0,
  sampleInterval: 1000,
};

/** What the watch measures, in bytes. Injectable for tests. */
export type MemorySource = () => number;

/** The resident set size: what the operating system counts against the process (the cheap variant). */
export const residentSetSize: MemorySource = () => process.memoryUsage.rss();

/** A change of the watch's state, for logs and metrics. */
export interface MemoryState {
  /** True while load is being shed. */
  readonly high: boolean;
  /** The sample that caused the change. */
  readonly bytes: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
}

/** Events of a MemoryWatch. */
export interface MemoryWatchEvents {
  /** Crossed the high-water mark upwards, or the low-water mark downwards. */
  change: [state: MemoryState];
  /** The source threw; the watch keeps its state and tries again at the next sample. */
  sampleFailed: [error: unknown];
}

/** The memory this process may use: its cgroup limit when it has one, else the machine's memory. */
export function memoryLimit(): number {
  const total = totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < total ? constrained : total;
}

/**
 * Samples memory on an unref'd interval and says when it is too high: above the high-water
 * mark it reports `high` (new connections are refused, QoS 0 deliveries dropped, publishers'
 * reads paused) until memory falls below the low-water mark. The gap between the two marks
 * keeps it from flapping. It never throws: a failing source or listener is reported, not fatal.
 */
export class MemoryWatch extends EventEmitter<MemoryWatchEvents> {
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly sampleInterval: number;
  private state = false;
  private timer: NodeJS.Timeout | undefined;
  private relief: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(
    options: Partial<MemoryWatchOptions> = {},
    private readonly source: MemorySource = residentSetSize,
  ) {
    super();
    const resolved = { ...DEFAULT_MEMORY_WATCH_OPTIONS, ...options };
    this.highWaterMark =
      resolved.highWaterMark === 0 ? Math.floor(memoryLimit() * 0.8) : resolved.highWaterMark;
    this.lowWaterMark =
      resolved.lowWaterMark === 0 ? Math.floor(this.highWaterMark * 0.85) : resolved.lowWaterMark;
    if (this.enabled && this.lowWaterMark > this.highWaterMark) {
      throw new RangeError(
        `memory low-water mark ${this.lowWaterMark} is above the high-water mark ${this.highWaterMark}`,
      );
    }
    this.sampleInterval = resolved.sampleInterval;
  }

  /** False when configured off (a negative high-water mark): never high. */
  get enabled(): boolean {
    return this.highWaterMark > 0;
  }

  /** True while memory is above the high-water mark and not yet back below the low-water mark. */
  get high(): boolean {
    return this.state;
  }

  /** Starts sampling (a first sample now); the interval does not keep the process alive. */
  start(): this {
    if (!this.enabled || this.timer !== undefined) return this;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.sampleInterval);
    this.timer.unref();
    return this;
  }

  /** Stops sampling; the state stays as it was last seen. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes a sample now and updates the state; returns whether memory is high. */
  sample(): boolean {
    if (!this.enabled) return false;
    let bytes: number;
    try {
      bytes = this.source();
    } catch (error) {
      this.report('sampleFailed', error);
      return this.state;
    }
    if (!Number.isFinite(bytes)) return this.state;
    if (!this.state && bytes > this.highWaterMark) this.set(true, bytes);
    else if (this.state && bytes < this.lowWaterMark) this.set(false, bytes);
    return this.state;
  }

  /** Resolves once memory is back below the low-water mark (at once when it is not high). */
  whenRelieved(): Promise<void> {
    if (!this.state) return Promise.resolve();
    if (this.relief === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.relief = { promise, resolve };
    }
    return this.relief.promise;
  }

  private set(high: boolean, bytes: number): void {
    this.state = high;
    if (!high) {
      this.relief?.resolve();
      this.relief = undefined;
    }
    this.report('change', {
      high,
      bytes,
      highWaterMark: this.highWaterMark,
      lowWaterMark: this.lowWaterMark,
    });
  }

  /** Emits without letting a throwing listener escape into the timer (and crash the process). */
  private report<E extends keyof MemoryWatchEvents>(event: E, ...args: MemoryWatchEvents[E]): void {
    try {
      (this.emit as (e: E, ...a: MemoryWatchEvents[E]) => boolean)(event, ...args);
    } catch {
      // A listener's own failure is its business; the watch goes on.
    }
  }
}
