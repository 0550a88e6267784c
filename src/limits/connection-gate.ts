import type { MemoryWatch } from './memory-watch.js';
import { TokenBucket } from './token-bucket.js';

/** Connection admission settings; 0 switches a limit off. */
export interface ConnectionGateOptions {
  /** Most connections open at once through this gate. Default 100 000. */
  maxConnections: number;
  /** Most connections open at once from one source address. Default 1000. */
  maxConnectionsPerAddress: number;
  /** New connections a second from one source address, sustained. Default 50. */
  connectionRatePerAddress: number;
  /** New connections from one source address accepted in a burst after a quiet spell. Default 100. */
  connectionBurstPerAddress: number;
}

/** Production defaults: generous for honest fleets (NAT gateways included), tight for floods. */
export const DEFAULT_CONNECTION_GATE_OPTIONS: ConnectionGateOptions = {
  maxConnections: 100_000,
  maxConnectionsPerAddress: 1000,
  connectionRatePerAddress: 50,
  connectionBurstPerAddress: 100,
};

/**
 * Why a connection was not admitted; each protocol answers in its own way:
 * - `connection-rate`: one address opens connections faster than allowed (a flood: close at once),
 * - `server-busy`: memory is above its high-water mark (transient: try again later),
 * - `total-quota`: the gate's total cap is reached,
 * - `address-quota`: the address's cap is reached.
 */
export type GateRefusal = 'connection-rate' | 'server-busy' | 'total-quota' | 'address-quota';

/** The gate's answer: admitted (release exactly when the connection ends) or refused with a reason. */
export type GateDecision = { admitted: true; release(): void } | { admitted: false; refusal: GateRefusal };

/** What the gate keeps per source address: its open connections and its rate bucket. */
interface AddressEntry {
  open: number;
  bucket: TokenBucket | undefined;
}

/** Collaborators of a gate, injectable for tests. */
export interface ConnectionGateDeps {
  /** A gate every admission must also pass (the process-wide one, for a listener's gate). */
  parent?: ConnectionGate;
  /** Refuses everyone while memory is high. */
  memory?: MemoryWatch;
  /** Milliseconds on a monotonic clock. */
  now?: () => number;
}

/** Admissions needed before the address table is swept of entries that remember nothing. */
const MIN_SWEEP_INTERVAL = 1024;

/**
 * Connection admission, protocol-neutral: every protocol asks `admit(address)` before it sets a
 * connection up and calls `release()` when it ends. Gates chain: a listener's gate with its own
 * caps has the process-wide gate as parent, so both bounds hold.
 */
export class ConnectionGate {
  readonly options: ConnectionGateOptions;
  /** Refusals so far, by reason (for metrics and tests). */
  readonly refusals: Record<GateRefusal, number> = {
    'connection-rate': 0,
    'server-busy': 0,
    'total-quota': 0,
    'address-quota': 0,
  };
  private openCount = 0;
  private readonly addresses = new Map<string, AddressEntry>();
  private admitsSinceSweep = 0;
  private readonly parent: ConnectionGate | undefined;
  private readonly memory: MemoryWatch | undefined;
  private readonly now: () => number;

  constructor(options: Partial<ConnectionGateOptions> = {}, deps: ConnectionGateDeps = {}) {
    this.options = { ...DEFAULT_CONNECTION_GATE_OPTIONS, ...options };
    this.parent = deps.parent;
    this.memory = deps.memory;
    this.now = deps.now ?? (() => performance.now());
  }

  /** Connections admitted and not yet released. */
  get open(): number {
    return this.openCount;
  }

  /** Open connections from one address. */
  openFrom(address: string): number {
    return this.addresses.get(addressKey(address))?.open ?? 0;
  }

  /**
   * Decides on a new connection from `address` (undefined: per-address limits do not apply).
   * Every attempt counts against the address's rate, refused or not: that is what a flood is.
   */
  admit(address: string | undefined): GateDecision {
    const key = address === undefined ? undefined : addressKey(address);
    const entry = key === undefined ? undefined : this.entry(key);
    const refusal = this.check(entry);
    if (refusal !== undefined) {
      this.refusals[refusal]++;
      return { admitted: false, refusal };
    }
    const upstream = this.parent?.admit(address);
    if (upstream !== undefined && !upstream.admitted) return upstream;
    this.openCount++;
    if (entry !== undefined) entry.open++;
    let released = false;
    return {
      admitted: true,
      release: () => {
        if (released) return;
        released = true;
        this.openCount--;
        if (entry !== undefined) entry.open--;
        upstream?.release();
      },
    };
  }

  private check(entry: AddressEntry | undefined): GateRefusal | undefined {
    const { options } = this;
    if (entry !== undefined && options.connectionRatePerAddress > 0) {
      entry.bucket ??= new TokenBucket(
        options.connectionRatePerAddress,
        Math.max(1, options.connectionBurstPerAddress),
        this.now(),
      );
      if (!entry.bucket.tryTake(1, this.now())) return 'connection-rate';
    }
    if (this.memory?.high === true) return 'server-busy';
    if (options.maxConnections > 0 && this.openCount >= options.maxConnections) return 'total-quota';
    if (
      entry !== undefined &&
      options.maxConnectionsPerAddress > 0 &&
      entry.open >= options.maxConnectionsPerAddress
    ) {
      return 'address-quota';
    }
    return undefined;
  }

  private entry(key: string): AddressEntry {
    if (++this.admitsSinceSweep >= Math.max(MIN_SWEEP_INTERVAL, this.addresses.size)) this.sweep();
    let entry = this.addresses.get(key);
    if (entry === undefined) {
      entry = { open: 0, bucket: undefined };
      this.addresses.set(key, entry);
    }
    return entry;
  }

  /**
   * Forgets addresses with nothing open and a full bucket: they would be created afresh just
   * the same. Run once per as many admissions as there are entries, so it costs O(1) each.
   * An entry still referenced by a live admission has `open > 0`, so it is never dropped.
   */
  private sweep(): void {
    this.admitsSinceSweep = 0;
    const now = this.now();
    for (const [key, entry] of this.addresses) {
      if (entry.open === 0 && (entry.bucket === undefined || entry.bucket.isFull(now))) {
        this.addresses.delete(key);
      }
    }
  }
}

/** One key per host: an IPv4 client seen through a dual-stack socket counts as its IPv4 address. */
function addressKey(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
