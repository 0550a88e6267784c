import {
  ConnectionGate,
  type ConnectionGateOptions,
  DEFAULT_CONNECTION_GATE_OPTIONS,
} from './connection-gate.js';
import { DEFAULT_MEMORY_WATCH_OPTIONS, type MemorySource, MemoryWatch } from './memory-watch.js';

/** Process protection settings: connection admission and the memory high-water mark. */
export interface LimitsOptions extends ConnectionGateOptions {
  /** Memory (resident set size, bytes) above which load is shed. 0: 80% of the process's memory limit; -1: off. */
  memoryHighWaterMark: number;
  /** Memory below which shedding stops. 0: 85% of the high-water mark. */
  memoryLowWaterMark: number;
  /** Milliseconds between memory samples. Default 1000. */
  memorySampleInterval: number;
}

/** Production defaults for every limit. */
export const DEFAULT_LIMITS_OPTIONS: LimitsOptions = {
  ...DEFAULT_CONNECTION_GATE_OPTIONS,
  memoryHighWaterMark: DEFAULT_MEMORY_WATCH_OPTIONS.highWaterMark,
  memoryLowWaterMark: DEFAULT_MEMORY_WATCH_OPTIONS.lowWaterMark,
  memorySampleInterval: DEFAULT_MEMORY_WATCH_OPTIONS.sampleInterval,
};

/** Collaborators of `Limits`, injectable for tests. */
export interface LimitsDeps {
  /** What the memory watch measures. Default: the resident set size. */
  memorySource?: MemorySource;
  /** Milliseconds on a monotonic clock, for the rate buckets. */
  now?: () => number;
}

/**
 * What protects the process from any one client and from overload, shared by every protocol:
 * a connection gate (admission caps and rates) and a memory watch (load shedding). Make one
 * for the process; give a listener its own caps with `forListener`, which chains to it.
 */
export class Limits {
  readonly gate: ConnectionGate;
  /** Undefined when the memory watch is off. */
  readonly memory: MemoryWatch | undefined;
  private readonly ownsMemory: boolean;

  constructor(options: Partial<LimitsOptions> = {}, deps: LimitsDeps = {}, parent?: Limits) {
    const resolved = { ...DEFAULT_LIMITS_OPTIONS, ...options };
    if (parent === undefined) {
      const watch = new MemoryWatch(
        {
          highWaterMark: resolved.memoryHighWaterMark,
          lowWaterMark: resolved.memoryLowWaterMark,
          sampleInterval: resolved.memorySampleInterval,
        },
        deps.memorySource,
      );
      this.memory = watch.enabled ? watch.start() : undefined;
      this.ownsMemory = true;
    } else {
      this.memory = parent.memory;
      this.ownsMemory = false;
    }
    this.gate = new ConnectionGate(resolved, {
      ...(parent === undefined ? {} : { parent: parent.gate }),
      ...(this.memory === undefined ? {} : { memory: this.memory }),
      ...(deps.now === undefined ? {} : { now: deps.now }),
    });
  }

  /**
   * Limits for one listener: its own caps (those not given are off) on top of this process's,
   * sharing its memory watch. A connection must pass both gates.
   */
  forListener(options: Partial<ConnectionGateOptions>, deps: Pick<LimitsDeps, 'now'> = {}): Limits {
    const own: Partial<LimitsOptions> = {
      maxConnections: 0,
      maxConnectionsPerAddress: 0,
      connectionRatePerAddress: 0,
      ...options,
    };
    return new Limits(own, deps, this);
  }

  /** Stops sampling memory (when this is the process's Limits); the gate needs no closing. */
  close(): void {
    if (this.ownsMemory) this.memory?.stop();
  }
}
